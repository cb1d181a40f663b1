// Kill-and-resume through the CLI: a run killed with SIGKILL at chosen points (mid-epoch, half-way through
// writing a checkpoint, between moving the old checkpoint aside and putting the new one in place, after an
// epoch's evaluation) and resumed with --resume ends with byte-identical best/ and last/ and the same
// metrics as the run never interrupted; SIGTERM stops with a checkpoint and exit 143; flags that differ
// from the checkpoint's run are refused by name; a full disk (ulimit -f) never leaves a torn checkpoint.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/resource.h>

#include <ATen/ATen.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/errors.h"
#include "core/fileutil.h"
#include "core/runtime.h"
#include "support/helpers.h"
#include "train/train_checkpoint.h"

using namespace lorakit;
using lorakit::testing::read_bytes;
using lorakit::testing::read_jsonl;
using lorakit::testing::run_command;
using lorakit::testing::TempDir;
namespace fs = std::filesystem;

namespace {

class ResumeCli : public lorakit::testing::TinyModelSuite<ResumeCli> {
 public:
  static constexpr const char* kModelFlags = "--layers 2 --max-position 64";

 protected:
  // 64 rows / batch 8 = 8 steps an epoch, 2 epochs; a checkpoint every 3 steps; LoRA dropout, so that the
  // resumed run also needs LibTorch's generator where it was.
  static std::string train_cmd(const std::string& method_flags, const std::string& out) {
    return std::string(LORAKIT_CLI) + " train --model " + model() + " --task mrpc --data " + data() +
           " --max-train-samples 64 --max-eval-samples 32 --max-seq-len 32 --batch-size 8 --epochs 2 --lr 5e-3"
           " --lora-dropout 0.1 --save-steps 3 --logging-steps 1 --seed 11 --threads 1 --no-progress " +
           method_flags + " --out " + out;
  }
};

// metrics.jsonl / results.json without the fields that measure time.
nlohmann::json drop_timing(nlohmann::json j) {
  if (j.is_object()) {
    for (const char* k : {"train_seconds", "eval_seconds", "train_samples_per_second", "wall_seconds", "gr_phase_ms"})
      j.erase(k);
    for (auto& [k, v] : j.items()) v = drop_timing(v);
  }
  return j;
}

void expect_same_dir(const std::string& a, const std::string& b) {
  ASSERT_TRUE(dir_exists(a)) << a;
  ASSERT_TRUE(dir_exists(b)) << b;
  size_t n = 0;
  for (auto& e : fs::directory_iterator(a)) {
    const std::string name = e.path().filename();
    ASSERT_TRUE(file_exists(b + "/" + name)) << b << "/" << name;
    EXPECT_EQ(read_bytes(a + "/" + name), read_bytes(b + "/" + name)) << name << " differs";
    ++n;
  }
  EXPECT_GT(n, 0u);
  EXPECT_EQ(n, static_cast<size_t>(std::distance(fs::directory_iterator(b), fs::directory_iterator())));
}

void expect_same_run(const std::string& ref, const std::string& out) {
  expect_same_dir(ref + "/last", out + "/last");
  expect_same_dir(ref + "/best", out + "/best");
  auto a = read_jsonl(ref + "/metrics.jsonl"), b = read_jsonl(out + "/metrics.jsonl");
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(drop_timing(a[i]), drop_timing(b[i])) << "epoch " << i + 1;
  auto ra = nlohmann::json::parse(read_bytes(ref + "/results.json"));
  auto rb = nlohmann::json::parse(read_bytes(out + "/results.json"));
  EXPECT_EQ(drop_timing(ra), drop_timing(rb));
  // The step log (--logging-steps 1): every step's loss once, in order, as the uninterrupted run's.
  ASSERT_TRUE(file_exists(ref + "/steps.jsonl"));
  EXPECT_EQ(read_bytes(ref + "/steps.jsonl"), read_bytes(out + "/steps.jsonl"));
  EXPECT_EQ(read_jsonl(ref + "/steps.jsonl").size(), 16u);
}

// The uninterrupted run, then the same run killed at each of `faults` in turn (each resumed), compared.
void kill_and_resume(const std::string& method_flags, const std::vector<std::string>& faults, const TempDir& dir,
                     const std::function<std::string(const std::string&, const std::string&)>& cmd) {
  auto ref = run_command(cmd(method_flags, dir.file("ref")));
  ASSERT_EQ(ref.exit_code, 0) << ref.output;
  const std::string out = dir.file("killed");
  bool first = true;
  for (auto& f : faults) {
    auto r = run_command("LORAKIT_FAULT=" + f + " " + cmd(method_flags, out) + (first ? "" : " --resume"));
    ASSERT_EQ(r.exit_code, 128 + SIGKILL) << "fault " << f << ":\n" << r.output;
    first = false;
  }
  auto r = run_command(cmd(method_flags, out) + " --resume");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("resuming from"), std::string::npos) << r.output;
  expect_same_run(dir.file("ref"), out);
  // A finished run keeps no checkpoint.
  EXPECT_FALSE(fs::exists(out + "/checkpoint"));
  EXPECT_FALSE(fs::exists(out + "/checkpoint.tmp"));
  EXPECT_FALSE(fs::exists(out + "/checkpoint.old"));
}

// Mid-epoch after a checkpoint (step 5: resumes from 3); half-way through the step-6 checkpoint (resumes from
// 3 again); mid-swap of the epoch-end checkpoint at step 8 (only checkpoint.old/ of step 6 is whole); after
// the last epoch's evaluation and best/, before its checkpoint (resumes from 15).
const std::vector<std::string> kFaults = {"step:5", "checkpoint-write:6", "checkpoint-swap:8", "epoch-end:16"};

}  // namespace

TEST_F(ResumeCli, LoraKilledAnywhereResumesBitIdentical) {
  TempDir d;
  kill_and_resume("--method lora --r 4", kFaults, d, train_cmd);
}

TEST_F(ResumeCli, GrLoraKilledAnywhereResumesBitIdentical) {
  TempDir d;
  kill_and_resume("--method gr-lora --r 4", kFaults, d, train_cmd);
}

TEST_F(ResumeCli, RmLoraKilledAnywhereResumesBitIdentical) {
  TempDir d;
  kill_and_resume("--method rm-lora --r 4", kFaults, d, train_cmd);
}

TEST_F(ResumeCli, AdaLoraKilledAnywhereResumesBitIdentical) {
  // Masking from step 2 on, every 2 steps, until 4 steps before the end: the kills fall before, during and
  // after the budget schedule.
  TempDir d;
  kill_and_resume("--method adalora --init-r 6 --target-r 2 --tinit 2 --tfinal 4 --delta-t 2", kFaults, d, train_cmd);
}

TEST_F(ResumeCli, SoraKilledAnywhereResumesBitIdentical) {
  TempDir d;
  kill_and_resume("--method sora --r 4", kFaults, d, train_cmd);
}

TEST_F(ResumeCli, FullFineTuningKilledMidEpochResumesBitIdentical) {
  TempDir d;
  kill_and_resume("--method full", {"step:4"}, d, train_cmd);
}

TEST_F(ResumeCli, SigtermStopsWithACheckpointAndResumes) {
  TempDir d;
  auto ref = run_command(train_cmd("--method rm-lora --r 4", d.file("ref")));
  ASSERT_EQ(ref.exit_code, 0) << ref.output;
  const std::string out = d.file("term");
  // SIGTERM arrives during step 7 (no save_steps checkpoint there): the step finishes, a checkpoint is written.
  auto r = run_command("LORAKIT_FAULT=step:7:TERM " + train_cmd("--method rm-lora --r 4", out));
  ASSERT_EQ(r.exit_code, 128 + SIGTERM) << r.output;
  EXPECT_NE(r.output.find("SIGTERM received"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("--resume"), std::string::npos) << r.output;
  auto ck = read_train_checkpoint(out);
  ASSERT_TRUE(ck.has_value());
  EXPECT_EQ(ck->state["step"], 7);
  EXPECT_FALSE(fs::exists(out + "/last"));
  auto r2 = run_command(train_cmd("--method rm-lora --r 4", out) + " --resume");
  ASSERT_EQ(r2.exit_code, 0) << r2.output;
  expect_same_run(d.file("ref"), out);
}

TEST_F(ResumeCli, ResumeRefusesOtherFlagsByName) {
  TempDir d;
  const std::string out = d.file("run");
  auto r = run_command("LORAKIT_FAULT=step:4 " + train_cmd("--method lora --r 4", out));
  ASSERT_EQ(r.exit_code, 128 + SIGKILL) << r.output;
  auto with = [&](std::string cmd, const std::string& from, const std::string& to) {
    cmd.replace(cmd.find(from), from.size(), to);
    return cmd;
  };
  auto r2 = run_command(with(with(train_cmd("--method lora --r 4", out), "--lr 5e-3", "--lr 1e-3"), "--seed 11",
                             "--seed 12") +
                        " --resume");
  EXPECT_EQ(r2.exit_code, 1) << r2.output;
  EXPECT_NE(r2.output.find("other settings"), std::string::npos) << r2.output;
  EXPECT_NE(r2.output.find("--lr"), std::string::npos) << r2.output;
  EXPECT_NE(r2.output.find("--seed"), std::string::npos) << r2.output;
  EXPECT_EQ(r2.output.find("--batch-size"), std::string::npos) << r2.output;
  // Numbers that read the same are the same flag value; --threads and --no-progress may differ.
  auto r3 = run_command(with(with(train_cmd("--method lora --r 4", out), "--lr 5e-3", "--lr 0.005"), "--threads 1",
                             "--threads 2") +
                        " --resume");
  EXPECT_EQ(r3.exit_code, 0) << r3.output;
  // A fresh directory has nothing to resume.
  auto r4 = run_command(train_cmd("--method lora --r 4", d.file("empty")) + " --resume");
  EXPECT_EQ(r4.exit_code, 1) << r4.output;
  EXPECT_NE(r4.output.find("holds no training checkpoint"), std::string::npos) << r4.output;
}

// A checkpoint written before a flag existed has no value for it: it resumes under a run that leaves the flag
// at its default, and is refused, naming the flag, under one that sets it otherwise.
TEST_F(ResumeCli, ACheckpointFromBeforeAFlagExistedResumesAtItsDefault) {
  TempDir d;
  const std::string out = d.file("run");
  auto r = run_command("LORAKIT_FAULT=step:4 " + train_cmd("--method gr-lora --r 4", out));
  ASSERT_EQ(r.exit_code, 128 + SIGKILL) << r.output;
  const std::string state = out + "/checkpoint/trainer_state.json";
  auto j = nlohmann::json::parse(read_text_file(state));
  ASSERT_TRUE(j["flags"].contains("--gr-scale-scope")) << j["flags"].dump();
  j["flags"].erase("--gr-scale-scope");
  lorakit::testing::write_text(state, j.dump());
  auto other = run_command(train_cmd("--method gr-lora --r 4 --gr-scale-scope params", out) + " --resume");
  EXPECT_EQ(other.exit_code, 1) << other.output;
  EXPECT_NE(other.output.find("--gr-scale-scope 'params' (the checkpoint's run: (not set))"), std::string::npos)
      << other.output;
  auto same = run_command(train_cmd("--method gr-lora --r 4", out) + " --resume");
  EXPECT_EQ(same.exit_code, 0) << same.output;
  EXPECT_TRUE(file_exists(out + "/last/adapter_model.safetensors"));
}

// --resume compares the precision a run computes in, not how it was spelt: a checkpoint written by
// --precision fp32 goes on under `auto` exactly where auto is fp32 (a CPU without bf16 instructions) and is
// refused, naming the precision, where auto is bf16.
TEST_F(ResumeCli, ResumeComparesThePrecisionAsResolved) {
  TempDir d;
  const std::string out = d.file("run");
  auto r = run_command("LORAKIT_FAULT=step:4 " + train_cmd("--method lora --r 4 --precision fp32", out));
  ASSERT_EQ(r.exit_code, 128 + SIGKILL) << r.output;
  auto r2 = run_command("env -u LORAKIT_PRECISION " + train_cmd("--method lora --r 4", out) + " --resume");
  if (cpu_has_bf16()) {
    EXPECT_EQ(r2.exit_code, 1) << r2.output;
    EXPECT_NE(r2.output.find("precision 'bf16' (the checkpoint's run: 'fp32')"), std::string::npos) << r2.output;
    EXPECT_EQ(r2.output.find("--precision '"), std::string::npos) << "the spelling is not compared: " << r2.output;
  } else {
    EXPECT_EQ(r2.exit_code, 0) << r2.output;
  }
  // The same precision under another spelling ($LORAKIT_PRECISION instead of the flag) goes on.
  auto r3 = run_command("LORAKIT_PRECISION=fp32 " + train_cmd("--method lora --r 4", out) + " --resume");
  EXPECT_EQ(r3.exit_code, 0) << r3.output;
  EXPECT_TRUE(file_exists(out + "/last/adapter_model.safetensors"));
}

TEST_F(ResumeCli, FileSizeLimitIsAnErrorBeforeTraining) {
  // Full fine-tuning of the tiny model: ~4 MB of parameters, so a 12 MB checkpoint; files may not pass 1 MB.
  TempDir d;
  auto r = run_command("ulimit -f 1024; " + train_cmd("--method full", d.file("run")));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("ulimit -f"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(d.file("run") + "/checkpoint"));
}

TEST(TrainCheckpoint, AFailedWriteLeavesThePreviousCheckpointWhole) {
  TempDir d;
  TrainCheckpoint c;
  c.state = {{"step", 3}};
  c.tensors["param.x"] = at::arange(16, at::kFloat);
  write_train_checkpoint(d.path(), c);
  const std::string before = read_bytes(d.file("checkpoint/state.safetensors"));

  // A second checkpoint too big for the file-size limit: the write fails with an error naming the file.
  TrainCheckpoint big;
  big.state = {{"step", 6}};
  big.tensors["param.x"] = at::ones({200000}, at::kFloat);  // 800 KB
  ::signal(SIGXFSZ, SIG_IGN);
  struct rlimit old {};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old), 0);
  struct rlimit lim = old;
  lim.rlim_cur = 64 * 1024;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &lim), 0);
  std::string error;
  try {
    write_train_checkpoint(d.path(), big);
  } catch (const Error& e) {
    error = e.what();
  }
  ::setrlimit(RLIMIT_FSIZE, &old);
  EXPECT_NE(error.find("state.safetensors"), std::string::npos) << error;
  EXPECT_NE(error.find("write failed"), std::string::npos) << error;
  EXPECT_FALSE(fs::exists(d.file("checkpoint.tmp")));
  auto ck = read_train_checkpoint(d.path());
  ASSERT_TRUE(ck.has_value());
  EXPECT_EQ(ck->state["step"], 3);
  EXPECT_EQ(read_bytes(d.file("checkpoint/state.safetensors")), before);
  EXPECT_TRUE(at::equal(ck->tensors.at("param.x"), c.tensors.at("param.x")));
}

TEST(TrainCheckpoint, ACheckpointLeftMidSwapIsFoundInOld) {
  TempDir d;
  TrainCheckpoint c;
  c.state = {{"step", 3}};
  c.tensors["param.x"] = at::arange(4, at::kFloat);
  write_train_checkpoint(d.path(), c);
  fs::rename(d.file("checkpoint"), d.file("checkpoint.old"));  // as a kill between the two renames leaves it
  fs::create_directories(d.file("checkpoint.tmp"));           // and a half-written successor
  auto ck = read_train_checkpoint(d.path());
  ASSERT_TRUE(ck.has_value());
  EXPECT_EQ(ck->dir, d.file("checkpoint.old"));
  c.state = {{"step", 6}};
  write_train_checkpoint(d.path(), c);
  ck = read_train_checkpoint(d.path());
  ASSERT_TRUE(ck.has_value());
  EXPECT_EQ(ck->state["step"], 6);
  EXPECT_FALSE(fs::exists(d.file("checkpoint.old")));
  EXPECT_FALSE(fs::exists(d.file("checkpoint.tmp")));
}

TEST(TrainCheckpoint, CorruptStateIsAClearError) {
  TempDir d;
  TrainCheckpoint c;
  c.state = {{"step", 3}};
  c.tensors["param.x"] = at::arange(4, at::kFloat);
  write_train_checkpoint(d.path(), c);
  lorakit::testing::write_text(d.file("checkpoint/trainer_state.json"), "{\"step\": 3,");
  try {
    read_train_checkpoint(d.path());
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("trainer_state.json"), std::string::npos) << e.what();
  }
}

TEST(ResumeImages, AugmentedRunKilledMidEpochResumesBitIdentical) {
  // Fashion-MNIST with --augment: the crop/flip generator is mid-epoch at the checkpoint (step 3 of 8).
  TempDir d;
  auto r = lorakit::testing::run_cli("init-model --arch vit --hidden 32 --layers 1 --heads 2 --intermediate 64 "
                                     "--image-size 28 --patch-size 7 --num-labels 10 --out " + d.file("vit"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto cmd = [&](const std::string& method_flags, const std::string& out) {
    return std::string(LORAKIT_CLI) + " train --model " + d.file("vit") +
           " --task fashion-mnist --augment --max-train-samples 64 --max-eval-samples 32 --batch-size 8 --epochs 2"
           " --lr 5e-3 --save-steps 3 --logging-steps 1 --seed 3 --threads 1 --no-progress " +
           method_flags + " --out " + out;
  };
  kill_and_resume("--method lora --r 2 --target-modules query,value", {"step:5"}, d, cmd);
}
