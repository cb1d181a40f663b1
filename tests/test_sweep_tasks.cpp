// `lorakit sweep` on the tasks beyond GLUE: seed 001's Figure 1 protocol (LoRA, R-, GM-, RM-LoRA only on the
// classifier of a frozen tiny ViT, real Fashion-MNIST) with its Table 4 block and 2x2 plot, and SQuAD in
// Table 2's form (EM and F1 columns) on a tiny BERT.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/fileutil.h"
#include "support/helpers.h"

using lorakit::file_exists;
using lorakit::read_text_file;
using lorakit::write_text_atomically;
using lorakit::testing::run_cli;
using lorakit::testing::run_command;
using lorakit::testing::TempDir;
using nlohmann::json;

TEST(SweepTasks, Figure1ProtocolTrainsOnlyTheClassifiersLoraAndPlots) {
  TempDir d;
  auto r = run_cli("init-model --arch vit --hidden 32 --layers 1 --heads 2 --intermediate 64 --image-size 28 "
                   "--patch-size 7 --num-labels 10 --out " + d.file("vit"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const json cfg = {{"model", d.file("vit")},
                    {"out", d.file("sweep")},
                    {"tasks", {"fashion-mnist"}},
                    {"methods", {"lora", "r-lora", "gm-lora", "rm-lora"}},
                    {"ranks", {2}},
                    {"seeds", {1}},
                    {"epochs", 2},
                    {"lr", 5e-3},
                    {"batch_size", 32},
                    {"max_train_samples", 256},
                    {"max_eval_samples", 128},
                    {"lora", {{"target_modules", {"classifier"}}, {"modules_to_save", json::array()}}},
                    {"threads", 1},
                    {"progress", false}};
  write_text_atomically(d.file("cfg.json"), cfg.dump());
  r = run_cli("sweep --config " + d.file("cfg.json"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* m : {"lora", "r-lora", "gm-lora", "rm-lora"}) {
    const std::string run = d.file(std::string("sweep/runs/fashion-mnist/") + m + "-r2/seed1");
    ASSERT_TRUE(file_exists(run + "/results.json")) << m << "\n" << r.output;
    const json res = json::parse(read_text_file(run + "/results.json"));
    // Nothing but lora_A (2 × 32) and lora_B (10 × 2) of the classifier trains.
    EXPECT_EQ(res["trainable_params"].get<int64_t>(), 2 * 32 + 10 * 2) << m;
    const json ad = json::parse(read_text_file(run + "/last/adapter_config.json"));
    EXPECT_EQ(ad["target_modules"], json::array({"classifier"})) << m;
  }
  const std::string md = read_text_file(d.file("sweep/results.md"));
  EXPECT_NE(md.find("Fashion-MNIST"), std::string::npos) << md;
  EXPECT_NE(md.find("## Table 4"), std::string::npos) << md;
  // The 2x2 plot's data: one row per epoch with test loss, test accuracy, train accuracy and gap.
  const std::string dat = read_text_file(d.file("sweep/plots/fashion-mnist.dat"));
  EXPECT_NE(dat.find("\n2 "), std::string::npos) << dat;
  if (run_command("command -v gnuplot").exit_code == 0) {
    const std::string png = read_text_file(d.file("sweep/plots/fashion-mnist.png"));
    ASSERT_GE(png.size(), 8u);
    EXPECT_EQ(png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  }
}

TEST(SweepTasks, SquadReportsExactMatchAndF1) {
  TempDir d;
  auto r = lorakit::testing::init_tiny_model(d.file("bert"), "--layers 1 --max-position 128");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const json cfg = {{"model", d.file("bert")},
                    {"out", d.file("sweep")},
                    {"tasks", {"SQuAD"}},
                    {"task_data", {{"squad", lorakit::testing::shared_dir() + "/data/squad"}}},
                    {"methods", {"lora", "gr-lora"}},
                    {"ranks", {4}},
                    {"seeds", {1}},
                    {"epochs", 1},
                    {"lr", 5e-3},
                    {"batch_size", 16},
                    {"max_seq_len", 128},
                    {"max_train_samples", 48},
                    {"max_eval_samples", 24},
                    {"lora", {{"modules_to_save", {"qa_outputs"}}}},
                    {"threads", 1},
                    {"progress", false}};
  write_text_atomically(d.file("cfg.json"), cfg.dump());
  r = run_cli("sweep --config " + d.file("cfg.json"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* m : {"lora", "gr-lora"}) {
    const std::string run = d.file(std::string("sweep/runs/squad/") + m + "-r4/seed1");
    ASSERT_TRUE(file_exists(run + "/results.json")) << m << "\n" << r.output;
    const json res = json::parse(read_text_file(run + "/results.json"));
    EXPECT_EQ(res["main_metric"], "f1") << m;
    EXPECT_TRUE(res["final"].contains("eval_exact_match")) << res.dump();
  }
  const std::string md = read_text_file(d.file("sweep/results.md"));
  EXPECT_NE(md.find("SQuAD v1.1"), std::string::npos) << md;
  EXPECT_NE(md.find("EM"), std::string::npos) << md;
  EXPECT_NE(md.find("## Table 2: SQuAD v1.1"), std::string::npos) << md;
  EXPECT_NE(md.find("| LoRA R=4 | 4 / 4 |"), std::string::npos) << md;
}
