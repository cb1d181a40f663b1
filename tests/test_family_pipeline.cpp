// Every text family end to end through the CLI on real MRPC, with the family's own tokenizer from
// init-model: init-model → train (LoRA on the family's default targets) → the adapter reloads in a fresh
// process with identical metrics → merge gives the unmerged logits → the merged checkpoint holds the
// family's Hugging Face names only.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

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

namespace {

struct Family {
  std::string arch, prefix, adapted_weight, frozen_weight;
  std::vector<std::string> targets, heads;
  std::string tokenizer_file, tokenizer_class;
};

std::ostream& operator<<(std::ostream& os, const Family& f) { return os << f.arch; }

}  // namespace

class FamilyPipeline : public ::testing::TestWithParam<Family> {};

TEST_P(FamilyPipeline, TrainsReloadsMergesUnderItsOwnNames) {
  const Family& f = GetParam();
  TempDir d;
  const std::string data = lorakit::testing::shared_dir() + "/data/glue", model = d.file("model");
  auto r = run_cli("init-model --arch " + f.arch + " --hidden 32 --heads 2 --intermediate 64 --layers 2 --max-position 64 --out " + model);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // The family's own tokenizer files.
  EXPECT_TRUE(file_exists(model + "/" + f.tokenizer_file)) << f.tokenizer_file;
  EXPECT_EQ(nlohmann::json::parse(read_text_file(model + "/tokenizer_config.json"))["tokenizer_class"], f.tokenizer_class);
  const std::string common = " --task mrpc --data " + data + " --max-eval-samples 48 --max-seq-len 48 --threads 1";
  const std::string out = d.file("run");
  r = run_cli("train --model " + model + common +
              " --method lora --r 4 --epochs 3 --lr 5e-3 --max-train-samples 256 --batch-size 16 --no-progress --out " + out);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto epochs = read_jsonl(out + "/metrics.jsonl");
  ASSERT_EQ(epochs.size(), 3u);
  EXPECT_LT(epochs.back()["train_loss"].get<double>(), epochs.front()["train_loss"].get<double>()) << f.arch;

  // PEFT's defaults for the family went into the adapter.
  auto cfg = nlohmann::json::parse(read_text_file(out + "/last/adapter_config.json"));
  EXPECT_EQ(cfg["target_modules"].get<std::vector<std::string>>(), f.targets);
  EXPECT_EQ(cfg["modules_to_save"].get<std::vector<std::string>>(), f.heads);
  st::SafetensorsFile ad(out + "/last/adapter_model.safetensors");
  bool saw_lora = false;
  for (auto& k : ad.keys()) {
    EXPECT_EQ(k.rfind("base_model.model.", 0), 0u) << k;
    if (k.find(".lora_A.weight") != std::string::npos) {
      saw_lora = true;
      EXPECT_NE(k.find("base_model.model." + f.prefix + "."), std::string::npos) << k;
    }
  }
  EXPECT_TRUE(saw_lora);

  // Fresh process, same metrics.
  auto ev = run_cli("eval --model " + model + " --adapter " + out + "/last" + common);
  ASSERT_EQ(ev.exit_code, 0) << ev.output;
  auto evj = last_json_object(ev.output);
  EXPECT_DOUBLE_EQ(evj["eval_loss"].get<double>(), epochs.back()["eval_loss"].get<double>());
  EXPECT_DOUBLE_EQ(evj["eval_accuracy"].get<double>(), epochs.back()["eval_accuracy"].get<double>());

  // Merge → the unmerged logits, the family's names, nothing of the adapter.
  auto mr = run_cli("merge --adapter " + out + "/last --out " + d.file("merged"));
  ASSERT_EQ(mr.exit_code, 0) << mr.output;
  EXPECT_TRUE(file_exists(d.file("merged") + "/" + f.tokenizer_file)) << "merge copies the tokenizer";
  st::SafetensorsFile mf(d.file("merged") + "/model.safetensors");
  for (auto& k : mf.keys()) {
    EXPECT_EQ(k.find("lora"), std::string::npos) << k;
    EXPECT_EQ(k.find("base_model"), std::string::npos) << k;
    bool head = false;
    for (auto& h : f.heads) head = head || k.rfind(h + ".", 0) == 0;
    EXPECT_TRUE(head || k.rfind(f.prefix + ".", 0) == 0) << k;
  }
  LoadedModel merged = load_model(d.file("merged"));
  EXPECT_TRUE(merged.report.newly_initialized.empty());
  EXPECT_TRUE(merged.report.unexpected.empty());
  LoadOptions lo;
  lo.num_labels = 2;
  LoadedModel adapted = load_model(model, lo);
  load_adapter(adapted.model, out + "/last");
  merged.model->eval();
  adapted.model->eval();
  torch::manual_seed(3);
  const int64_t V = merged.config.vocab_size;
  at::Tensor ids = at::randint(5, V, {4, 20}, at::kLong), mask = at::ones({4, 20}, at::kLong);
  mask.index_put_({1, at::indexing::Slice(12, 20)}, 0);
  at::Tensor a = adapted.model->forward(ids, mask, {}), b = merged.model->forward(ids, mask, {});
  EXPECT_LT((a - b).abs().max().item<double>(), 1e-5);
  LoadedModel base = load_model(model, lo);
  auto bp = base.model->named_parameters();
  auto mp = merged.model->named_parameters();
  EXPECT_FALSE(at::equal(bp[f.adapted_weight], mp[f.adapted_weight])) << f.adapted_weight;
  EXPECT_TRUE(at::equal(bp[f.frozen_weight], mp[f.frozen_weight])) << f.frozen_weight;
  // Merged eval = adapter eval.
  auto em = run_cli("eval --model " + d.file("merged") + common);
  ASSERT_EQ(em.exit_code, 0) << em.output;
  EXPECT_NEAR(last_json_object(em.output)["eval_loss"].get<double>(), evj["eval_loss"].get<double>(), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(
    Families, FamilyPipeline,
    ::testing::Values(Family{"distilbert", "distilbert", "distilbert.transformer.layer.0.attention.q_lin.weight",
                             "distilbert.transformer.layer.0.attention.k_lin.weight", {"q_lin", "v_lin"},
                             {"pre_classifier", "classifier"}, "vocab.txt", "DistilBertTokenizer"},
                      Family{"roberta", "roberta", "roberta.encoder.layer.0.attention.self.query.weight",
                             "roberta.encoder.layer.0.attention.self.key.weight", {"query", "value"}, {"classifier"}, "merges.txt", "RobertaTokenizer"},
                      Family{"deberta-v2", "deberta", "deberta.encoder.layer.0.attention.self.query_proj.weight",
                             "deberta.encoder.layer.0.attention.self.key_proj.weight", {"query_proj", "value_proj"},
                             {"pooler", "classifier"}, "spm.model", "DebertaV2Tokenizer"}),
    [](const ::testing::TestParamInfo<Family>& i) { return i.param.arch == "deberta-v2" ? std::string("deberta_v2") : i.param.arch; });

TEST(FamilyCli, ViTInitModelWritesItsLayoutAndRefusesTextTasks) {
  TempDir d;
  auto r = run_cli("init-model --arch vit --hidden 32 --heads 2 --intermediate 64 --layers 1 --image-size 32 "
                   "--patch-size 8 --num-labels 10 --out " + d.file("vit"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto cfg = nlohmann::json::parse(read_text_file(d.file("vit/config.json")));
  EXPECT_EQ(cfg["architectures"][0], "ViTForImageClassification");
  EXPECT_EQ(cfg["image_size"], 32);
  EXPECT_EQ(cfg["patch_size"], 8);
  EXPECT_FALSE(cfg.contains("vocab_size"));
  auto pp = nlohmann::json::parse(read_text_file(d.file("vit/preprocessor_config.json")));
  EXPECT_EQ(pp["size"]["height"], 32);
  EXPECT_EQ(pp["image_processor_type"], "ViTImageProcessor");
  st::SafetensorsFile f(d.file("vit/model.safetensors"));
  EXPECT_EQ(f.info("vit.embeddings.position_embeddings").shape, (std::vector<int64_t>{1, 17, 32}));
  EXPECT_EQ(f.info("classifier.weight").shape, (std::vector<int64_t>{10, 32}));
  // A text task on an image model: a clear error naming the model, exit 1.
  r = run_cli("train --model " + d.file("vit") + " --task mrpc --data " + lorakit::testing::shared_dir() +
              "/data/glue --max-train-samples 8 --out " + d.file("run"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("is an image model (model_type vit); GLUE task mrpc needs a text model"), std::string::npos) << r.output;
  // Flags that cannot make a model: refused, and nothing is left behind.
  r = run_cli("init-model --arch vit --image-size 4 --patch-size 8 --out " + d.file("bad"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_FALSE(dir_exists(d.file("bad")));
  r = run_cli("init-model --arch vit --vocab x.txt --out " + d.file("bad"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  r = run_cli("init-model --arch distilbert --heads 5 --hidden 32 --out " + d.file("bad"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("not a multiple of num_attention_heads"), std::string::npos) << r.output;
  EXPECT_FALSE(dir_exists(d.file("bad")));
}
