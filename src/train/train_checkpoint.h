// A training checkpoint: <out>/checkpoint/ holds a run's whole state after some optimizer step, so that
// `lorakit train --resume` continues it bit-identically (docs/reliability.md).
//   state.safetensors   the tensors: trainable parameters ("param.<name>"), AdamW's moments
//                       ("adamw.<group>.<index>.exp_avg" ...), the method's ("method.<key>"), LibTorch's
//                       CPU generator ("rng.torch")
//   trainer_state.json  everything else (step, epoch and position in it, the run's generator, the epoch's
//                       accumulators, best-so-far, the JSONL lines so far, the flags of the run); written
//                       last, so a directory without it is not a checkpoint.
#pragma once
#include <ATen/core/Tensor.h>

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace lorakit {

struct TrainCheckpoint {
  nlohmann::json state = nlohmann::json::object();
  std::map<std::string, at::Tensor> tensors;
  std::string dir;  // where it was read from
};

// <out>/checkpoint.tmp/ is filled, then the previous <out>/checkpoint/ becomes checkpoint.old/, the new
// one takes its place, and checkpoint.old/ is removed: a kill at any moment leaves a whole checkpoint in
// checkpoint/ or in checkpoint.old/. A failed write (disk full) throws lorakit::Error and leaves the
// previous checkpoint as it was.
void write_train_checkpoint(const std::string& out_dir, const TrainCheckpoint& c);
// The newest whole checkpoint under `out_dir` (checkpoint/, else checkpoint.old/); nullopt when none.
// A corrupt one is a lorakit::Error naming the file. with_tensors = false reads trainer_state.json only.
std::optional<TrainCheckpoint> read_train_checkpoint(const std::string& out_dir, bool with_tensors = true);
// Removes checkpoint/, checkpoint.old/ and checkpoint.tmp/ (a finished run keeps none).
void remove_train_checkpoint(const std::string& out_dir);
// Whether `out_dir` holds a whole checkpoint (without reading it).
bool has_train_checkpoint(const std::string& out_dir);

// Fault injection for the kill-and-resume tests: when the environment variable LORAKIT_FAULT is
// "<where>:<step>" (e.g. "step:7", "checkpoint-write:10"), the process sends itself SIGKILL on reaching
// that point at that optimizer step; "<where>:<step>:TERM" (or INT) sends that signal instead and goes on;
// "<where>:<step>:STOP" stops the process (SIGSTOP: a hung rank, alive with its connections open).
// With LORAKIT_FAULT_RANK=R only rank R (the RANK variable) of a data-parallel run does. Points: "step" (after the step), "epoch-end" (after the epoch's
// evaluation, log and best/, before its checkpoint), "checkpoint-write" (half-way through writing the
// checkpoint), "checkpoint-swap" (between moving the old checkpoint aside and putting the new in place).
void fault_point(const char* where, int64_t step);

}  // namespace lorakit
