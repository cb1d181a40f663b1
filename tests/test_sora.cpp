// SoRA: the official threshold operator against hand-computed values (and the textbook option), a zero
// gate staying zero through a step whose update is below the threshold, export to a plain LoRA adapter
// with the same logits and rank = the non-zero gates, and a real MRPC run logging sparsity.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include "core/fileutil.h"
#include "core/safetensors.h"
#include "models/bert.h"
#include "models/checkpoint.h"
#include "support/helpers.h"
#include "support/tiny_model.h"
#include "train/trainer.h"
#include "tuners/registry.h"
#include "tuners/sora/model.h"

using namespace lorakit;
using lorakit::testing::last_json_object;
using lorakit::testing::read_jsonl;
using lorakit::testing::run_cli;
using lorakit::testing::TempDir;

namespace {

ModelConfig tiny_config() { return lorakit::testing::tiny_bert_config(); }
SequenceClassifier tiny_model(uint64_t seed = 5) { return lorakit::testing::tiny_bert(tiny_config(), seed); }

Batch tiny_batch(uint64_t seed) { return lorakit::testing::random_batch(seed); }

LoraConfig tiny_lora(int64_t r) {
  LoraConfig l;
  l.r = r;
  l.lora_alpha = 2.0 * r;
  l.target_modules = {"query", "value"};
  return l;
}

}  // namespace

TEST(SoraThreshold, OfficialStepsAndTextbookAgainstHandValues) {
  // ξ = 0.1. Official: g > ξ → g − ξ; then g < −ξ → g + ξ; then |g| < ξ → 0.
  //   0.35 → 0.25; 0.15 → 0.05 → 0; 0.05 → 0; −0.05 → 0; −0.15 → −0.05 → 0; −0.4 → −0.3; 0.1 → 0.1 (|0.1| ≮ ξ).
  at::Tensor g = at::tensor({0.35, 0.15, 0.05, -0.05, -0.15, -0.4, 0.1, 0.0}, at::kDouble);
  at::Tensor t = g.clone();
  sora_threshold_(g, 0.1, /*textbook=*/false);
  const std::vector<double> want = {0.25, 0.0, 0.0, 0.0, 0.0, -0.3, 0.1, 0.0};
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(g[i].item<double>(), want[i], 1e-15) << i;
  // Textbook prox: sign(g)·max(|g| − ξ, 0): 0.15 → 0.05 survives, 0.1 → 0.
  sora_threshold_(t, 0.1, /*textbook=*/true);
  const std::vector<double> tb = {0.25, 0.05, 0.0, 0.0, -0.05, -0.3, 0.0, 0.0};
  for (size_t i = 0; i < tb.size(); ++i) EXPECT_NEAR(t[i].item<double>(), tb[i], 1e-15) << i;
}

TEST(SoraTraining, ZeroGateStaysZeroAndGatesHaveTheirOwnGroup) {
  SequenceClassifier m = tiny_model();
  SoraConfig sc;
  sc.sparse_lambda = 0;       // no L1 pull
  sc.sparse_lambda_2 = 0.05;  // ξ: larger than one AdamW update (≈ lr = 0.01)
  sc.gate_lr = 0.01;
  SoraMethod method(tiny_lora(4), sc);
  method.attach(m);
  auto layers = method.sora_layers();
  ASSERT_EQ(layers.size(), 2u);
  {
    torch::NoGradGuard g;
    layers[0]->lora_gate->weight.copy_(at::tensor({0.0f, 1.0f, -1.0f, 0.5f}).view({1, 4}));
    for (auto& [p, l] : method.layers()) l->lora_B->weight.normal_(0, 0.1);  // so every gate has a gradient
  }
  auto groups = method.param_groups(m, 0.01);
  bool found = false;
  for (auto& g : groups)
    if (g.name == "sora_gates") {
      found = true;
      EXPECT_EQ(g.weight_decay, 0.0);
      EXPECT_EQ(g.lr, 0.01);
      EXPECT_EQ(g.params.size(), 2u);
    }
  EXPECT_TRUE(found);
  TrainConfig tc;
  tc.lr = 1e-3;
  tc.max_grad_norm = 0;
  auto task = make_task("mrpc");
  StepRunner runner(m, method, *task, tc, 3, 0);
  runner.step(tiny_batch(1), 1);
  ASSERT_TRUE(layers[0]->lora_gate->weight.grad().defined());
  EXPECT_NE(layers[0]->lora_gate->weight.grad()[0][0].item<double>(), 0.0);  // it had a gradient ...
  EXPECT_EQ(layers[0]->lora_gate->weight[0][0].item<double>(), 0.0);          // ... below the threshold
  // A large gate moved by the update, then shrank by ξ.
  EXPECT_NEAR(layers[0]->lora_gate->weight[0][1].item<double>(), 1.0 - 0.05, 0.011);
  EXPECT_EQ(method.kept_ranks()[0], 3);
}

TEST(SoraExport, PrunedPlainLoraAdapterHasTheSameLogits) {
  SequenceClassifier m = tiny_model();
  SoraMethod method(tiny_lora(4), SoraConfig{});
  method.attach(m);
  auto layers = method.sora_layers();
  {
    torch::NoGradGuard g;
    for (auto& [p, l] : method.layers()) l->lora_B->weight.normal_(0, 0.2);
    layers[0]->lora_gate->weight.copy_(at::tensor({0.0f, 1.5f, 0.0f, -0.7f}).view({1, 4}));  // 2 kept
    layers[1]->lora_gate->weight.zero_();                                                     // none kept
  }
  EXPECT_EQ(method.kept_ranks(), (std::vector<int64_t>{2, 0}));
  TempDir d;
  LoadedModel base;
  base.dir = d.path();
  method.save(m, base, d.file("adapter"));
  auto cfg = nlohmann::json::parse(read_text_file(d.file("adapter/adapter_config.json")));
  EXPECT_EQ(cfg["peft_type"], "LORA");
  const std::string q = "bert.encoder.layer.0.attention.self.query", v = "bert.encoder.layer.0.attention.self.value";
  EXPECT_EQ(cfg["rank_pattern"][q], 2);  // the non-zero gates
  EXPECT_EQ(cfg["rank_pattern"][v], 1);  // none left: one zero direction (PEFT refuses r = 0)
  st::SafetensorsFile f(d.file("adapter/adapter_model.safetensors"));
  EXPECT_EQ(f.info("base_model.model." + q + ".lora_A.weight").shape, (std::vector<int64_t>{2, 16}));
  EXPECT_EQ(f.info("base_model.model." + q + ".lora_B.weight").shape, (std::vector<int64_t>{16, 2}));
  auto side = nlohmann::json::parse(read_text_file(d.file("adapter/lorakit_config.json")));
  EXPECT_EQ(side["sora"]["kept_ranks"][q], 2);
  EXPECT_EQ(side["sora"]["kept_ranks"][v], 0);

  // Loaded as ordinary LoRA into the same base: the same logits.
  std::string name;
  EXPECT_LT(lorakit::testing::reload_logit_difference(m, d.file("adapter"), &name), 1e-5);
  EXPECT_EQ(name, "lora");
  // # I-Params: head + kept·(d_in + d_out).
  int64_t head = 0;  // counted here independently of trainable_outside_adapters
  for (auto& p : m->named_parameters())
    if (p.value().requires_grad() && p.key().rfind("classifier.", 0) == 0) head += p.value().numel();
  EXPECT_EQ(method.inference_params(m), head + 2 * (16 + 16));
}

TEST(SoraCli, TrainsOnMrpcLogsSparsityAndExportsPlainLora) {
  TempDir d;
  const std::string data = lorakit::testing::shared_dir() + "/data/glue";
  const std::string out = d.file("run");
  auto r = lorakit::testing::train_tiny_mrpc(d, "--method sora --r 8 --alpha 16 --sora-lambda 1e-3 --sora-lambda2 0.3");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto epochs = read_jsonl(out + "/metrics.jsonl");
  ASSERT_EQ(epochs.size(), 2u);
  for (auto& e : epochs)
    for (const char* k : {"sora_sparsity", "sora_kept_rank", "sora_ranks"}) EXPECT_TRUE(e.contains(k)) << k;
  EXPECT_GT(epochs[1]["sora_sparsity"].get<double>(), 0.0);  // ξ = 0.3 zeroes the N(0,1) gates below 0.6
  // The export is plain LoRA: eval reloads it with the last epoch's metrics; inspect shows the kept rank.
  auto ev = run_cli("eval --adapter " + out + "/last --task mrpc --data " + data +
                    " --max-eval-samples 48 --max-seq-len 48 --threads 1");
  ASSERT_EQ(ev.exit_code, 0) << ev.output;
  EXPECT_NEAR(last_json_object(ev.output)["eval_loss"].get<double>(), epochs[1]["eval_loss"].get<double>(), 1e-6);
  auto in = run_cli("inspect --json " + out + "/last");
  ASSERT_EQ(in.exit_code, 0) << in.output;
  auto ij = last_json_object(in.output);
  EXPECT_EQ(ij["method"], "sora");
  EXPECT_EQ(ij["sora_kept_rank"], epochs[1]["sora_kept_rank"]);
  EXPECT_NEAR(ij["sora_sparsity"].get<double>(), epochs[1]["sora_sparsity"].get<double>(), 1e-12);
}
