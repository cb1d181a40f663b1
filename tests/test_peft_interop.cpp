// Files the real libraries load: adapter_config.json holds only PEFT's own LoraConfig keys (lorakit's
// settings go to lorakit_config.json), rank_pattern / alpha_pattern adapters load with the right
// per-module shapes and scalings, PEFT fields lorakit does not implement are named errors, and old
// adapters (settings under a "lorakit" key) still load.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/torch.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "core/errors.h"
#include "core/fileutil.h"
#include "core/safetensors.h"
#include "models/checkpoint.h"
#include "support/helpers.h"
#include "tuners/lora/model.h"

using namespace lorakit;
using lorakit::testing::last_json_object;
using lorakit::testing::read_jsonl;
using lorakit::testing::run_cli;
using lorakit::testing::TempDir;
namespace fs = std::filesystem;

namespace {

// The dataclass fields of PEFT 0.6.0's LoraConfig with those of its bases PeftConfig / PeftConfigMixin
// (peft 0.6.0/0.6.1, src/peft/tuners/lora/config.py and src/peft/config.py; the v0.6.1 reference docs list
// the same signature). PEFT 0.6-0.13 pass adapter_config.json's keys to LoraConfig(**kwargs), so any other
// key makes them refuse the adapter.
const std::set<std::string> kPeft060LoraConfigKeys = {
    "peft_type", "auto_mapping", "base_model_name_or_path", "revision", "task_type", "inference_mode",
    "r", "target_modules", "lora_alpha", "lora_dropout", "fan_in_fan_out", "bias", "modules_to_save",
    "init_lora_weights", "layers_to_transform", "layers_pattern", "rank_pattern", "alpha_pattern"};
// PEFT 0.6.0's AdaLoraConfig (src/peft/tuners/adalora/config.py): LoraConfig's fields plus its own (its
// rank_pattern overrides LoRA's with default None).
const std::set<std::string> kPeft060AdaLoraOwnKeys = {"target_r", "init_r", "tinit", "tfinal", "deltaT",
                                                      "beta1", "beta2", "orth_reg_weight", "total_step"};
// Added to LoraConfig later, written by lorakit only when the adapter needs them.
const std::set<std::string> kLaterLoraConfigKeys = {"use_rslora" /* 0.8.0 */, "exclude_modules" /* 0.14.0 */};

nlohmann::json read_json(const std::string& path) { return nlohmann::json::parse(read_text_file(path)); }

class PeftInterop : public lorakit::testing::TinyModelSuite<PeftInterop> {
 public:
  static constexpr const char* kModelFlags = "--layers 2 --max-position 64";

 protected:
  static std::string train_args(const std::string& task) {
    return "train --model " + model() + " --task " + task + " --data " + data() +
           " --max-train-samples 48 --max-eval-samples 40 --max-seq-len 48 --batch-size 16 --epochs 1 --lr 2e-3"
           " --threads 1 --no-progress";
  }
  static std::string eval_args(const std::string& task) {
    return " --task " + task + " --data " + data() + " --max-eval-samples 40 --max-seq-len 48 --threads 1";
  }
};

}  // namespace

TEST_F(PeftInterop, EveryMethodWritesOnlyPeftKeysAndReloadsWithIdenticalMetrics) {
  struct Case {
    std::string method, flags;
  };
  const std::vector<Case> cases = {{"lora", "--rslora"},
                                   {"gr-lora", ""},
                                   {"r-lora", ""},
                                   {"gm-lora", ""},
                                   {"rm-lora", "--rank-pattern layer.1.attention.self.value=2 --alpha-pattern query=4"},
                                   {"adalora", "--init-r 4 --target-r 2 --tinit 0 --tfinal 0"},
                                   {"sora", "--sora-lambda2 0.3"}};
  for (const auto& c : cases) {
    SCOPED_TRACE(c.method);
    const std::string out = dir_->file("keys-" + c.method);
    auto r = run_cli(train_args("mrpc") + " --method " + c.method + " --r 4 --alpha 8 " + c.flags + " --out " + out);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    for (const char* which : {"/best", "/last"}) {
      const nlohmann::json cfg = read_json(out + which + "/adapter_config.json");
      const bool ada = c.method == "adalora";
      for (auto& [k, v] : cfg.items())
        EXPECT_TRUE(kPeft060LoraConfigKeys.count(k) || kLaterLoraConfigKeys.count(k) ||
                    (ada && kPeft060AdaLoraOwnKeys.count(k)))
            << "adapter_config.json key '" << k << "' is not a PEFT " << (ada ? "AdaLoraConfig" : "LoraConfig")
            << " field";
      for (auto& k : kPeft060LoraConfigKeys) EXPECT_TRUE(cfg.contains(k)) << "PEFT writes '" << k << "'";
      if (ada)
        for (auto& k : kPeft060AdaLoraOwnKeys) EXPECT_TRUE(cfg.contains(k)) << "PEFT writes '" << k << "'";
      EXPECT_FALSE(cfg.contains("lorakit"));
      EXPECT_EQ(cfg["peft_type"], ada ? "ADALORA" : "LORA");
      EXPECT_TRUE(cfg["base_model_name_or_path"].get<std::string>().front() == '/');
      EXPECT_EQ(cfg.contains("use_rslora"), c.method == "lora");  // only where it is true
      const nlohmann::json side = read_json(out + which + "/lorakit_config.json");
      EXPECT_EQ(side["method"], c.method);
      EXPECT_EQ(side["num_labels"], 2);
    }
    // Reload in a fresh process: the metrics of the last epoch, exactly.
    auto epochs = read_jsonl(out + "/metrics.jsonl");
    ASSERT_FALSE(epochs.empty());
    auto ev = run_cli("eval --adapter " + out + "/last" + eval_args("mrpc"));
    ASSERT_EQ(ev.exit_code, 0) << ev.output;
    auto evj = last_json_object(ev.output);
    if (c.method == "sora") {  // the export folds the gates into B: equal up to float rounding
      EXPECT_NEAR(evj["eval_loss"].get<double>(), epochs.back()["eval_loss"].get<double>(), 1e-6);
    } else {
      EXPECT_DOUBLE_EQ(evj["eval_loss"].get<double>(), epochs.back()["eval_loss"].get<double>());
      EXPECT_DOUBLE_EQ(evj["eval_accuracy"].get<double>(), epochs.back()["eval_accuracy"].get<double>());
    }
    // inspect reads the method from the sidecar.
    auto in = run_cli("inspect --json " + out + "/last");
    ASSERT_EQ(in.exit_code, 0) << in.output;
    EXPECT_EQ(last_json_object(in.output)["method"], c.method);
  }
  // The pattern run: r = 2 for layer 1's value only, alpha 4 for both queries, resolved per module.
  const nlohmann::json cfg = read_json(dir_->file("keys-rm-lora") + "/last/adapter_config.json");
  EXPECT_EQ(cfg["rank_pattern"]["bert.encoder.layer.1.attention.self.value"], 2);
  EXPECT_EQ(cfg["alpha_pattern"]["bert.encoder.layer.0.attention.self.query"].get<double>(), 4.0);
  EXPECT_FALSE(cfg["rank_pattern"].contains("bert.encoder.layer.0.attention.self.value"));
  st::SafetensorsFile f(dir_->file("keys-rm-lora") + "/last/adapter_model.safetensors");
  EXPECT_EQ(f.info("base_model.model.bert.encoder.layer.1.attention.self.value.lora_A.weight").shape,
            (std::vector<int64_t>{2, 32}));
  EXPECT_EQ(f.info("base_model.model.bert.encoder.layer.0.attention.self.value.lora_A.weight").shape,
            (std::vector<int64_t>{4, 32}));
}

TEST_F(PeftInterop, OldAdapterWithLorakitKeyStillLoads) {
  const std::string out = dir_->file("old");
  auto r = run_cli(train_args("mrpc") + " --method gr-lora --r 4 --alpha 8 --out " + out);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto ev = run_cli("eval --adapter " + out + "/last" + eval_args("mrpc"));
  ASSERT_EQ(ev.exit_code, 0) << ev.output;
  // Rewrite the adapter as lorakit 0.1 wrote it: settings under "lorakit", no sidecar.
  nlohmann::json cfg = read_json(out + "/last/adapter_config.json");
  nlohmann::json side = read_json(out + "/last/lorakit_config.json");
  cfg["lorakit"] = side;
  cfg["use_rslora"] = false;
  lorakit::testing::write_text(out + "/last/adapter_config.json", cfg.dump(2));
  fs::remove(out + "/last/lorakit_config.json");
  auto ev2 = run_cli("eval --adapter " + out + "/last" + eval_args("mrpc"));
  ASSERT_EQ(ev2.exit_code, 0) << ev2.output;
  EXPECT_DOUBLE_EQ(last_json_object(ev2.output)["eval_loss"].get<double>(),
                   last_json_object(ev.output)["eval_loss"].get<double>());
  auto in = run_cli("inspect --json " + out + "/last");
  ASSERT_EQ(in.exit_code, 0) << in.output;
  EXPECT_EQ(last_json_object(in.output)["method"], "gr-lora");
}

namespace {

// A PEFT-style adapter written by hand: random factors of the given per-module ranks, a random head.
struct HandAdapter {
  std::map<std::string, std::pair<at::Tensor, at::Tensor>> ab;  // module path → (A [r, in], B [out, r])
  at::Tensor head_w, head_b;
};

HandAdapter write_hand_adapter(const std::string& dir, const nlohmann::ordered_json& cfg,
                               const std::map<std::string, int64_t>& ranks, int64_t hidden) {
  make_dirs(dir);
  HandAdapter h;
  st::NamedTensors t;
  torch::manual_seed(11);
  for (auto& [path, r] : ranks) {
    at::Tensor a = at::randn({r, hidden}) * 0.3, b = at::randn({hidden, r}) * 0.3;
    h.ab[path] = {a, b};
    t.emplace_back("base_model.model." + path + ".lora_A.weight", a);
    t.emplace_back("base_model.model." + path + ".lora_B.weight", b);
  }
  h.head_w = at::randn({2, hidden}) * 0.2;
  h.head_b = at::randn({2}) * 0.2;
  t.emplace_back("base_model.model.classifier.weight", h.head_w);
  t.emplace_back("base_model.model.classifier.bias", h.head_b);
  st::save_file(dir + "/adapter_model.safetensors", t, {{"format", "pt"}});
  lorakit::testing::write_text(dir + "/adapter_config.json", cfg.dump(2));
  return h;
}

nlohmann::ordered_json peft_config(const std::string& base) {
  // As PEFT 0.13 writes a LoRA adapter for BertForSequenceClassification (its fields, its defaults).
  return nlohmann::ordered_json::parse(R"({
    "alpha_pattern": {}, "auto_mapping": null, "base_model_name_or_path": ")" + base + R"(",
    "bias": "none", "fan_in_fan_out": false, "inference_mode": true, "init_lora_weights": true,
    "layer_replication": null, "layers_pattern": null, "layers_to_transform": null, "loftq_config": {},
    "lora_alpha": 8, "lora_dropout": 0.1, "megatron_config": null, "megatron_core": "megatron.core",
    "modules_to_save": ["classifier", "score"], "peft_type": "LORA", "r": 4, "rank_pattern": {},
    "revision": null, "target_modules": ["query", "value"], "task_type": "SEQ_CLS", "use_dora": false,
    "use_rslora": false})");
}

}  // namespace

TEST_F(PeftInterop, RankAndAlphaPatternsGivePerModuleShapesAndScalings) {
  // r 4 / alpha 8 by default; layer 0's query r 2 (a suffix key), every value alpha 32 (PEFT >= 0.14 looks r
  // and alpha up separately), layer 1's query r 6 and alpha 3 by a regex key.
  nlohmann::ordered_json cfg = peft_config(model());
  cfg["rank_pattern"] = {{"layer.0.attention.self.query", 2}, {"layer\\.1\\..*query", 6}};
  cfg["alpha_pattern"] = {{"value", 32}, {"layer\\.1\\..*query", 3}};
  const std::map<std::string, int64_t> ranks = {{"bert.encoder.layer.0.attention.self.query", 2},
                                                {"bert.encoder.layer.0.attention.self.value", 4},
                                                {"bert.encoder.layer.1.attention.self.query", 6},
                                                {"bert.encoder.layer.1.attention.self.value", 4}};
  const std::map<std::string, double> scalings = {{"bert.encoder.layer.0.attention.self.query", 8.0 / 2},
                                                  {"bert.encoder.layer.0.attention.self.value", 32.0 / 4},
                                                  {"bert.encoder.layer.1.attention.self.query", 3.0 / 6},
                                                  {"bert.encoder.layer.1.attention.self.value", 32.0 / 4}};
  const std::string dir = dir_->file("patterns");
  HandAdapter h = write_hand_adapter(dir, cfg, ranks, 32);

  LoadOptions lo;
  lo.num_labels = 2;
  LoadedModel adapted = load_model(model(), lo);
  auto method = load_adapter(adapted.model, dir);
  ASSERT_EQ(method->layers().size(), 4u);
  for (auto& [path, layer] : method->layers()) {
    EXPECT_EQ(layer->r, ranks.at(path)) << path;
    EXPECT_DOUBLE_EQ(layer->scaling, scalings.at(path)) << path;
  }

  // Independent computation: the base model's own weights plus s·B·A, the hand-made head.
  LoadedModel ref = load_model(model(), lo);
  {
    torch::NoGradGuard g;
    auto p = ref.model->named_parameters();
    for (auto& [path, fac] : h.ab) p[path + ".weight"].add_(at::matmul(fac.second, fac.first) * scalings.at(path));
    p["classifier.weight"].copy_(h.head_w);
    p["classifier.bias"].copy_(h.head_b);
  }
  adapted.model->eval();
  ref.model->eval();
  torch::manual_seed(5);
  at::Tensor ids = at::randint(1000, 8000, {3, 17}, at::kLong);
  at::Tensor a = adapted.model->forward(ids, {}, {}), b = ref.model->forward(ids, {}, {});
  EXPECT_LT((a - b).abs().max().item<double>(), 1e-5);

  // The CLI evaluates it (no sidecar: head size from the task) and writes the patterns back resolved.
  auto ev = run_cli("eval --adapter " + dir + eval_args("mrpc"));
  EXPECT_EQ(ev.exit_code, 0) << ev.output;
  auto in = run_cli("inspect --json " + dir);
  ASSERT_EQ(in.exit_code, 0) << in.output;
  const auto ij = last_json_object(in.output);
  EXPECT_EQ(ij["lora_modules"]["bert.encoder.layer.1.attention.self.query"]["r"], 6);

  // Saved again by lorakit: identical full-path keys in both patterns, so PEFT 0.6-0.13 (one shared key
  // for both lookups) and PEFT >= 0.14 (separate lookups) resolve the same r and alpha.
  const std::string again = dir_->file("patterns-again");
  method->save(adapted.model, adapted, again);
  nlohmann::json cj = read_json(again + "/adapter_config.json");
  std::set<std::string> rk, ak;
  for (auto& [k, v] : cj["rank_pattern"].items()) rk.insert(k);
  for (auto& [k, v] : cj["alpha_pattern"].items()) ak.insert(k);
  EXPECT_EQ(rk, ak);
  EXPECT_EQ(rk.size(), 4u);  // every module differs from (r 4, alpha 8) in r or alpha
  LoadedModel reloaded = load_model(model(), lo);
  auto m2 = load_adapter(reloaded.model, again);
  for (auto& [path, layer] : m2->layers()) {
    EXPECT_EQ(layer->r, ranks.at(path)) << path;
    EXPECT_DOUBLE_EQ(layer->scaling, scalings.at(path)) << path;
  }
  reloaded.model->eval();
  EXPECT_LT((reloaded.model->forward(ids, {}, {}) - b).abs().max().item<double>(), 1e-5);
}

TEST_F(PeftInterop, UnsupportedPeftFieldsAreNamedErrors) {
  const std::map<std::string, int64_t> ranks = {{"bert.encoder.layer.0.attention.self.query", 4},
                                                {"bert.encoder.layer.0.attention.self.value", 4},
                                                {"bert.encoder.layer.1.attention.self.query", 4},
                                                {"bert.encoder.layer.1.attention.self.value", 4}};
  const std::vector<std::pair<std::string, nlohmann::ordered_json>> bad = {
      {"layers_to_transform", nlohmann::ordered_json::array({0})},
      {"layers_pattern", "layer"},
      {"use_dora", true},
      {"fan_in_fan_out", true},
      {"bias", "lora_only"},
      {"layer_replication", nlohmann::ordered_json::parse("[[0, 1]]")},
      {"loftq_config", {{"loftq_bits", 4}}},
      {"init_lora_weights", "pissa"},
      {"lora_bias", true},
      {"trainable_token_indices", nlohmann::ordered_json::array({5})},
      {"some_future_field", 3},
  };
  LoadOptions lo;
  lo.num_labels = 2;
  for (auto& [field, value] : bad) {
    SCOPED_TRACE(field);
    nlohmann::ordered_json cfg = peft_config(model());
    cfg[field] = value;
    const std::string dir = dir_->file("bad-" + field);
    write_hand_adapter(dir, cfg, ranks, 32);
    LoadedModel m = load_model(model(), lo);
    try {
      load_adapter(m.model, dir);
      ADD_FAILURE() << "loaded an adapter with " << field << " = " << value.dump();
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("'" + field + "'"), std::string::npos) << msg;
      EXPECT_NE(msg.find("adapter_config.json"), std::string::npos) << msg;
    }
    // The CLI says the same and exits 1 (no raw LibTorch message, no shape mismatch).
    auto ev = run_cli("eval --adapter " + dir + eval_args("mrpc"));
    EXPECT_EQ(ev.exit_code, 1) << ev.output;
    EXPECT_NE(ev.output.find(field), std::string::npos) << ev.output;
  }
  // A DoRA magnitude vector in the weights is named too.
  {
    const std::string dir = dir_->file("bad-dora-tensor");
    write_hand_adapter(dir, peft_config(model()), ranks, 32);
    st::SafetensorsFile f(dir + "/adapter_model.safetensors");
    st::NamedTensors t;
    for (auto& k : f.keys()) t.emplace_back(k, f.load(k).clone());
    t.emplace_back("base_model.model.bert.encoder.layer.0.attention.self.query.lora_magnitude_vector", at::ones({32}));
    st::save_file(dir + "/adapter_model.safetensors", t, {});
    LoadedModel m = load_model(model(), lo);
    try {
      load_adapter(m.model, dir);
      ADD_FAILURE() << "loaded a DoRA adapter";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("lora_magnitude_vector"), std::string::npos) << e.what();
    }
  }
  // Newer PEFT's fields at their defaults load fine.
  nlohmann::ordered_json ok = peft_config(model());
  ok["peft_version"] = "0.17.1";
  ok["lora_bias"] = false;
  ok["exclude_modules"] = nullptr;
  ok["runtime_config"] = {{"ephemeral_gpu_offload", false}};
  ok["target_parameters"] = nullptr;
  const std::string dir = dir_->file("new-defaults");
  write_hand_adapter(dir, ok, ranks, 32);
  LoadedModel m = load_model(model(), lo);
  EXPECT_NO_THROW(load_adapter(m.model, dir));
}

TEST_F(PeftInterop, ExcludeModulesIsHonoured) {
  nlohmann::ordered_json cfg = peft_config(model());
  cfg["exclude_modules"] = nlohmann::ordered_json::array({"layer.1.attention.self.value"});
  const std::map<std::string, int64_t> ranks = {{"bert.encoder.layer.0.attention.self.query", 4},
                                                {"bert.encoder.layer.0.attention.self.value", 4},
                                                {"bert.encoder.layer.1.attention.self.query", 4}};
  const std::string dir = dir_->file("exclude");
  write_hand_adapter(dir, cfg, ranks, 32);
  LoadOptions lo;
  lo.num_labels = 2;
  LoadedModel m = load_model(model(), lo);
  auto method = load_adapter(m.model, dir);
  EXPECT_EQ(method->layers().size(), 3u);
  for (auto& [path, _] : method->layers()) EXPECT_NE(path, "bert.encoder.layer.1.attention.self.value");
}
