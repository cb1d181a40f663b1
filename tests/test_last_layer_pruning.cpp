// The last encoder layer at the first position only (TaskModelImpl::prune_last_layer, issue 14): for BERT,
// RoBERTa, DistilBERT and ViT the logits and every trainable gradient (LoRA on all projections, the head)
// equal the full computation's, on padded batches and from every prefix-cache cut; the pruned layer really
// computes one row; the trainer turns it on for LoRA and off for GR-LoRA and --no-prune-last-layer, and
// both runs end at the same adapter.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include "core/safetensors.h"
#include "support/helpers.h"
#include "support/tiny_model.h"
#include "tuners/registry.h"

using namespace lorakit;
using lorakit::testing::read_jsonl;
using lorakit::testing::TempDir;

namespace {

double max_diff(const at::Tensor& a, const at::Tensor& b) { return (a - b).abs().max().item<double>(); }

// The model of `type` with LoRA on every projection and the head trained, LoRA B and every trainable
// tensor moved off its init (B = 0 would leave A's gradient zero).
SequenceClassifier adapted(const std::string& type) {
  ModelConfig c = type == "vit" ? lorakit::testing::small_vit_config() : lorakit::testing::oracle_config(type);
  c.hidden_dropout_prob = c.attention_probs_dropout_prob = 0.0;
  c.classifier_dropout = 0.0;
  c.seq_classif_dropout = 0.0;
  torch::manual_seed(7);
  SequenceClassifier m(c);
  m->init_weights();
  MethodOptions mo;
  mo.lora.target_regex = ".*(query|key|value|dense|q_lin|k_lin|v_lin|out_lin|lin1|lin2)";
  mo.lora.modules_to_save = c.head_modules();
  static std::vector<std::unique_ptr<Method>> keep;  // the method outlives the test's model
  keep.push_back(make_method("lora", mo));
  keep.back()->attach(m);
  torch::NoGradGuard g;
  for (auto& p : m->parameters())
    if (p.requires_grad()) p.add_(at::randn_like(p) * 0.05);
  return m;
}

struct Pass {
  at::Tensor logits;
  std::vector<at::Tensor> grads;
};

// Logits and the gradients of a weighted logit sum, in train mode (no dropout anywhere).
Pass run_pass(SequenceClassifier& m, bool prune, const std::function<at::Tensor()>& fwd) {
  m->train();
  m->prune_last_layer = prune;
  m->zero_grad();
  Pass r;
  r.logits = fwd();
  torch::manual_seed(11);
  (r.logits * at::randn_like(r.logits)).sum().backward();
  for (auto& p : m->parameters())
    if (p.requires_grad()) r.grads.push_back(p.grad().defined() ? p.grad().clone() : at::zeros_like(p));
  m->prune_last_layer = false;
  return r;
}

void expect_same(const Pass& full, const Pass& pruned, const std::string& what) {
  EXPECT_LE(max_diff(full.logits, pruned.logits), 1e-5) << what;
  ASSERT_EQ(full.grads.size(), pruned.grads.size());
  ASSERT_GE(full.grads.size(), 10u);
  size_t nonzero = 0;
  for (size_t i = 0; i < full.grads.size(); ++i) {
    const double scale = std::max(1.0, full.grads[i].abs().max().item<double>());
    EXPECT_LE(max_diff(full.grads[i], pruned.grads[i]) / scale, 1e-5) << what << " gradient " << i;
    nonzero += full.grads[i].abs().max().item<double>() > 0;
  }
  EXPECT_GE(nonzero, full.grads.size() * 3 / 4) << what << ": the check needs real gradients";
}

void check_text_family(const std::string& type) {
  SequenceClassifier m = adapted(type);
  ASSERT_TRUE(m->supports_last_layer_pruning()) << type;
  auto in = lorakit::testing::padded_inputs(m->cfg, 12);
  auto fwd = [&] { return m->forward(in.ids, in.mask, in.tt); };
  expect_same(run_pass(m, false, fwd), run_pass(m, true, fwd), type);
  // From every prefix cut the pruned suffix gives the full forward's logits.
  Pass full = run_pass(m, false, fwd);
  const auto stages = m->prefix_stages();
  for (int64_t k = 1; k <= static_cast<int64_t>(stages.size()); ++k) {
    torch::NoGradGuard ng;
    m->prune_last_layer = true;
    at::Tensor s = m->forward_to(k, in.ids, in.mask, in.tt);
    EXPECT_LE(max_diff(m->forward_from(k, s, in.mask), full.logits), 1e-5) << type << " cut " << k;
    m->prune_last_layer = false;
  }
}

TEST(LastLayerPruning, BertLogitsAndGradientsEqualTheFullLayer) { check_text_family("bert"); }
TEST(LastLayerPruning, RobertaLogitsAndGradientsEqualTheFullLayer) { check_text_family("roberta"); }
TEST(LastLayerPruning, DistilbertLogitsAndGradientsEqualTheFullLayer) { check_text_family("distilbert"); }

TEST(LastLayerPruning, VitLogitsAndGradientsEqualTheFullLayer) {
  SequenceClassifier m = adapted("vit");
  ASSERT_TRUE(m->supports_last_layer_pruning());
  torch::manual_seed(4);
  at::Tensor px = at::randn({3, 3, 16, 16});
  auto fwd = [&] { return m->forward_pixels(px); };
  Pass full = run_pass(m, false, fwd);
  expect_same(full, run_pass(m, true, fwd), "vit");
  torch::NoGradGuard ng;
  m->prune_last_layer = true;
  for (int64_t k = 1; k <= static_cast<int64_t>(m->prefix_stages().size()); ++k)
    EXPECT_LE(max_diff(m->forward_from(k, m->forward_to(k, px, {}, {}), {}), full.logits), 1e-5) << "cut " << k;
}

TEST(LastLayerPruning, ThePrunedLayerComputesOneRow) {
  SequenceClassifier m = adapted("bert");
  auto* bert = m->as<BertClassifierImpl>();
  ASSERT_NE(bert, nullptr);
  auto in = lorakit::testing::padded_inputs(m->cfg, 12);
  torch::NoGradGuard ng;
  at::Tensor h = bert->base->embeddings(in.ids, in.tt);
  at::Tensor bias = additive_mask_bias(in.mask, h.scalar_type());
  auto* layer = bert->base->encoder->layer->ptr(0)->as<BertLayerImpl>();
  at::Tensor all = layer->forward(h, bias), first = layer->forward(h, bias, /*first_only=*/true);
  ASSERT_EQ(first.sizes(), (std::vector<int64_t>{3, 1, m->cfg.hidden_size}));
  EXPECT_LE(max_diff(first.squeeze(1), all.select(1, 0)), 1e-6);
  // DeBERTa's relative attention has no pruned path: never turned on there.
  SequenceClassifier d(lorakit::testing::oracle_config("deberta-v2"));
  EXPECT_FALSE(d->supports_last_layer_pruning());
}

class LastLayerPruningCli : public lorakit::testing::TinyModelSuite<LastLayerPruningCli> {
 public:
  static constexpr const char* kModelFlags = "--layers 2 --max-position 64 --dropout 0";

 protected:
  static lorakit::testing::RunResult train(const std::string& flags, const std::string& out) {
    return lorakit::testing::run_cli(
        std::string("train --model ") + model() + " --task mrpc --data " + data() +
        " --max-train-samples 48 --max-eval-samples 24 --max-seq-len 40 --batch-size 8 --epochs 1 --lr 5e-3"
        " --seed 5 --threads 1 --no-progress --target-modules query,value,dense " +
        flags + " --out " + out);
  }
  static bool pruned(const std::string& out) {
    return nlohmann::json::parse(lorakit::testing::read_bytes(out + "/train_config.json")).at("prune_last_layer").get<bool>();
  }
};

TEST_F(LastLayerPruningCli, OnForLoraOffForGrLoraAndOnRequestSameAdapter) {
  TempDir d;
  auto on = train("--method lora", d.file("on"));
  ASSERT_EQ(on.exit_code, 0) << on.output;
  auto off = train("--method lora --no-prune-last-layer", d.file("off"));
  ASSERT_EQ(off.exit_code, 0) << off.output;
  EXPECT_TRUE(pruned(d.file("on")));
  EXPECT_FALSE(pruned(d.file("off")));
  auto ma = read_jsonl(d.file("on") + "/metrics.jsonl"), mb = read_jsonl(d.file("off") + "/metrics.jsonl");
  ASSERT_EQ(ma.size(), 1u);
  ASSERT_EQ(mb.size(), 1u);
  EXPECT_NEAR(ma[0].at("eval_loss").get<double>(), mb[0].at("eval_loss").get<double>(), 1e-5);
  EXPECT_NEAR(ma[0].at("train_loss").get<double>(), mb[0].at("train_loss").get<double>(), 1e-5);
  auto ta = st::load_file(d.file("on") + "/last/adapter_model.safetensors");
  auto tb = st::load_file(d.file("off") + "/last/adapter_model.safetensors");
  ASSERT_EQ(ta.size(), tb.size());
  ASSERT_GE(ta.size(), 8u);
  for (size_t i = 0; i < ta.size(); ++i) {
    ASSERT_EQ(ta[i].first, tb[i].first);
    EXPECT_LE(max_diff(ta[i].second, tb[i].second), 1e-5) << ta[i].first;
    EXPECT_GT(ta[i].second.abs().max().item<double>(), 0.0) << ta[i].first;
  }
  auto gr = train("--method gr-lora", d.file("gr"));
  ASSERT_EQ(gr.exit_code, 0) << gr.output;
  EXPECT_FALSE(pruned(d.file("gr"))) << "GR-LoRA's norms read every position";
}

}  // namespace
