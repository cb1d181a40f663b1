// `lorakit sweep` end to end on a tiny BERT and real MRPC rows: runs, tables, plots, resuming, redoing
// an interrupted run, changed settings; plus the configuration parser and planner in-process.
#include <gtest/gtest.h>
#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/errors.h"
#include "core/fileutil.h"
#include "support/helpers.h"

using lorakit::testing::read_jsonl;
using lorakit::testing::read_bytes;
#include "sweep/sweep.h"
#include "tuners/registry.h"

using namespace lorakit;
using lorakit::testing::run_cli;
using lorakit::testing::run_command;
using lorakit::testing::TempDir;
namespace fs = std::filesystem;

namespace {

// CSV without quoted commas (the sweep quotes only fields that need it; ours do not).
std::vector<std::map<std::string, std::string>> read_csv(const std::string& path) {
  std::ifstream is(path);
  std::string line;
  std::vector<std::string> header;
  std::vector<std::map<std::string, std::string>> rows;
  auto split = [](const std::string& s) {
    std::vector<std::string> f;
    std::string cur;
    for (char c : s) {
      if (c == ',') {
        f.push_back(cur);
        cur.clear();
      } else {
        cur += c;
      }
    }
    f.push_back(cur);
    return f;
  };
  while (std::getline(is, line)) {
    if (line.empty()) continue;
    auto f = split(line);
    if (header.empty()) {
      header = f;
      continue;
    }
    EXPECT_EQ(f.size(), header.size()) << path << ": " << line;
    std::map<std::string, std::string> row;
    for (size_t i = 0; i < header.size() && i < f.size(); ++i) row[header[i]] = f[i];
    rows.push_back(row);
  }
  return rows;
}

bool has_gnuplot() { return run_command("command -v gnuplot").exit_code == 0; }

std::vector<std::string> lora_family() {
  std::vector<std::string> out;
  for (auto& n : method_names())
    if (n != "full") out.push_back(n);
  return out;
}

class Sweep : public lorakit::testing::TinyModelSuite<Sweep> {
 public:
  static constexpr const char* kModelFlags = "--layers 1 --max-position 128";

 protected:
  static nlohmann::json base_config(const std::string& out) {
    nlohmann::json methods = nlohmann::json::array({"full"});
    for (auto& m : lora_family()) methods.push_back(m);
    return {{"model", model()},
            {"data", data()},
            {"out", out},
            {"tasks", {"mrpc"}},
            {"methods", methods},
            {"optional_methods", {"no-such-method"}},
            {"ranks", {4}},
            {"seeds", {1, 2}},
            {"epochs", 1},
            {"lr", {{"default", 2e-3}, {"full", 1e-4}}},
            {"batch_size", 16},
            {"max_seq_len", 64},
            {"max_train_samples", {{"MRPC", 64}}},
            {"max_eval_samples", 32},
            {"threads", 1},
            {"progress", false}};
  }
};

std::map<std::string, fs::file_time_type> results_mtimes(const std::string& out) {
  std::map<std::string, fs::file_time_type> m;
  for (auto& e : fs::recursive_directory_iterator(out + "/runs"))
    if (e.path().filename() == "results.json") m[e.path().string()] = fs::last_write_time(e.path());
  return m;
}

}  // namespace

TEST_F(Sweep, RunsResumesRedoesAndReports) {
  const std::string out = dir_->file("sweep");
  const std::string cfg = dir_->file("sweep.json");
  write_text_atomically(cfg, base_config(out).dump(2));
  const size_t n_methods = 1 + lora_family().size();
  const size_t n_runs = 2 * n_methods;  // 2 seeds × (full + each LoRA-family method at r = 4)

  auto r = run_cli("sweep --config " + cfg);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find(fmt::format("{} runs: {} ran, 0 skipped", n_runs, n_runs)), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("'no-such-method' is not registered"), std::string::npos) << r.output;
  EXPECT_TRUE(file_exists(out + "/sweep_config.json"));
  EXPECT_TRUE(file_exists(out + "/runs/mrpc/full/seed1/results.json"));
  EXPECT_TRUE(file_exists(out + "/runs/mrpc/lora-r4/seed2/results.json"));
  EXPECT_FALSE(fs::exists(out + "/runs/mrpc/full-r4"));  // rank does not apply to full fine-tuning

  // Each run records its wall time and samples/s.
  auto res = nlohmann::json::parse(read_text_file(out + "/runs/mrpc/lora-r4/seed1/results.json"));
  EXPECT_GT(res["sweep"]["run_wall_seconds"].get<double>(), 0.0);
  EXPECT_GT(res["train_samples_per_second"].get<double>(), 0.0);
  EXPECT_EQ(nlohmann::json::parse(read_text_file(out + "/runs/mrpc/lora-r4/seed1/run_spec.json"))["lora"]["alpha"], 8.0);

  // results.csv: Table 1 rows, mean ± std over the two seeds of each run's best epoch.
  auto rows = read_csv(out + "/results.csv");
  ASSERT_EQ(rows.size(), n_methods);
  EXPECT_EQ(rows[0]["method"], "full");
  EXPECT_EQ(rows[0]["label"], "Full FT");
  EXPECT_EQ(rows[1]["method"], "lora");
  EXPECT_EQ(rows[1]["label"], "LoRA R=4");
  for (auto& row : rows) {
    EXPECT_EQ(row["mrpc_seeds"], "2") << row["method"];
    for (const char* k : {"mrpc_accuracy_mean", "mrpc_accuracy_std", "mrpc_f1_mean", "mrpc_f1_std", "mrpc_t_params"})
      EXPECT_FALSE(row[k].empty()) << row["method"] << " " << k;
  }
  auto best_of = [&](const std::string& run_dir) {
    auto ep = read_jsonl(run_dir + "/metrics.jsonl");
    nlohmann::json best;
    for (auto& e : ep)
      if (best.is_null() || e["eval_accuracy"].get<double>() > best["eval_accuracy"].get<double>()) best = e;
    return best;
  };
  const auto b1 = best_of(out + "/runs/mrpc/lora-r4/seed1"), b2 = best_of(out + "/runs/mrpc/lora-r4/seed2");
  const double a1 = b1["eval_accuracy"], a2 = b2["eval_accuracy"];
  const double mean = (a1 + a2) / 2, sd = std::abs(a1 - a2) / std::sqrt(2.0);
  EXPECT_NEAR(std::stod(rows[1]["mrpc_accuracy_mean"]), mean, 1e-5);
  EXPECT_NEAR(std::stod(rows[1]["mrpc_accuracy_std"]), sd, 1e-5);
  EXPECT_EQ(std::stoll(rows[1]["mrpc_t_params"]), res["trainable_params"].get<int64_t>());

  // results.md: Table 1 in seed 001's form, the Table 4 block, timings, plots.
  const std::string md = read_text_file(out + "/results.md");
  EXPECT_NE(md.find("| Method | # T / I-Params | MRPC Acc / F1 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| Full FT | "), std::string::npos) << md;
  EXPECT_NE(md.find(fmt::format("| LoRA R=4 | ")), std::string::npos) << md;
  EXPECT_NE(md.find(fmt::format("{:.3f} ± {:.3f}", mean, sd)), std::string::npos) << md;
  EXPECT_NE(md.find("not available in this build: no-such-method"), std::string::npos) << md;
  EXPECT_NE(md.find("## Table 4"), std::string::npos) << md;
  if (b1.contains("dw_rank_mean")) {
    EXPECT_NE(md.find("| Method | Rank of ΔW | Orthogonality loss of ΔW | MRPC Acc |"), std::string::npos) << md;
    auto t4 = read_csv(out + "/table4.csv");
    ASSERT_EQ(t4.size(), lora_family().size());
    EXPECT_EQ(t4[0]["method"], "lora");
    EXPECT_NEAR(std::stod(t4[0]["dw_orth_loss_mean"]),
                (b1["dw_orth_loss_mean"].get<double>() + b2["dw_orth_loss_mean"].get<double>()) / 2, 1e-3);
  }
  auto runs = read_csv(out + "/runs.csv");
  ASSERT_EQ(runs.size(), n_runs);
  for (auto& row : runs) {
    EXPECT_EQ(row["status"], "finished");
    EXPECT_FALSE(row["wall_seconds"].empty());
    EXPECT_FALSE(row["train_samples_per_second"].empty());
  }
  if (has_gnuplot()) {
    const std::string png = read_text_file(out + "/plots/mrpc.png");
    ASSERT_GE(png.size(), 8u);
    EXPECT_EQ(png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
    EXPECT_NE(md.find("![MRPC](plots/mrpc.png)"), std::string::npos) << md;
  } else {
    EXPECT_NE(md.find("No plots"), std::string::npos) << md;
  }

  // Second invocation: everything is finished, nothing is touched.
  const auto before = results_mtimes(out);
  ASSERT_EQ(before.size(), n_runs);
  r = run_cli("sweep --config " + cfg);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find(fmt::format("{} runs: 0 ran, {} skipped", n_runs, n_runs)), std::string::npos) << r.output;
  EXPECT_EQ(results_mtimes(out), before);

  // An interrupted run (no results.json, stray files) is redone from scratch, and only that one;
  // same seed, same metrics.
  const std::string victim = out + "/runs/mrpc/lora-r4/seed2";
  const auto old_epochs = read_jsonl(victim + "/metrics.jsonl");
  fs::remove(victim + "/results.json");
  write_text_atomically(victim + "/stray.txt", "left over\n");
  r = run_cli("sweep --config " + cfg + " --dry-run");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("partial"), std::string::npos) << r.output;
  r = run_cli("sweep --config " + cfg);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find(fmt::format("{} runs: 1 ran, {} skipped", n_runs, n_runs - 1)), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("mrpc lora r4 seed 2: redoing an unfinished run"), std::string::npos) << r.output;
  EXPECT_TRUE(file_exists(victim + "/results.json"));
  EXPECT_FALSE(file_exists(victim + "/stray.txt"));
  auto after = results_mtimes(out);
  for (auto& [path, t] : before)
    if (path.find("lora-r4/seed2") == std::string::npos) EXPECT_EQ(after[path], t) << path;
  const auto new_epochs = read_jsonl(victim + "/metrics.jsonl");
  ASSERT_EQ(new_epochs.size(), old_epochs.size());
  EXPECT_EQ(new_epochs[0]["eval_loss"], old_epochs[0]["eval_loss"]);
  EXPECT_EQ(new_epochs[0]["train_loss"], old_epochs[0]["train_loss"]);

  // Changed settings are not silently mixed with old results.
  r = run_cli("sweep --config " + cfg + " --epochs 2 --dry-run");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("changed"), std::string::npos) << r.output;
  r = run_cli("sweep --config " + cfg + " --epochs 2 --methods lora --seeds 1");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("epochs: 1 → 2"), std::string::npos) << r.output;
  EXPECT_EQ(results_mtimes(out), after);

  // Plot failures do not stop the report.
  auto cj = base_config(out);
  cj["gnuplot"] = "/no/such/gnuplot";
  write_text_atomically(dir_->file("nognuplot.json"), cj.dump());
  r = run_cli("sweep --config " + dir_->file("nognuplot.json") + " --report-only");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string md2 = read_text_file(out + "/results.md");
  EXPECT_NE(md2.find("**No plots:** gnuplot not found"), std::string::npos) << md2;
  EXPECT_NE(md2.find("| LoRA R=4 | "), std::string::npos) << md2;

  // --redo-changed redoes exactly the runs whose settings changed.
  r = run_cli("sweep --config " + cfg + " --epochs 2 --methods lora --seeds 1 --redo-changed --no-plots");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("1 runs: 1 ran, 0 skipped"), std::string::npos) << r.output;
  EXPECT_EQ(read_jsonl(out + "/runs/mrpc/lora-r4/seed1/metrics.jsonl").size(), 2u);
  EXPECT_EQ(read_jsonl(out + "/runs/mrpc/lora-r4/seed2/metrics.jsonl").size(), 1u);
}

TEST_F(Sweep, RunEqualsTheTrainCommand) {
  // A sweep run is exactly `lorakit train` with the same settings (subsample "first" = --max-train-samples).
  const std::string out = dir_->file("eq");
  auto cj = base_config(out);
  cj["methods"] = {"lora"};
  cj["seeds"] = {3};
  cj["subsample"] = "first";
  cj["gnuplot"] = "";
  write_text_atomically(dir_->file("eq.json"), cj.dump());
  auto r = run_cli("sweep --config " + dir_->file("eq.json"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("plots disabled"), std::string::npos) << r.output;
  r = run_cli("train --model " + model() + " --task mrpc --data " + data() +
              " --max-train-samples 64 --max-eval-samples 32 --max-seq-len 64 --batch-size 16 --threads 1 "
              "--no-progress --method lora --r 4 --alpha 8 --epochs 1 --lr 2e-3 --seed 3 --out " +
              dir_->file("eq-train"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto a = read_jsonl(out + "/runs/mrpc/lora-r4/seed3/metrics.jsonl");
  const auto b = read_jsonl(dir_->file("eq-train") + "/metrics.jsonl");
  ASSERT_EQ(a.size(), 1u);
  ASSERT_EQ(b.size(), 1u);
  for (const char* k : {"train_loss", "train_accuracy", "eval_loss", "eval_accuracy", "eval_f1", "trainable_params"})
    EXPECT_EQ(a[0][k], b[0][k]) << k;
}

TEST_F(Sweep, AKilledRunGoesOnFromItsCheckpoint) {
  // The sweep process is killed (SIGKILL) at step 3 of its first run, which has a checkpoint at step 2;
  // the next invocation resumes that run and ends with the uninterrupted sweep's adapter and metrics.
  auto cj = base_config(dir_->file("kill-ref"));
  cj["methods"] = {"rm-lora"};
  cj["seeds"] = {5};
  cj["epochs"] = 2;
  cj["save_steps"] = 2;
  cj["gnuplot"] = "";
  write_text_atomically(dir_->file("kill-ref.json"), cj.dump());
  auto r = run_cli("sweep --config " + dir_->file("kill-ref.json"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  cj["out"] = dir_->file("kill");
  write_text_atomically(dir_->file("kill.json"), cj.dump());
  r = run_command("LORAKIT_FAULT=step:3 " + std::string(LORAKIT_CLI) + " sweep --config " + dir_->file("kill.json"));
  ASSERT_EQ(r.exit_code, 128 + 9) << r.output;
  // A copy whose checkpoint records another precision (as one made where auto chose bf16) is not gone on
  // from: that run starts over, and still ends as the reference.
  const std::string run_dir = "/runs/mrpc/rm-lora-r4/seed5";
  fs::copy(dir_->file("kill"), dir_->file("kill-other"), fs::copy_options::recursive);
  {
    std::string state_file = dir_->file("kill-other") + run_dir + "/checkpoint/trainer_state.json";
    if (!fs::exists(state_file)) state_file = dir_->file("kill-other") + run_dir + "/checkpoint.old/trainer_state.json";
    auto st = nlohmann::json::parse(read_bytes(state_file));
    ASSERT_EQ(st["flags"]["precision"], "fp32");
    st["flags"]["precision"] = "bf16";
    write_text_atomically(state_file, st.dump());
  }
  cj["out"] = dir_->file("kill-other");
  write_text_atomically(dir_->file("kill-other.json"), cj.dump());
  r = run_cli("sweep --config " + dir_->file("kill-other.json"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output.find("resuming from"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("FAILED"), std::string::npos) << r.output;
  EXPECT_EQ(read_bytes(dir_->file("kill-ref") + run_dir + "/last/adapter_model.safetensors"),
            read_bytes(dir_->file("kill-other") + run_dir + "/last/adapter_model.safetensors"));
  r = run_cli("sweep --config " + dir_->file("kill.json"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("going on from its checkpoint"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("resuming from"), std::string::npos) << r.output;
  const std::string a = dir_->file("kill-ref") + "/runs/mrpc/rm-lora-r4/seed5", b = dir_->file("kill") + "/runs/mrpc/rm-lora-r4/seed5";
  EXPECT_EQ(read_bytes(a + "/last/adapter_model.safetensors"), read_bytes(b + "/last/adapter_model.safetensors"));
  const auto ea = read_jsonl(a + "/metrics.jsonl"), eb = read_jsonl(b + "/metrics.jsonl");
  ASSERT_EQ(ea.size(), 2u);
  ASSERT_EQ(eb.size(), 2u);
  for (size_t i = 0; i < 2; ++i)
    for (const char* k : {"train_loss", "train_accuracy", "eval_loss", "eval_accuracy", "eval_f1", "orth_penalty_mean"})
      EXPECT_EQ(ea[i][k], eb[i][k]) << k << " epoch " << i + 1;
}

// $LORAKIT_PRECISION is read once, before the sweep writes anything: a bad value is one error, not a
// failure recorded for every run.
TEST_F(Sweep, ABadPrecisionIsOneErrorBeforeAnyRun) {
  auto cj = base_config(dir_->file("bad-precision"));
  cj["gnuplot"] = "";
  write_text_atomically(dir_->file("bad-precision.json"), cj.dump());
  auto r = run_command("LORAKIT_PRECISION=half " + std::string(LORAKIT_CLI) + " sweep --config " +
                       dir_->file("bad-precision.json"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("LORAKIT_PRECISION: 'half' is not one of auto, fp32, bf16"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("FAILED"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir_->file("bad-precision"))) << "nothing is written";
}

TEST_F(Sweep, NprocWorkersRunEachRunOnceAndTheReportIsWhole) {
  // Two worker processes share 4 runs; each run is trained by exactly one of them, with the serial sweep's
  // metrics, and the launcher writes the report.
  auto cj = base_config(dir_->file("par"));
  cj["methods"] = {"lora", "rm-lora"};
  cj["seeds"] = {1, 2};
  cj["gnuplot"] = "";
  write_text_atomically(dir_->file("par.json"), cj.dump());
  auto r = run_cli("sweep --nproc 2 --config " + dir_->file("par.json"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* label : {"mrpc lora r4 seed 1", "mrpc lora r4 seed 2", "mrpc rm-lora r4 seed 1", "mrpc rm-lora r4 seed 2"}) {
    const std::string running = std::string(label) + ": running";
    const auto first = r.output.find(running);
    EXPECT_NE(first, std::string::npos) << label << "\n" << r.output;
    EXPECT_EQ(r.output.find(running, first + 1), std::string::npos) << label << " ran twice\n" << r.output;
  }
  EXPECT_NE(r.output.find("worker 1/2"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("worker 2/2"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("report of 4 runs (4 finished)"), std::string::npos) << r.output;
  EXPECT_TRUE(file_exists(dir_->file("par") + "/results.md"));
  EXPECT_FALSE(fs::exists(dir_->file("par") + "/.claims"));
  // The same runs one after another: the same metrics.
  cj["out"] = dir_->file("ser");
  write_text_atomically(dir_->file("ser.json"), cj.dump());
  r = run_cli("sweep --config " + dir_->file("ser.json"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* run : {"lora-r4/seed1", "rm-lora-r4/seed2"}) {
    const auto a = read_jsonl(dir_->file("par") + "/runs/mrpc/" + run + "/metrics.jsonl");
    const auto b = read_jsonl(dir_->file("ser") + "/runs/mrpc/" + run + "/metrics.jsonl");
    ASSERT_EQ(a.size(), b.size()) << run;
    for (const char* k : {"train_loss", "eval_loss", "eval_f1"}) EXPECT_EQ(a[0][k], b[0][k]) << run << " " << k;
  }
}

TEST_F(Sweep, AFailedRunIsRecordedAndTheSweepGoesOn) {
  const std::string out = dir_->file("fail");
  auto cj = base_config(out);
  cj["methods"] = {"lora", "full"};
  cj["seeds"] = {1};
  cj["lora"] = {{"target_modules", {"no_such_module"}}};
  cj["gnuplot"] = "";
  write_text_atomically(dir_->file("fail.json"), cj.dump());
  auto r = run_cli("sweep --config " + dir_->file("fail.json"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("mrpc lora r4 seed 1: FAILED: target modules matched no linear layer"), std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("2 runs: 1 ran, 0 skipped (finished), 1 failed"), std::string::npos) << r.output;
  EXPECT_TRUE(file_exists(out + "/runs/mrpc/full/seed1/results.json"));
  EXPECT_TRUE(file_exists(out + "/runs/mrpc/lora-r4/seed1/error.txt"));
  EXPECT_FALSE(file_exists(out + "/runs/mrpc/lora-r4/seed1/results.json"));
  const std::string md = read_text_file(out + "/results.md");
  EXPECT_NE(md.find("### Unfinished runs"), std::string::npos) << md;
  EXPECT_NE(md.find("- mrpc lora r4 seed 1: target modules matched no linear layer"), std::string::npos) << md;
  EXPECT_NE(md.find("| LoRA R=4 | – | – / – |"), std::string::npos) << md;
  auto runs = read_csv(out + "/runs.csv");
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[0]["status"], "failed");
  EXPECT_EQ(runs[1]["status"], "finished");
  // Fixed configuration: only the failed run is redone.
  cj.erase("lora");
  write_text_atomically(dir_->file("fail.json"), cj.dump());
  r = run_cli("sweep --config " + dir_->file("fail.json"));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("2 runs: 1 ran, 1 skipped"), std::string::npos) << r.output;
  EXPECT_FALSE(file_exists(out + "/runs/mrpc/lora-r4/seed1/error.txt"));
}

TEST_F(Sweep, ConfigParsingAndPlanning) {
  auto cj = base_config(dir_->file("plan"));
  cj["tasks"] = {"MRPC", "sts-b"};
  cj["methods"] = {"full", "lora"};
  cj["ranks"] = {4, 8};
  cj["seeds"] = {1, 2, 3};
  cj["epochs"] = {{"default", 3}, {"MRPC", 5}};
  SweepConfig c = SweepConfig::from_json(cj, "test");
  EXPECT_EQ(c.tasks, (std::vector<std::string>{"mrpc", "stsb"}));
  EXPECT_EQ(c.epochs.get("mrpc"), 5);
  EXPECT_EQ(c.epochs.get("stsb"), 3);
  EXPECT_EQ(c.max_train_samples.get("mrpc"), 64);
  EXPECT_EQ(c.max_train_samples.get("stsb"), -1);
  EXPECT_DOUBLE_EQ(c.lr.get("full"), 1e-4);
  EXPECT_DOUBLE_EQ(c.lr.get("lora"), 2e-3);
  auto runs = plan_sweep(c);
  // 2 tasks × 3 seeds × (full once + lora at 2 ranks)
  ASSERT_EQ(runs.size(), 2u * 3u * 3u);
  EXPECT_EQ(runs[0].label(), "mrpc full seed 1");
  EXPECT_EQ(runs[1].label(), "mrpc lora r4 seed 1");
  EXPECT_EQ(runs[2].label(), "mrpc lora r8 seed 1");
  EXPECT_EQ(runs[2].spec["lora"]["alpha"], 16.0);  // alpha_ratio 2 by default
  EXPECT_EQ(runs[2].spec["epochs"], 5);
  EXPECT_EQ(runs.back().label(), "stsb lora r8 seed 3");
  EXPECT_EQ(runs.back().spec["epochs"], 3);
  EXPECT_NE(runs.back().dir.find("/runs/stsb/lora-r8/seed3"), std::string::npos);
  EXPECT_EQ(run_state(runs[0]), RunState::Pending);
  // The effective config round-trips.
  SweepConfig back = SweepConfig::from_json(nlohmann::json::parse(c.to_json().dump()), "roundtrip");
  EXPECT_EQ(plan_sweep(back).size(), runs.size());
  EXPECT_EQ(plan_sweep(back)[5].spec, runs[5].spec);

  auto bad = [&](nlohmann::json j, const std::string& expect) {
    try {
      plan_sweep(SweepConfig::from_json(j, "cfg.json"));
      ADD_FAILURE() << "no error for " << j.dump();
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(expect), std::string::npos) << e.what();
    }
  };
  auto j = cj;
  j["epoch"] = 3;
  bad(j, "cfg.json: epoch: unknown key");
  j = cj;
  j["methods"] = {"lora", "bogus"};
  bad(j, "unknown method 'bogus'");
  j = cj;
  j["tasks"] = {"nosuch"};
  bad(j, "nosuch");
  j = cj;
  j["lr"] = {{"bogus", 1e-3}};
  bad(j, "lr names method 'bogus'");
  j = cj;
  j["eval_file"] = {{"mrpc", "/no/such/dev.tsv"}};
  bad(j, "/no/such/dev.tsv");
  j = cj;
  j.erase("model");
  bad(j, "no model");
}

// The configurations shipped in examples/ stay valid: they parse, every method is registered, and the
// planner makes tasks × seeds × (full once + every other method at every rank) runs. The issue-5 sweep
// keeps its required shape (four GLUE tasks, 3 seeds, r ∈ {4, 8}, SST-2 subsampled, USE-lite).
TEST(SweepExamples, ShippedConfigsParseAndPlan) {
  // The configs' relative paths are relative to the repository root, where they are documented to run.
  struct Cwd {
    fs::path old = fs::current_path();
    Cwd() { fs::current_path(lorakit::testing::source_dir()); }
    ~Cwd() { fs::current_path(old); }
  } cwd;
  for (const char* name : {"sweep-glue.json", "sweep-tiny.json", "sweep-squad.json", "sweep-figure1.json"}) {
    SCOPED_TRACE(name);
    const std::string path = lorakit::testing::source_dir() + "/examples/" + name;
    const SweepConfig c = SweepConfig::from_file(path);
    size_t per_seed_task = 0;
    const auto names = method_names();
    for (auto& m : c.methods) {
      EXPECT_NE(std::find(names.begin(), names.end(), m), names.end()) << m;
      per_seed_task += m == "full" ? 1 : c.ranks.size();
    }
    for (auto& m : c.optional_methods)  // run when registered (adalora, sora are)
      if (std::find(names.begin(), names.end(), m) != names.end()) per_seed_task += c.ranks.size();
    const auto runs = plan_sweep(c);
    EXPECT_EQ(runs.size(), c.tasks.size() * c.seeds.size() * per_seed_task);
    for (auto& r : runs) EXPECT_GT(r.spec["epochs"].get<int>(), 0) << r.label();
  }
  const SweepConfig g = SweepConfig::from_file(lorakit::testing::source_dir() + "/examples/sweep-glue.json");
  EXPECT_EQ(g.model, "use-lite");
  EXPECT_EQ(g.tasks, (std::vector<std::string>{"cola", "stsb", "mrpc", "sst2"}));
  EXPECT_EQ(g.seeds.size(), 3u);
  EXPECT_EQ(g.ranks, (std::vector<int64_t>{4, 8}));
  EXPECT_GT(g.max_train_samples.get("sst2"), 0);
  for (const char* m : {"full", "lora", "gr-lora", "r-lora", "gm-lora", "rm-lora", "adalora", "sora"})
    EXPECT_NE(std::find(g.methods.begin(), g.methods.end(), m), g.methods.end()) << m;
  // Seed 001's budgets at table rank R: AdaLoRA init_r 2R → target_r R; SoRA from 2R with Table 3's λ.
  for (auto& r : plan_sweep(g)) {
    if (r.method == "adalora") {
      EXPECT_EQ(r.spec["method_options"]["init_r"], 2 * r.rank) << r.label();
      EXPECT_EQ(r.spec["method_options"]["target_r"], r.rank) << r.label();
    }
    if (r.method == "sora") {
      EXPECT_EQ(r.spec["method_options"]["sora_r"], 2 * r.rank) << r.label();
      EXPECT_DOUBLE_EQ(r.spec["method_options"]["sora_lambda"].get<double>(), r.task == "sst2" ? 5e-3 : 1e-3)
          << r.label();
    }
  }
}
