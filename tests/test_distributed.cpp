// Data parallelism on c10d Gloo over loopback: `lorakit train --nproc 2` on the same global batches as one
// process ends with the same losses, metrics and adapter (to 1e-5) for lora, gr-lora and rm-lora, on a model
// without dropout; a killed rank makes the run fail with a message, within the timeout.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <nlohmann/json.hpp>

#include "core/fileutil.h"
#include "core/runtime.h"
#include "core/safetensors.h"
#include "support/helpers.h"

using namespace lorakit;
using lorakit::testing::read_jsonl;
using lorakit::testing::run_command;
using lorakit::testing::TempDir;

namespace {

bool near(double a, double b, double tol = 1e-5) { return std::abs(a - b) <= tol * std::max(1.0, std::abs(a)); }

class DistCli : public lorakit::testing::TinyModelSuite<DistCli> {
 public:
  static constexpr const char* kModelFlags = "--layers 2 --max-position 64 --dropout 0";

 protected:
  static std::string train_cmd(const std::string& flags, const std::string& out) {
    return std::string(LORAKIT_CLI) + " train --model " + model() + " --task mrpc --data " + data() +
           " --max-train-samples 60 --max-eval-samples 32 --max-seq-len 32 --batch-size 8 --epochs 2 --lr 5e-3"
           " --seed 5 --threads 1 --logging-steps 1 --no-progress " +
           flags + " --out " + out;
  }

  // One process vs two ranks on the same global batches (60 rows: the last batch of each epoch has 4).
  static void expect_same_training(const std::string& method_flags) {
    TempDir d;
    auto one = run_command(train_cmd(method_flags, d.file("one")));
    ASSERT_EQ(one.exit_code, 0) << one.output;
    auto two = run_command(train_cmd(method_flags + " --nproc 2", d.file("two")));
    ASSERT_EQ(two.exit_code, 0) << two.output;
    EXPECT_NE(two.output.find("2 data-parallel ranks"), std::string::npos) << two.output;
    const auto a = read_jsonl(d.file("one/metrics.jsonl")), b = read_jsonl(d.file("two/metrics.jsonl"));
    ASSERT_EQ(a.size(), 2u);
    ASSERT_EQ(b.size(), 2u);
    for (size_t e = 0; e < a.size(); ++e) {
      EXPECT_EQ(a[e]["step"], b[e]["step"]);
      for (const char* k : {"train_loss", "train_accuracy", "eval_loss", "eval_accuracy", "eval_f1", "lr"})
        EXPECT_TRUE(near(a[e][k].get<double>(), b[e][k].get<double>())) << k << " epoch " << e + 1 << ": " << a[e][k]
                                                                         << " vs " << b[e][k];
    }
    // Per-step losses (--logging-steps 1): 8 steps an epoch.
    const auto sa = read_jsonl(d.file("one/steps.jsonl")), sb = read_jsonl(d.file("two/steps.jsonl"));
    ASSERT_EQ(sa.size(), 16u);
    ASSERT_EQ(sb.size(), sa.size());
    for (size_t i = 0; i < sa.size(); ++i) {
      EXPECT_EQ(sa[i]["step"], sb[i]["step"]);
      EXPECT_TRUE(near(sa[i]["loss"].get<double>(), sb[i]["loss"].get<double>()))
          << "step " << i + 1 << ": " << sa[i]["loss"] << " vs " << sb[i]["loss"];
    }
    const auto ta = st::load_file(d.file("one/last/adapter_model.safetensors"));
    const auto tb = st::load_file(d.file("two/last/adapter_model.safetensors"));
    ASSERT_EQ(ta.size(), tb.size());
    for (size_t i = 0; i < ta.size(); ++i) {
      ASSERT_EQ(ta[i].first, tb[i].first);
      const double diff = (ta[i].second - tb[i].second).abs().max().item<double>();
      EXPECT_LE(diff, 1e-5) << ta[i].first;
    }
    // The adapter moved: the comparison is not of two initial states.
    EXPECT_GT(a[1]["train_loss"].get<double>(), 0.0);
  }
};

}  // namespace

TEST_F(DistCli, LoraTwoRanksEqualOneProcess) { expect_same_training("--method lora --r 4"); }

TEST_F(DistCli, GrLoraTwoRanksEqualOneProcess) { expect_same_training("--method gr-lora --r 4"); }

// c's correction of A's and B's task gradients is applied on each rank before the ranks' sum.
TEST_F(DistCli, GrLoraParamsScopeTwoRanksEqualOneProcess) {
  expect_same_training("--method gr-lora --r 4 --gr-scale-scope params --gr-scale 0.3");
}

TEST_F(DistCli, RmLoraTwoRanksEqualOneProcess) { expect_same_training("--method rm-lora --r 4"); }

TEST_F(DistCli, AKilledRankStopsTheRunWithinTheTimeout) {
  TempDir d;
  const auto t0 = std::chrono::steady_clock::now();
  auto r = run_command("LORAKIT_FAULT=step:3 LORAKIT_FAULT_RANK=1 " +
                       train_cmd("--method lora --r 4 --nproc 2 --dist-timeout 20", d.file("run")));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("rank 1 of 2 was killed"), std::string::npos) << r.output;
  EXPECT_LT(seconds, 60.0) << r.output;
  EXPECT_FALSE(file_exists(d.file("run/results.json")));
}

// A rank that hangs (stopped by SIGSTOP at step 3, its sockets open): the other rank's next collective
// fails after --dist-timeout with a message saying so, and the launcher stops the hung one.
TEST_F(DistCli, AHungRankStopsTheRunAfterTheTimeout) {
  TempDir d;
  const auto t0 = std::chrono::steady_clock::now();
  auto r = run_command("LORAKIT_FAULT=step:3:STOP LORAKIT_FAULT_RANK=1 " +
                       train_cmd("--method lora --r 4 --nproc 2 --dist-timeout 4", d.file("run")));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("--dist-timeout 4"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("rank 0 of 2 exited with status 1; stopping the other ranks"), std::string::npos) << r.output;
  EXPECT_GE(seconds, 4.0) << r.output;
  EXPECT_LT(seconds, 60.0) << r.output;
  EXPECT_FALSE(file_exists(d.file("run/results.json")));
}

// The several-hosts path: each rank a process started on its own (as on two machines), meeting through
// --rank / --world-size / --master-addr / --master-port, gives the one-process run's step losses and adapter.
TEST_F(DistCli, SeparatelyStartedRanksEqualOneProcess) {
  TempDir d;
  const std::string m = "--method gr-lora --r 4";
  auto one = run_command(train_cmd(m, d.file("one")));
  ASSERT_EQ(one.exit_code, 0) << one.output;
  const int port = 29500 + static_cast<int>(::getpid() % 20000);
  const std::string flags = " --world-size 2 --master-addr 127.0.0.1 --master-port " + std::to_string(port) +
                            " --dist-timeout 60";
  // Rank 1 writes nothing; it gets an --out of its own only to show that it does not.
  auto two = run_command("(" + train_cmd(m + " --rank 1" + flags, d.file("rank1")) + " > " + d.file("rank1.log") +
                         " 2>&1 & " + train_cmd(m + " --rank 0" + flags, d.file("two")) + "; rc0=$?; wait $!; rc1=$?; " +
                         "cat " + d.file("rank1.log") + "; exit $((rc0 + rc1)))");
  ASSERT_EQ(two.exit_code, 0) << two.output;
  const auto sa = read_jsonl(d.file("one/steps.jsonl")), sb = read_jsonl(d.file("two/steps.jsonl"));
  ASSERT_EQ(sa.size(), 16u);
  ASSERT_EQ(sb.size(), sa.size());
  for (size_t i = 0; i < sa.size(); ++i)
    EXPECT_TRUE(near(sa[i]["loss"].get<double>(), sb[i]["loss"].get<double>())) << "step " << i + 1;
  const auto ta = st::load_file(d.file("one/last/adapter_model.safetensors"));
  const auto tb = st::load_file(d.file("two/last/adapter_model.safetensors"));
  ASSERT_EQ(ta.size(), tb.size());
  for (size_t i = 0; i < ta.size(); ++i)
    EXPECT_LE((ta[i].second - tb[i].second).abs().max().item<double>(), 1e-5) << ta[i].first;
  EXPECT_FALSE(file_exists(d.file("rank1/last/adapter_model.safetensors")));
}

// Ranks started on their own resolve the precision on their own CPUs; a mix (as auto on a host with bf16
// instructions beside one without) is refused on every rank instead of training two different models.
TEST_F(DistCli, RanksThatChoseDifferentPrecisionsAreRefused) {
  TempDir d;
  const int port = 29500 + static_cast<int>((::getpid() + 7) % 20000);
  const std::string flags = " --world-size 2 --master-addr 127.0.0.1 --master-port " + std::to_string(port) +
                            " --dist-timeout 20";
  auto two = run_command("(" + train_cmd("--method lora --r 4 --precision bf16 --rank 1" + flags, d.file("rank1")) +
                         " > " + d.file("rank1.log") + " 2>&1 & " +
                         train_cmd("--method lora --r 4 --precision fp32 --rank 0" + flags, d.file("two")) +
                         "; rc0=$?; wait $!; rc1=$?; echo \"[rank 1]\"; cat " + d.file("rank1.log") +
                         "; echo \"rc $rc0 $rc1\")");
  ASSERT_EQ(two.exit_code, 0) << two.output;
  EXPECT_NE(two.output.find("rc 1 1"), std::string::npos) << two.output;
  const size_t at1 = two.output.find("[rank 1]");
  ASSERT_NE(at1, std::string::npos);
  const std::string out0 = two.output.substr(0, at1), out1 = two.output.substr(at1);
  if (cpu_has_bf16()) {
    for (const std::string& o : {out0, out1})
      EXPECT_NE(o.find("1 of the 2 ranks chose bf16 and the others fp32"), std::string::npos) << o;
  } else {  // rank 1 is refused before it meets rank 0, which then gives up at the rendezvous
    EXPECT_NE(out1.find("--precision bf16: this CPU"), std::string::npos) << out1;
  }
  EXPECT_FALSE(file_exists(d.file("two/last/adapter_model.safetensors")));
}

TEST_F(DistCli, BadRendezvousSettingsAreClearErrors) {
  TempDir d;
  auto r = run_command("RANK=3 WORLD_SIZE=2 " + train_cmd("--method lora", d.file("run")));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("rank 3 is not in [0, world size 2)"), std::string::npos) << r.output;
  r = run_command("RANK=x WORLD_SIZE=2 " + train_cmd("--method lora", d.file("run")));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("RANK='x'"), std::string::npos) << r.output;
}
