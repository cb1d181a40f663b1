// End to end through the CLI on real MRPC: init-model → train (LoRA, full) → eval → merge.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/torch.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/fileutil.h"
#include "models/checkpoint.h"
#include "support/helpers.h"

using lorakit::testing::last_json_object;
using lorakit::testing::read_jsonl;
#include "tuners/lora/model.h"
#include "tuners/method.h"

using namespace lorakit;
using lorakit::testing::run_cli;
using lorakit::testing::TempDir;

namespace {

class TrainCli : public lorakit::testing::TinyModelSuite<TrainCli> {
 public:
  static constexpr const char* kModelFlags = "--layers 2 --max-position 128";

 protected:
  static std::string common() {
    return " --model " + model() + " --task mrpc --data " + data() +
           " --max-train-samples 512 --max-eval-samples 96 --max-seq-len 64 --batch-size 16 --threads 1 --no-progress";
  }
};

}  // namespace

TEST_F(TrainCli, LoraTrainsReloadsAndMerges) {
  const std::string out = dir_->file("lora");
  auto r = run_cli("train" + common() + " --method lora --r 4 --alpha 8 --epochs 3 --lr 2e-3 --seed 7 --out " + out);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto epochs = read_jsonl(out + "/metrics.jsonl");
  ASSERT_EQ(epochs.size(), 3u);
  for (const char* k : {"train_loss", "train_accuracy", "eval_loss", "eval_accuracy", "eval_f1", "generalization_gap",
                        "train_seconds", "trainable_params", "inference_params"})
    EXPECT_TRUE(epochs[0].contains(k)) << k;
  EXPECT_LT(epochs.back()["train_loss"].get<double>(), epochs.front()["train_loss"].get<double>());
  EXPECT_TRUE(file_exists(out + "/last/adapter_model.safetensors"));
  EXPECT_TRUE(file_exists(out + "/best/adapter_config.json"));

  // Same seed → identical metrics.
  auto r2 = run_cli("train" + common() + " --method lora --r 4 --alpha 8 --epochs 3 --lr 2e-3 --seed 7 --out " +
                    dir_->file("lora2"));
  ASSERT_EQ(r2.exit_code, 0) << r2.output;
  auto epochs2 = read_jsonl(dir_->file("lora2") + "/metrics.jsonl");
  for (size_t i = 0; i < epochs.size(); ++i) {
    EXPECT_EQ(epochs[i]["train_loss"], epochs2[i]["train_loss"]);
    EXPECT_EQ(epochs[i]["eval_loss"], epochs2[i]["eval_loss"]);
  }

  // The saved adapter reloads in a fresh process with identical eval metrics.
  auto ev = run_cli("eval --model " + model() + " --adapter " + out + "/last --task mrpc --data " + data() +
                    " --max-eval-samples 96 --max-seq-len 64 --threads 1");
  ASSERT_EQ(ev.exit_code, 0) << ev.output;
  auto evj = last_json_object(ev.output);
  EXPECT_DOUBLE_EQ(evj["eval_loss"].get<double>(), epochs.back()["eval_loss"].get<double>());
  EXPECT_DOUBLE_EQ(evj["eval_accuracy"].get<double>(), epochs.back()["eval_accuracy"].get<double>());
  EXPECT_DOUBLE_EQ(evj["eval_f1"].get<double>(), epochs.back()["eval_f1"].get<double>());

  // Merge: a plain checkpoint with the base's key names, same logits as base + adapter.
  auto mr = run_cli("merge --model " + model() + " --adapter " + out + "/last --out " + dir_->file("merged"));
  ASSERT_EQ(mr.exit_code, 0) << mr.output;
  LoadedModel merged = load_model(dir_->file("merged"));
  EXPECT_TRUE(merged.report.newly_initialized.empty());
  EXPECT_TRUE(merged.report.unexpected.empty());
  LoadOptions lo;
  lo.num_labels = 2;
  LoadedModel adapted = load_model(model(), lo);
  load_adapter(adapted.model, out + "/last");
  merged.model->eval();
  adapted.model->eval();
  torch::manual_seed(3);
  at::Tensor ids = at::randint(1000, 5000, {4, 20}, at::kLong);
  at::Tensor a = adapted.model->forward(ids, {}, {}), b = merged.model->forward(ids, {}, {});
  EXPECT_LT((a - b).abs().max().item<double>(), 1e-5);
  // The merged model's weights differ from the base (the adapter learned something).
  LoadedModel base = load_model(model(), lo);
  auto bp = base.model->named_parameters();
  auto mp = merged.model->named_parameters();
  EXPECT_FALSE(at::equal(bp["bert.encoder.layer.0.attention.self.query.weight"],
                         mp["bert.encoder.layer.0.attention.self.query.weight"]));
  EXPECT_TRUE(at::equal(bp["bert.encoder.layer.0.attention.self.key.weight"],
                        mp["bert.encoder.layer.0.attention.self.key.weight"]));

  auto ins = run_cli("inspect --json " + out + "/last");
  ASSERT_EQ(ins.exit_code, 0) << ins.output;
  auto insj = last_json_object(ins.output);
  EXPECT_EQ(insj["trainable_params"], epochs[0]["trainable_params"]);
}

TEST_F(TrainCli, FullFineTuningTrainsAndSavesACheckpoint) {
  const std::string out = dir_->file("full");
  auto r = run_cli("train" + common() + " --method full --epochs 2 --lr 1e-4 --out " + out);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto epochs = read_jsonl(out + "/metrics.jsonl");
  ASSERT_EQ(epochs.size(), 2u);
  EXPECT_LT(epochs.back()["train_loss"].get<double>(), epochs.front()["train_loss"].get<double>());
  LoadedModel m = load_model(model());
  EXPECT_EQ(epochs[0]["trainable_params"].get<int64_t>(), count_all(*m.model));
  auto ev = run_cli("eval --model " + out + "/last --task mrpc --data " + data() +
                    " --max-eval-samples 96 --max-seq-len 64 --threads 1");
  ASSERT_EQ(ev.exit_code, 0) << ev.output;
  EXPECT_DOUBLE_EQ(last_json_object(ev.output)["eval_loss"].get<double>(), epochs.back()["eval_loss"].get<double>());
}

TEST_F(TrainCli, BadInputsFailCleanly) {
  TempDir d;
  // Malformed TSV: a row with too few columns.
  lorakit::testing::write_text(d.file("train.tsv"),
                               "\xEF\xBB\xBFQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t1\t2\ta\tb\n0\t3\tonly three\n");
  auto r = run_cli("train" + common() + " --train-file " + d.file("train.tsv") + " --out " + d.file("o"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find(d.file("train.tsv") + ":3"), std::string::npos) << r.output;
  // Missing model directory.
  r = run_cli("train --model /no/such/model --task mrpc --data " + data() + " --out " + d.file("o"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("/no/such/model"), std::string::npos) << r.output;
  // Unknown task and method.
  r = run_cli("train --model " + model() + " --task nosuch --data " + data() + " --out " + d.file("o"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("nosuch"), std::string::npos) << r.output;
  r = run_cli("train" + common() + " --method bogus --out " + d.file("o"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("unknown method 'bogus'"), std::string::npos) << r.output;
  // Truncated weights.
  const std::string bad = d.file("badmodel");
  make_dirs(bad);
  write_text_atomically(bad + "/config.json", read_text_file(model() + "/config.json"));
  write_text_atomically(bad + "/vocab.txt", read_text_file(model() + "/vocab.txt"));
  std::string w = read_text_file(model() + "/model.safetensors");
  lorakit::testing::write_bytes(bad + "/model.safetensors", w.substr(0, w.size() / 2));
  r = run_cli("train --model " + bad + " --task mrpc --data " + data() + " --out " + d.file("o"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("model.safetensors"), std::string::npos) << r.output;
}

TEST_F(TrainCli, RobertaRegressionOnStsbTrainsAndMerges) {
  const std::string rb = dir_->file("roberta");
  auto r = lorakit::testing::init_tiny_model(rb, "--arch roberta --layers 1 --max-position 128");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string out = dir_->file("stsb");
  r = run_cli("train --model " + rb + " --task stsb --data " + data() +
              " --method lora --max-train-samples 256 --max-eval-samples 64 --max-seq-len 64 --epochs 2 --lr 3e-3"
              " --threads 1 --no-progress --out " + out);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto epochs = read_jsonl(out + "/metrics.jsonl");
  ASSERT_EQ(epochs.size(), 2u);
  EXPECT_TRUE(epochs[0].contains("eval_pearson"));
  EXPECT_TRUE(epochs[0].contains("eval_spearmanr"));
  EXPECT_LT(epochs[1]["train_loss"].get<double>(), epochs[0]["train_loss"].get<double>());
  r = run_cli("merge --adapter " + out + "/last --out " + dir_->file("stsb-merged"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto ev = run_cli("eval --model " + dir_->file("stsb-merged") + " --task stsb --data " + data() +
                    " --max-eval-samples 64 --max-seq-len 64 --threads 1");
  ASSERT_EQ(ev.exit_code, 0) << ev.output;
  EXPECT_NEAR(last_json_object(ev.output)["eval_loss"].get<double>(), epochs.back()["eval_loss"].get<double>(), 1e-4);
}
