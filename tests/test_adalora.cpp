// AdaLoRA: the budget schedule, the importance EMAs and triplet scores on a hand-computed two-step
// example, masking to exactly the budget, masked singular values staying zero through training steps,
// save → load with identical logits, a PEFT-format AdaLoRA adapter written by hand, and a real MRPC run.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/torch.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "core/fileutil.h"
#include "core/safetensors.h"
#include "models/bert.h"
#include "models/checkpoint.h"
#include "support/helpers.h"
#include "support/tiny_model.h"
#include "train/trainer.h"
#include "tuners/adalora/model.h"
#include "tuners/registry.h"

using namespace lorakit;
using lorakit::testing::last_json_object;
using lorakit::testing::read_jsonl;
using lorakit::testing::run_cli;
using lorakit::testing::TempDir;

namespace {

ModelConfig tiny_config() { return lorakit::testing::tiny_bert_config(); }
SequenceClassifier tiny_model(uint64_t seed = 5) { return lorakit::testing::tiny_bert(tiny_config(), seed); }

AdaLoraConfig tiny_adalora(int64_t init_r, int64_t target_r, std::vector<std::string> targets = {"query", "value"}) {
  LoraConfig l;
  l.lora_alpha = 8;
  l.target_modules = std::move(targets);
  nlohmann::json extra = {{"init_r", init_r}, {"target_r", target_r}};
  return AdaLoraConfig::from_options(l, extra);
}

Batch tiny_batch(uint64_t seed) { return lorakit::testing::random_batch(seed); }

}  // namespace

TEST(AdaLoraBudget, CubicScheduleBetweenTheWarmUps) {
  // init 24, target 12, tinit 2, tfinal 3, total 20, deltaT 2: the decreasing phase is steps 3..17
  // (total − tfinal − tinit = 15).
  auto at = [](int64_t step) { return adalora_budget(step, 24, 12, 2, 3, 20, 2); };
  for (int64_t s : {0, 1, 2}) {
    EXPECT_EQ(at(s).budget, 24) << s;
    EXPECT_FALSE(at(s).mask) << s;
  }
  // step 3: 12·(1 − 1/15)³ + 12 = 12·0.81304 + 12 = 21.756 → 21; 3 % 2 ≠ 0: no masking.
  EXPECT_EQ(at(3).budget, 21);
  EXPECT_FALSE(at(3).mask);
  // step 10: 12·(7/15)³ + 12 = 12·0.101630 + 12 = 13.22 → 13; 10 % 2 == 0: masking.
  EXPECT_EQ(at(10).budget, 13);
  EXPECT_TRUE(at(10).mask);
  // step 17 = total − tfinal: (1 − 15/15)³ = 0 → the target.
  EXPECT_EQ(at(17).budget, 12);
  // Final phase: the target, masking every step.
  for (int64_t s : {18, 19}) {
    EXPECT_EQ(at(s).budget, 12) << s;
    EXPECT_TRUE(at(s).mask) << s;
  }
  AdaLoraConfig c = tiny_adalora(4, 2);
  c.tinit = 5;
  c.tfinal = 5;
  EXPECT_THROW(c.validate_schedule(10), Error);
  EXPECT_NO_THROW(c.validate_schedule(11));
}

TEST(AdaLoraImportance, TwoStepEmasScoresAndMaskingByHand) {
  SequenceClassifier m = tiny_model();
  AdaLoraMethod method(tiny_adalora(3, 2, {"layer.0.attention.self.query"}));
  method.attach(m);
  ASSERT_EQ(method.layers().size(), 1u);
  auto* l = method.ada_layers()[0];
  // p = 1 everywhere; ∇A row i = i + 1, ∇B = 1, ∇E = (3, 1, 2): the sensitivities |p ⊙ ∇p| are those numbers.
  {
    torch::NoGradGuard g;
    l->lora_A->weight.fill_(1.0);
    l->lora_B->weight.fill_(1.0);
    l->lora_E->weight.fill_(1.0);
  }
  const at::Tensor ga = at::arange(1, 4, at::kFloat).view({3, 1}).expand({3, 16}).contiguous();
  l->lora_A->weight.mutable_grad() = ga;
  l->lora_B->weight.mutable_grad() = at::ones({16, 3});
  l->lora_E->weight.mutable_grad() = at::tensor({3.f, 1.f, 2.f}).view({3, 1});
  method.update_importance();
  // Step 1 (β = 0.85): Ī = 0.15·x, Ū = 0.15·|x − 0.15x| = 0.1275·x.
  EXPECT_NEAR(method.importance(0, 2).avg_ipt[0][0].item<double>(), 0.15 * 3, 1e-6);
  EXPECT_NEAR(method.importance(0, 2).avg_unc[0][0].item<double>(), 0.1275 * 3, 1e-6);
  method.update_importance();  // the same gradients again
  // Step 2: Ī = 0.85·0.15x + 0.15x = 0.2775x; Ū = 0.85·0.1275x + 0.15·(x − 0.2775x) = 0.21675x.
  EXPECT_NEAR(method.importance(0, 0).avg_ipt[2][5].item<double>(), 0.2775 * 3, 1e-6);
  EXPECT_NEAR(method.importance(0, 0).avg_unc[2][5].item<double>(), 0.21675 * 3, 1e-6);
  EXPECT_NEAR(method.importance(0, 1).avg_unc[7][1].item<double>(), 0.21675, 1e-6);
  // Score Ī·Ū = 0.060148125·x²; triplet i = s(E_i) + mean s(A_i·) + mean s(B_·i) = c·(e_i² + a_i² + 1):
  // (9 + 1 + 1, 1 + 4 + 1, 4 + 9 + 1) = (11, 6, 14).
  const double c = 0.2775 * 0.21675;
  const at::Tensor s = method.triplet_scores(0);
  EXPECT_NEAR(s[0].item<double>(), 11 * c, 1e-6);
  EXPECT_NEAR(s[1].item<double>(), 6 * c, 1e-6);
  EXPECT_NEAR(s[2].item<double>(), 14 * c, 1e-6);
  // Budget 2 of 3: the lowest triplet (direction 1) loses its singular value, the others keep theirs.
  const double thr = method.mask_to_budget(2);
  EXPECT_NEAR(thr, 6 * c, 1e-6);
  EXPECT_EQ(l->lora_E->weight[1][0].item<double>(), 0.0);
  EXPECT_EQ(l->lora_E->weight[0][0].item<double>(), 1.0);
  EXPECT_EQ(l->lora_E->weight[2][0].item<double>(), 1.0);
  EXPECT_EQ(method.kept_ranks(), (std::vector<int64_t>{2}));
  // A and B are untouched (their directions keep training).
  EXPECT_EQ(l->lora_A->weight.sum().item<double>(), 48.0);
}

TEST(AdaLoraTraining, KeepsExactlyTheBudgetAndMaskedValuesStayZero) {
  SequenceClassifier m = tiny_model();
  AdaLoraConfig cfg = tiny_adalora(4, 2);
  cfg.tinit = 1;
  cfg.tfinal = 2;
  AdaLoraMethod method(cfg);
  method.attach(m);
  ASSERT_EQ(method.layers().size(), 2u);
  EXPECT_EQ(method.init_budget(), 8);
  TrainConfig tc;
  tc.lr = 5e-2;
  const int64_t total = 10;
  auto task = make_task("mrpc");
  StepRunner runner(m, method, *task, tc, total, 0);
  for (int64_t step = 0; step < total; ++step) {
    runner.step(tiny_batch(100 + step), 1);
    const AdaLoraBudget b = adalora_budget(step, 8, 4, 1, 2, total, 1);
    if (!b.mask) {
      EXPECT_FALSE(method.masked()) << step;
      continue;
    }
    // Distinct scores: exactly the budget's number of triplets kept after the masking...
    int64_t kept = 0;
    for (auto k : method.kept_ranks()) kept += k;
    EXPECT_EQ(kept, b.budget) << step;
    // ... and every masked E entry is zero after this step's hook (it had been updated by the step).
    auto layers = method.ada_layers();
    const auto scores0 = method.triplet_scores(0), scores1 = method.triplet_scores(1);
    const double thr = std::get<0>(at::kthvalue(at::cat({scores0, scores1}), 8 - b.budget)).item<double>();
    for (size_t i = 0; i < layers.size(); ++i) {
      const at::Tensor s = method.triplet_scores(i);
      for (int64_t k = 0; k < s.numel(); ++k)
        if (s[k].item<double>() <= thr) EXPECT_EQ(layers[i]->lora_E->weight[k][0].item<double>(), 0.0) << step;
    }
  }
  // The end of the schedule is the target, and the final phase kept the mask frozen.
  int64_t kept = 0;
  for (auto k : method.kept_ranks()) kept += k;
  EXPECT_EQ(kept, method.target_budget());
  // # I-Params counts the kept triplets only.
  const auto* h = method.layers()[0].second->host;
  EXPECT_EQ(method.inference_params(m) + 4 * (h->in_features + h->out_features + 1),
            count_trainable(*m));

  // Save → load (pruned PEFT AdaLoRA files) gives identical logits.
  TempDir d;
  LoadedModel base;
  base.dir = d.path();
  method.save(m, base, d.file("adapter"));
  auto cfgj = nlohmann::json::parse(read_text_file(d.file("adapter/adapter_config.json")));
  EXPECT_EQ(cfgj["peft_type"], "ADALORA");
  ASSERT_TRUE(cfgj["rank_pattern"].is_object());
  EXPECT_EQ(cfgj["rank_pattern"].size(), 2u);
  EXPECT_EQ(cfgj["init_r"], 4);
  EXPECT_EQ(cfgj["total_step"], total);
  st::SafetensorsFile f(d.file("adapter/adapter_model.safetensors"));
  EXPECT_EQ(f.info("base_model.model.bert.encoder.layer.0.attention.self.query.lora_A").shape[0] +
                f.info("base_model.model.bert.encoder.layer.0.attention.self.value.lora_A").shape[0],
            4);
  // The same frozen base weights; only the adapter and the head come from the files.
  std::string name;
  EXPECT_LT(lorakit::testing::reload_logit_difference(m, d.file("adapter"), &name), 1e-6);
  EXPECT_EQ(name, "adalora");
}

TEST(AdaLoraFiles, PeftWrittenAdapterLoads) {
  // An AdaLoRA adapter as PEFT 0.13 saves one for BertForSequenceClassification: init_r 3, the query pruned
  // to 2 triplets by rank_pattern, the value to 0; tensors without ".weight", no ranknum.
  TempDir d;
  ModelConfig mc = tiny_config();
  SequenceClassifier base = tiny_model();
  save_model(base, mc, d.file("model"));
  const std::string dir = d.file("peft-adalora");
  make_dirs(dir);
  nlohmann::ordered_json cfg = nlohmann::ordered_json::parse(R"({
    "alpha_pattern": {}, "auto_mapping": null, "base_model_name_or_path": ")" + d.file("model") + R"(",
    "beta1": 0.85, "beta2": 0.85, "bias": "none", "deltaT": 10, "fan_in_fan_out": false, "inference_mode": true,
    "init_lora_weights": true, "init_r": 3, "layer_replication": null, "layers_pattern": null,
    "layers_to_transform": null, "loftq_config": {}, "lora_alpha": 6, "lora_dropout": 0.1,
    "megatron_config": null, "megatron_core": "megatron.core", "modules_to_save": ["classifier", "score"],
    "orth_reg_weight": 0.5, "peft_type": "ADALORA", "r": 8,
    "rank_pattern": {"bert.encoder.layer.0.attention.self.query.lora_E": [true, false, true],
                     "bert.encoder.layer.0.attention.self.value.lora_E": [false, false, false]},
    "revision": null, "target_modules": ["query", "value"], "target_r": 1, "task_type": "SEQ_CLS",
    "tfinal": 0, "tinit": 0, "total_step": 100, "use_dora": false, "use_rslora": false})");
  lorakit::testing::write_text(dir + "/adapter_config.json", cfg.dump(2));
  torch::manual_seed(3);
  const std::string q = "bert.encoder.layer.0.attention.self.query", v = "bert.encoder.layer.0.attention.self.value";
  at::Tensor a = at::randn({2, 16}), e = at::randn({2, 1}), bq = at::randn({16, 2});
  at::Tensor hw = at::randn({2, 16}) * 0.3, hb = at::randn({2}) * 0.3;
  st::NamedTensors t = {{"base_model.model." + q + ".lora_A", a},
                        {"base_model.model." + q + ".lora_E", e},
                        {"base_model.model." + q + ".lora_B", bq},
                        {"base_model.model." + v + ".lora_A", at::zeros({0, 16})},
                        {"base_model.model." + v + ".lora_E", at::zeros({0, 1})},
                        {"base_model.model." + v + ".lora_B", at::zeros({16, 0})},
                        {"base_model.model.classifier.weight", hw},
                        {"base_model.model.classifier.bias", hb}};
  st::save_file(dir + "/adapter_model.safetensors", t, {{"format", "pt"}});

  LoadOptions lo;
  lo.num_labels = 2;
  LoadedModel lm = load_model(d.file("model"), lo);
  auto method = load_any_adapter(lm.model, dir);
  ASSERT_EQ(method->layers().size(), 1u);  // the value module, pruned to rank 0, stays plain
  EXPECT_EQ(method->layers()[0].first, q);
  EXPECT_EQ(method->layers()[0].second->r, 2);
  const double s = 6.0 / (3 + 1e-5);  // PEFT: lora_alpha / (ranknum + 1e-5), ranknum = init_r
  EXPECT_DOUBLE_EQ(method->layers()[0].second->scaling, s);
  // Independent computation: W_q + s·B diag(E) A, the hand-made head.
  LoadedModel ref = load_model(d.file("model"), lo);
  {
    torch::NoGradGuard g;
    auto p = ref.model->named_parameters();
    p[q + ".weight"].add_(at::matmul(bq, a * e) * s);
    p["classifier.weight"].copy_(hw);
    p["classifier.bias"].copy_(hb);
  }
  lm.model->eval();
  ref.model->eval();
  Batch b = tiny_batch(4);
  at::Tensor x = lm.model->forward(b.input_ids, b.attention_mask, b.token_type_ids);
  at::Tensor y = ref.model->forward(b.input_ids, b.attention_mask, b.token_type_ids);
  EXPECT_LT((x - y).abs().max().item<double>(), 1e-5);
  // Saved again (no masking happened in this process): still the pruned ranks, in PEFT's form.
  method->save(lm.model, lm, d.file("again"));
  auto again = nlohmann::json::parse(read_text_file(d.file("again/adapter_config.json")));
  EXPECT_EQ(again["rank_pattern"][q + ".lora_E"], (std::vector<bool>{true, true, false}));
  EXPECT_EQ(again["rank_pattern"][v + ".lora_E"], (std::vector<bool>{false, false, false}));
  LoadedModel lm2 = load_model(d.file("model"), lo);
  load_any_adapter(lm2.model, d.file("again"));
  lm2.model->eval();
  EXPECT_LT((lm2.model->forward(b.input_ids, b.attention_mask, b.token_type_ids) - y).abs().max().item<double>(), 1e-5);
  // merge gives the same logits.
  merge_and_unload(lm.model);
  EXPECT_LT((lm.model->forward(b.input_ids, b.attention_mask, b.token_type_ids) - y).abs().max().item<double>(), 1e-5);
  for (auto& p : lm.model->named_parameters()) EXPECT_EQ(p.key().find("lora_"), std::string::npos) << p.key();
}

TEST(AdaLoraCli, TrainsOnMrpcLogsRanksAndReloads) {
  TempDir d;
  const std::string data = lorakit::testing::shared_dir() + "/data/glue";
  const std::string out = d.file("run");
  // 128 rows / 16 = 8 steps per epoch, 2 epochs: tinit 2, tfinal 4 → the target budget from step 12 on.
  auto r = lorakit::testing::train_tiny_mrpc(d, "--method adalora --init-r 4 --target-r 2 --tinit 2 --tfinal 4 --alpha 8");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto epochs = read_jsonl(out + "/metrics.jsonl");
  ASSERT_EQ(epochs.size(), 2u);
  for (auto& e : epochs)
    for (const char* k : {"adalora_budget", "adalora_kept_triplets", "adalora_ranks", "dw_rank_mean"})
      EXPECT_TRUE(e.contains(k)) << k << " in " << e.dump();
  EXPECT_EQ(epochs[1]["adalora_kept_triplets"], 8);  // 4 modules × target_r 2
  EXPECT_LT(epochs[1]["inference_params"].get<int64_t>(), epochs[1]["trainable_params"].get<int64_t>());
  // inspect: final ranks and # T / I-Params with the pruned triplets out of I.
  auto in = run_cli("inspect --json " + out + "/last");
  ASSERT_EQ(in.exit_code, 0) << in.output;
  auto ij = last_json_object(in.output);
  EXPECT_EQ(ij["peft_type"], "ADALORA");
  int64_t sum = 0;
  for (auto& [k, v] : ij["final_ranks"].items()) sum += v.get<int64_t>();
  EXPECT_EQ(sum, 8);
  EXPECT_EQ(ij["inference_params"], epochs[1]["inference_params"]);
  EXPECT_EQ(ij["trainable_params"], epochs[1]["trainable_params"]);
  // Reload in a fresh process: the last epoch's metrics exactly; merge works.
  auto ev = run_cli("eval --adapter " + out + "/last --task mrpc --data " + data +
                    " --max-eval-samples 48 --max-seq-len 48 --threads 1");
  ASSERT_EQ(ev.exit_code, 0) << ev.output;
  EXPECT_DOUBLE_EQ(last_json_object(ev.output)["eval_loss"].get<double>(), epochs[1]["eval_loss"].get<double>());
  auto mr = run_cli("merge --adapter " + out + "/last --out " + d.file("merged"));
  EXPECT_EQ(mr.exit_code, 0) << mr.output;
}
