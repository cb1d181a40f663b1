// Frozen-prefix caching (issue 14): the stages of BERT / RoBERTa reproduce forward() from every cut (also
// with zeros where the cache leaves padded positions); the plan finds the lowest trainable stage and
// refuses dropout in the prefix unless asked; training from the cache ends where training without it
// does, through the CLI, with LoRA dropout above the cut and GR-LoRA's penalty.
#include <gtest/gtest.h>

#include <signal.h>

#include <ATen/ATen.h>
#include <torch/torch.h>

#include <functional>
#include <nlohmann/json.hpp>

#include "core/errors.h"
#include "core/safetensors.h"
#include "support/helpers.h"
#include "support/tiny_model.h"
#include "models/use_lite_task.h"
#include "train/prefix_cache.h"
#include "tuners/registry.h"

using namespace lorakit;
using lorakit::testing::read_jsonl;
using lorakit::testing::TempDir;

namespace {

double max_diff(const at::Tensor& a, const at::Tensor& b) { return (a - b).abs().max().item<double>(); }

// zero_at_pads(stage): the state after that stage is zero at padded positions already (USE-lite's embeddings,
// a bi-encoder pair's row layout), and the check is that it is; else it holds values there, so that zeroing
// them is a real check.
void check_every_cut(SequenceClassifier& m,
                     const std::function<bool(const TaskModelImpl::Stage&)>& zero_at_pads = [](const auto&) { return false; }) {
  m->eval();
  torch::NoGradGuard ng;
  auto in = lorakit::testing::padded_inputs(m->cfg, 12);
  at::Tensor want = m->forward(in.ids, in.mask, in.tt);
  const auto stages = m->prefix_stages();
  ASSERT_GE(stages.size(), 3u);
  for (int64_t k = 1; k <= static_cast<int64_t>(stages.size()); ++k) {
    at::Tensor s = m->forward_to(k, in.ids, in.mask, in.tt);
    const auto& stage = stages[static_cast<size_t>(k - 1)];
    EXPECT_LE(max_diff(m->forward_from(k, s, in.mask, in.tt), want), 1e-6) << stage.name;
    const int64_t width = stage.width > 0 ? stage.width : m->cfg.hidden_size;
    if (stage.per_token) {
      ASSERT_EQ(s.dim(), 3);
      EXPECT_EQ(s.size(1), in.ids.size(1)) << stage.name << ": a position per token";
      EXPECT_EQ(s.size(2), width) << stage.name;
      // What the cache hands the suffix: the real tokens' states, zeros where the batch pads.
      at::Tensor z = s * in.mask.unsqueeze(-1).to(s.scalar_type());
      if (!zero_at_pads(stage)) {
        EXPECT_NE(max_diff(z, s), 0.0) << "padded positions carry values; the check needs them";
      } else {
        EXPECT_EQ(max_diff(z, s), 0.0) << stage.name << ": the state is zero where the row pads";
      }
      EXPECT_LE(max_diff(m->forward_from(k, z, in.mask, in.tt), want), 1e-6) << stage.name << " (padding zeroed)";
      // A row's state is its own: the same row alone (cut to its length) gives the same values.
      const int64_t len = in.mask[2].sum().item<int64_t>();
      at::Tensor alone = m->forward_to(k, in.ids.narrow(0, 2, 1).narrow(1, 0, len), in.mask.narrow(0, 2, 1).narrow(1, 0, len),
                                       in.tt.narrow(0, 2, 1).narrow(1, 0, len));
      EXPECT_LE(max_diff(alone[0], s[2].narrow(0, 0, len)), 1e-5) << stage.name;
    } else {
      EXPECT_EQ(s.dim(), 2) << stage.name;
      EXPECT_EQ(s.size(1), width) << stage.name;
    }
  }
}

TEST(PrefixStages, BertReproducesForwardFromEveryCut) {
  ModelConfig c = lorakit::testing::oracle_config("bert");
  c.num_hidden_layers = 3;
  torch::manual_seed(1);
  SequenceClassifier m(c);
  m->init_weights();
  check_every_cut(m);
  // embeddings, 3 layers, pooler
  EXPECT_EQ(m->prefix_stages().size(), 5u);
  EXPECT_EQ(m->prefix_stages().back().name, "bert.pooler");
}

TEST(PrefixStages, RobertaReproducesForwardFromEveryCut) {
  ModelConfig c = lorakit::testing::oracle_config("roberta");
  torch::manual_seed(2);
  SequenceClassifier m(c);
  m->init_weights();
  check_every_cut(m);
  EXPECT_EQ(m->prefix_stages().size(), 3u);  // embeddings, 2 layers (no pooler)
}

TEST(PrefixStages, VitReproducesForwardFromEveryCut) {
  ModelConfig c = lorakit::testing::small_vit_config();
  torch::manual_seed(4);
  SequenceClassifier m(c);
  m->init_weights();
  m->eval();
  torch::NoGradGuard ng;
  at::Tensor px = at::randn({3, 3, 16, 16});
  at::Tensor want = m->forward_pixels(px);
  const auto stages = m->prefix_stages();
  ASSERT_EQ(stages.size(), 4u);  // embeddings, 2 layers, layernorm
  for (int64_t k = 1; k <= 4; ++k)
    EXPECT_LE(max_diff(m->forward_from(k, m->forward_to(k, px, {}, {}), {}), want), 1e-6) << stages[k - 1].name;
}

TEST(PrefixStages, DistilBertReproducesForwardFromEveryCut) {
  ModelConfig c = lorakit::testing::oracle_config("distilbert");
  c.num_hidden_layers = 3;
  torch::manual_seed(5);
  SequenceClassifier m(c);
  m->init_weights();
  check_every_cut(m);
  EXPECT_EQ(m->prefix_stages().size(), 4u);  // embeddings, 3 layers
  EXPECT_EQ(m->prefix_stages().back().name, "distilbert.transformer.layer.2");
  m->prune_last_layer = true;  // the pruned last layer from every cut too
  check_every_cut(m);
}

// USE-lite (random weights of the real architecture): a pair's halves are encoded apart, and the per-token
// state is kept in the row's own layout; single sentences as they are.
TEST(PrefixStages, UseLiteReproducesForwardFromEveryCut) {
  for (const char* mode : {"bi-encoder", "single"}) {
    SCOPED_TRACE(mode);
    torch::manual_seed(6);
    SequenceClassifier m(use_lite_model_config(2, mode));
    m->init_weights();
    const auto stages = m->prefix_stages();
    ASSERT_EQ(stages.size(), 4u);  // embeddings, 2 layers, tanh layer
    EXPECT_EQ(stages.front().width, 256);
    EXPECT_EQ(stages.back().name, "use.tanh_layer");
    EXPECT_EQ(stages.back().width, std::string(mode) == "bi-encoder" ? 4 * 512 : 512);
    const bool pairs = std::string(mode) == "bi-encoder";
    check_every_cut(m, [&](const TaskModelImpl::Stage& s) { return pairs || s.name == "use.embeddings"; });
  }
}

// DeBERTa-v2 with relative attention (log buckets, c2p|p2c, LayerNorm'd relative embeddings).
TEST(PrefixStages, DebertaReproducesForwardFromEveryCut) {
  ModelConfig c = lorakit::testing::oracle_config("deberta-v2");
  c.relative_attention = true;  // DeBERTa-v3's settings
  c.position_buckets = 8;
  c.max_relative_positions = -1;
  c.pos_att_type = {"p2c", "c2p"};
  c.norm_rel_ebd = "layer_norm";
  c.position_biased_input = false;
  c.share_att_key = true;
  c.num_hidden_layers = 3;
  torch::manual_seed(7);
  SequenceClassifier m(c);
  m->init_weights();
  // DeBERTa's embeddings are multiplied by the mask: zero at padded positions already.
  check_every_cut(m, [](const TaskModelImpl::Stage& s) { return s.name == "deberta.embeddings"; });
  const auto stages = m->prefix_stages();
  EXPECT_EQ(stages.size(), 5u);  // embeddings, 3 layers, pooler
  EXPECT_EQ(stages.back().name, "pooler");
  // The relative embeddings feed every layer: training them leaves nothing above the embeddings to cache.
  bool in_layer0 = false;
  for (const auto& p : stages[1].module->named_parameters())
    in_layer0 = in_layer0 || p.key().rfind("rel_embeddings.", 0) == 0;
  EXPECT_TRUE(in_layer0);
  for (auto& p : m->named_parameters()) p.value().set_requires_grad(p.key().rfind("classifier.", 0) == 0);
  EXPECT_EQ(plan_prefix_cache(m, PrefixCacheMode::On).cut, 5);  // (Auto: not with the config's dropout)
  m->named_parameters()["deberta.encoder.rel_embeddings.weight"].set_requires_grad(true);
  EXPECT_EQ(plan_prefix_cache(m, PrefixCacheMode::On).cut, 1);
  // Padded positions are masked as queries too, so their values depend on how far the batch pads: a cache
  // cannot hold them per row (GR-LoRA's norms read them).
  EXPECT_FALSE(m->prefix_cache_keeps_padding());
  m->eval();
  torch::NoGradGuard ng;
  for (auto& p : m->parameters()) p.add_(at::randn_like(p) * 0.1);  // weights of a trained model's size
  auto in = lorakit::testing::padded_inputs(m->cfg, 12);
  auto wider = [](const at::Tensor& t, int64_t fill) { return at::cat({t, at::full({t.size(0), 4}, fill, t.options())}, 1); };
  at::Tensor a = m->forward_to(2, in.ids, in.mask, in.tt);
  at::Tensor b = m->forward_to(2, wider(in.ids, m->cfg.pad_token_id), wider(in.mask, 0), wider(in.tt, 0));
  EXPECT_LE(max_diff(a[0], b[0].narrow(0, 0, 12)), 1e-5);                 // a real row: the same
  EXPECT_GT(max_diff(a[1].narrow(0, 9, 3), b[1].narrow(0, 9, 3)), 1e-3);  // its padded positions: not
}

TEST(PrefixStages, FamiliesWithoutStagesAreNeverCached) {
  ModelConfig c = lorakit::testing::oracle_config("bert");
  c.head = "question-answering";
  SequenceClassifier m(c);
  EXPECT_TRUE(m->prefix_stages().empty());
  EXPECT_EQ(plan_prefix_cache(m, PrefixCacheMode::Auto).cut, 0);
  auto on = plan_prefix_cache(m, PrefixCacheMode::On);
  EXPECT_EQ(on.cut, 0);
  EXPECT_NE(on.why_not.find("question-answering head"), std::string::npos) << on.why_not;
}

SequenceClassifier attached(double dropout, const std::string& method, const std::string& regex) {
  ModelConfig c = lorakit::testing::oracle_config("bert");
  c.num_hidden_layers = 3;
  c.hidden_dropout_prob = c.attention_probs_dropout_prob = dropout;
  torch::manual_seed(3);
  SequenceClassifier m(c);
  m->init_weights();
  MethodOptions mo;
  mo.lora.target_regex = regex;
  mo.lora.modules_to_save = {"classifier"};
  static std::vector<std::unique_ptr<Method>> keep;  // the method outlives the test's model
  keep.push_back(make_method(method, mo));
  keep.back()->attach(m);
  return m;
}

TEST(PrefixPlan, CutsBelowTheLowestTrainableStage) {
  auto m = attached(0.0, "lora", R"(.*encoder\.layer\.2\.attention\.self\.(query|value))");
  auto p = plan_prefix_cache(m, PrefixCacheMode::Auto);
  EXPECT_EQ(p.cut, 3);  // embeddings, layers 0 and 1
  EXPECT_EQ(p.first_trainable, "bert.encoder.layer.2");
  EXPECT_EQ(p.below, "bert.embeddings .. bert.encoder.layer.1");
  EXPECT_EQ(plan_prefix_cache(m, PrefixCacheMode::Off).cut, 0);

  // LoRA on the pooler: every layer is cached (the last one's state is its first token).
  auto h = attached(0.0, "lora", R"(bert\.pooler\.dense)");
  EXPECT_EQ(plan_prefix_cache(h, PrefixCacheMode::Auto).cut, 4);

  // LoRA on every layer: the embeddings alone are not worth caching unless asked.
  auto all = attached(0.0, "lora", R"(.*\.(query|value))");
  EXPECT_EQ(plan_prefix_cache(all, PrefixCacheMode::Auto).cut, 0);
  EXPECT_EQ(plan_prefix_cache(all, PrefixCacheMode::On).cut, 1);
}

TEST(PrefixPlan, DropoutInThePrefixNeedsOn) {
  auto m = attached(0.1, "lora", R"(.*encoder\.layer\.2\.attention\.self\.(query|value))");
  auto a = plan_prefix_cache(m, PrefixCacheMode::Auto);
  EXPECT_EQ(a.cut, 0);
  EXPECT_NE(a.why_not.find("dropout"), std::string::npos) << a.why_not;
  EXPECT_NE(a.why_not.find("--cache-frozen-prefix on"), std::string::npos) << a.why_not;
  auto on = plan_prefix_cache(m, PrefixCacheMode::On);
  EXPECT_EQ(on.cut, 3);
  EXPECT_EQ(on.dropout_stage, "bert.embeddings");
}

TEST(PrefixPlan, FullFineTuningHasNoFrozenPrefix) {
  auto m = attached(0.0, "full", "");
  EXPECT_EQ(plan_prefix_cache(m, PrefixCacheMode::Auto).cut, 0);
  auto on = plan_prefix_cache(m, PrefixCacheMode::On);
  EXPECT_EQ(on.cut, 0);
  EXPECT_NE(on.why_not.find("bert.embeddings"), std::string::npos) << on.why_not;
  EXPECT_THROW(parse_prefix_cache_mode("yes"), Error);
}

// Through the CLI on real MRPC rows: a 3-layer model without dropout, LoRA (dropout 0.1 on its branch)
// on the top layer only.
class PrefixCacheCli : public lorakit::testing::TinyModelSuite<PrefixCacheCli> {
 public:
  static constexpr const char* kModelFlags = "--layers 3 --max-position 64 --dropout 0";

 protected:
  static lorakit::testing::RunResult train(const std::string& flags, const std::string& out) {
    return lorakit::testing::run_cli(train_args(flags, out));
  }
  static std::string train_args(const std::string& flags, const std::string& out) {
    return std::string(
        "train --model ") + model() + " --task mrpc --data " + data() +
        " --max-train-samples 64 --max-eval-samples 32 --max-seq-len 40 --batch-size 8 --epochs 2 --lr 5e-3"
        " --lora-dropout 0.1 --seed 5 --threads 1 --no-progress "
        "--target-regex '.*encoder\\.layer\\.2\\.(attention\\.self\\.(query|value)|output\\.dense)' " +
        flags + " --out " + out;
  }
};

void expect_same_run(const std::string& a, const std::string& b, double tol) {
  auto la = read_jsonl(a + "/metrics.jsonl"), lb = read_jsonl(b + "/metrics.jsonl");
  ASSERT_EQ(la.size(), 2u);
  ASSERT_EQ(la.size(), lb.size());
  size_t compared = 0;
  for (size_t e = 0; e < la.size(); ++e)
    for (auto& [k, v] : la[e].items()) {
      if (!v.is_number_float() || k.find("second") != std::string::npos) continue;
      ASSERT_TRUE(lb[e].contains(k)) << k;
      EXPECT_NEAR(v.get<double>(), lb[e][k].get<double>(), tol) << "epoch " << e + 1 << " " << k;
      ++compared;
    }
  EXPECT_GE(compared, 6u);
  auto ta = st::load_file(a + "/last/adapter_model.safetensors"), tb = st::load_file(b + "/last/adapter_model.safetensors");
  ASSERT_EQ(ta.size(), tb.size());
  ASSERT_GE(ta.size(), 4u);
  for (size_t i = 0; i < ta.size(); ++i) {
    ASSERT_EQ(ta[i].first, tb[i].first);
    EXPECT_LE(max_diff(ta[i].second, tb[i].second), tol) << ta[i].first;
  }
}

TEST_F(PrefixCacheCli, TrainingFromTheCacheEqualsTrainingWithout) {
  TempDir d;
  for (const char* method : {"lora", "gr-lora"}) {
    const std::string m = std::string("--method ") + method;
    auto off = train(m + " --cache-frozen-prefix off", d.file(std::string(method) + "-off"));
    ASSERT_EQ(off.exit_code, 0) << off.output;
    EXPECT_EQ(off.output.find("frozen-prefix cache"), std::string::npos) << off.output;
    auto on = train(m, d.file(std::string(method) + "-auto"));
    ASSERT_EQ(on.exit_code, 0) << on.output;
    EXPECT_NE(on.output.find("frozen-prefix cache: bert.embeddings .. bert.encoder.layer.1 (below bert.encoder.layer.2)"),
              std::string::npos)
        << on.output;
    expect_same_run(d.file(std::string(method) + "-off"), d.file(std::string(method) + "-auto"), 1e-5);
  }
}

// Killed mid-epoch and resumed, a cached run rebuilds the same cache and ends byte-identical.
TEST_F(PrefixCacheCli, AKilledCachedRunResumesByteIdentical) {
  TempDir d;
  const std::string flags = "--method gr-lora --save-steps 3";
  auto ref = train(flags, d.file("ref"));
  ASSERT_EQ(ref.exit_code, 0) << ref.output;
  auto r1 = lorakit::testing::run_command("LORAKIT_FAULT=step:5 " + std::string(LORAKIT_CLI) + " " +
                                          train_args(flags, d.file("run")));
  ASSERT_EQ(r1.exit_code, 128 + SIGKILL) << r1.output;
  auto r2 = lorakit::testing::run_cli(train_args(flags, d.file("run")) + " --resume");
  ASSERT_EQ(r2.exit_code, 0) << r2.output;
  EXPECT_NE(r2.output.find("frozen-prefix cache:"), std::string::npos) << r2.output;
  for (const char* f : {"last/adapter_model.safetensors", "best/adapter_model.safetensors"})
    EXPECT_EQ(lorakit::testing::read_bytes(d.file("ref") + "/" + f), lorakit::testing::read_bytes(d.file("run") + "/" + f))
        << f;
  expect_same_run(d.file("ref"), d.file("run"), 0.0);
}

TEST_F(PrefixCacheCli, OnRefusesWhatCannotBeCachedByName) {
  TempDir d;
  auto full = train("--method full --cache-frozen-prefix on", d.file("full"));
  EXPECT_NE(full.exit_code, 0);
  EXPECT_NE(full.output.find("--cache-frozen-prefix on: nothing below the lowest trainable module (bert.embeddings)"),
            std::string::npos)
      << full.output;
  auto big = train("--cache-frozen-prefix on --cache-max-mb 0", d.file("big"));
  EXPECT_NE(big.exit_code, 0);
  EXPECT_NE(big.output.find("over --cache-max-mb 0"), std::string::npos) << big.output;
  auto bad = train("--cache-frozen-prefix maybe", d.file("bad"));
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.output.find("--cache-frozen-prefix"), std::string::npos) << bad.output;
}

}  // namespace
