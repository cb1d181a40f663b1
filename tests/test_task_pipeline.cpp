// `lorakit train / eval / merge` on the tasks beyond GLUE, end to end through the CLI: a tiny ViT on the
// real Fashion-MNIST of Debian's dataset-fashion-mnist, a tiny BERT and USE-lite on the real SQuAD dev
// file (split by article).
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "core/fileutil.h"
#include "support/helpers.h"

using lorakit::file_exists;
using lorakit::read_text_file;
using lorakit::testing::last_json_object;
using lorakit::testing::run_cli;
using lorakit::testing::TempDir;
using nlohmann::json;

namespace {

std::vector<json> jsonl(const std::string& path) {
  std::vector<json> out;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(json::parse(line));
  return out;
}

std::string squad_dir() { return lorakit::testing::shared_dir() + "/data/squad"; }

}  // namespace

TEST(ImagePipeline, TinyViTLearnsDebianFashionMnist) {
  ASSERT_TRUE(file_exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"))
      << "scripts/setup installs dataset-fashion-mnist";
  TempDir d;
  auto r = run_cli("init-model --arch vit --hidden 64 --layers 2 --heads 4 --intermediate 128 --image-size 28 "
                   "--patch-size 7 --num-labels 10 --out " + d.file("vit"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // No --data: the Debian package's files.
  r = run_cli("train --model " + d.file("vit") + " --task fashion-mnist --method full --lr 2e-3 --epochs 2 "
              "--max-train-samples 4000 --max-eval-samples 1000 --batch-size 64 --threads 1 --no-progress --out " +
              d.file("run"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto lines = jsonl(d.file("run/metrics.jsonl"));
  ASSERT_EQ(lines.size(), 2u);
  for (const char* k : {"train_loss", "train_accuracy", "eval_loss", "eval_accuracy", "generalization_gap"})
    EXPECT_TRUE(lines[1].contains(k)) << k;
  EXPECT_GT(lines[1]["eval_accuracy"].get<double>(), 0.4) << lines[1].dump();  // chance: 0.1
  EXPECT_LT(lines[1]["train_loss"].get<double>(), lines[0]["train_loss"].get<double>());
  // The saved model evaluates to the same accuracy.
  r = run_cli("eval --model " + d.file("run/last") + " --task fashion-mnist --max-eval-samples 1000 --threads 1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NEAR(last_json_object(r.output)["eval_accuracy"].get<double>(), lines[1]["eval_accuracy"].get<double>(), 1e-9);
  // A text model on an image task, an image folder that is not there: errors in words.
  r = run_cli("train --model " + d.file("vit") + " --task cifar10 --data " + d.file("nowhere") + " --out " + d.file("x"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("no data_batch_1.bin"), std::string::npos) << r.output;
}

TEST(SquadPipeline, TinyBertLoraTrainsEvaluatesAndMerges) {
  TempDir d;
  auto r = lorakit::testing::init_tiny_model(d.file("bert"), "--layers 2 --max-position 128");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run_cli("train --model " + d.file("bert") + " --task squad --data " + squad_dir() +
              " --method lora --lr 5e-3 --epochs 1 --max-train-samples 120 --max-eval-samples 60 --max-seq-len 128 "
              "--doc-stride 32 --batch-size 16 --threads 1 --no-progress --out " + d.file("run"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("split by article, the first 38 train, the last 10 evaluate"), std::string::npos) << r.output;
  auto lines = jsonl(d.file("run/metrics.jsonl"));
  ASSERT_EQ(lines.size(), 1u);
  ASSERT_TRUE(lines[0].contains("eval_exact_match") && lines[0].contains("eval_f1")) << lines[0].dump();
  const double f1 = lines[0]["eval_f1"].get<double>();
  EXPECT_GE(f1, 0.0);
  EXPECT_LE(f1, 100.0);
  // The adapter is PEFT's QUESTION_ANS kind with qa_outputs saved in full.
  const json cfg = json::parse(read_text_file(d.file("run/last/adapter_config.json")));
  EXPECT_EQ(cfg["task_type"], "QUESTION_ANS");
  EXPECT_EQ(cfg["modules_to_save"], json::array({"qa_outputs"}));
  // eval of the adapter reproduces the run's last evaluation; so does the merged model.
  r = run_cli("eval --adapter " + d.file("run/last") + " --task squad --data " + squad_dir() +
              " --max-eval-samples 60 --max-seq-len 128 --doc-stride 32 --threads 1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NEAR(last_json_object(r.output)["eval_f1"].get<double>(), f1, 1e-9);
  r = run_cli("merge --adapter " + d.file("run/last") + " --out " + d.file("merged"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(read_text_file(d.file("merged/config.json")).find("BertForQuestionAnswering"), std::string::npos);
  r = run_cli("eval --model " + d.file("merged") + " --task squad --data " + squad_dir() +
              " --max-eval-samples 60 --max-seq-len 128 --doc-stride 32 --threads 1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NEAR(last_json_object(r.output)["eval_f1"].get<double>(), f1, 1e-4);
  // A QA adapter on a classification task, a stride that leaves no room: refused in words.
  r = run_cli("eval --adapter " + d.file("run/last") + " --task mrpc --data " + lorakit::testing::shared_dir() +
              "/data/glue --threads 1");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("span question-answering head"), std::string::npos) << r.output;
  r = run_cli("eval --adapter " + d.file("run/last") + " --task squad --data " + squad_dir() +
              " --max-seq-len 64 --doc-stride 60 --max-eval-samples 5 --threads 1");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("--doc-stride"), std::string::npos) << r.output;
}

TEST(SquadPipeline, UseLiteLoraBeatsItsUntrainedHead) {
  std::string err;
  const std::string use = lorakit::testing::use_lite_dir(&err);
  ASSERT_FALSE(use.empty()) << err;
  TempDir d;
  const std::string common = " --task squad --data " + squad_dir() + " --max-eval-samples 200 --max-seq-len 128 --threads 1";
  auto base = run_cli("eval --model " + use + common);
  ASSERT_EQ(base.exit_code, 0) << base.output;
  const double f1_untrained = last_json_object(base.output)["eval_f1"].get<double>();
  auto r = run_cli("train --model " + use + common +
                   " --method lora --lr 2e-3 --epochs 1 --max-train-samples 400 --batch-size 16 --no-progress --out " +
                   d.file("run"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto lines = jsonl(d.file("run/metrics.jsonl"));
  ASSERT_EQ(lines.size(), 1u);
  const double f1 = lines[0]["eval_f1"].get<double>();
  EXPECT_GT(f1, f1_untrained + 1.0) << "untrained " << f1_untrained << ", after one epoch " << f1;
}
