// The training loop: AdamW (no decay on biases / LayerNorm), linear warm-up then linear decay,
// gradient clipping, evaluation every epoch, keep-best, per-epoch JSONL log, training checkpoints and
// resume (train/train_checkpoint.h). It drives a lorakit::Method through its hooks and never names a
// method.
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tasks/task.h"
#include "tuners/method.h"

namespace lorakit {

class Dist;
class PrefixCache;

struct TrainConfig {
  std::string out_dir;
  int64_t epochs = 3;
  int64_t max_steps = -1;         // > 0 stops after that many optimizer steps
  int64_t batch_size = 32;
  int64_t eval_batch_size = 64;
  double lr = 5e-4;
  double weight_decay = 0.01;
  double warmup_ratio = 0.06;     // of total steps, unless warmup_steps >= 0
  int64_t warmup_steps = -1;
  double max_grad_norm = 1.0;     // <= 0 disables clipping
  uint64_t seed = 42;
  bool group_by_length = true;
  bool keep_best = true;          // save <out>/best whenever the main metric improves
  bool progress = true;           // progress bar on stderr
  double regression_tau = 0.5;    // regression "accuracy": |ŷ − y| ≤ tau
  // A step whose loss or gradient norm is not finite is skipped (no update; counted as skipped_steps in the
  // epoch's log); this many skipped in a row stop the run with an error (0: the first one stops it).
  int64_t max_bad_steps = 10;
  // A training checkpoint (<out>/checkpoint/) every this many optimizer steps (0: only at epoch ends) and
  // at every epoch end.
  int64_t save_steps = 500;
  // Every this many optimizer steps a line {"step", "epoch", "loss", "lr", "skipped"} goes into
  // <out>/steps.jsonl (HF Trainer's logging_steps; 0: no step log). The loss is the global batch's mean.
  int64_t logging_steps = 0;
  // The model's forward in bf16 autocast (core/precision.h): parameters, gradients, optimizer state and
  // the loss stay fp32. Refused (validate) on a CPU without AVX512-BF16 / AMX.
  bool bf16 = false;
  // Frozen-prefix caching (train/prefix_cache.h): "auto" | "on" | "off", and the bound on the cache's memory
  // (train and eval sets together) in MiB.
  std::string cache_frozen_prefix = "auto";
  int64_t cache_max_mb = 2048;
  // The last encoder layer at the first position only, the one the head reads (TaskModelImpl::prune_last_layer):
  // StepRunner turns it on for a family that supports it unless the method reads the other positions
  // (Method::reads_every_position: GR-LoRA). The same logits and gradients, fewer FLOPs; with dropout the
  // masks are drawn for fewer positions (the same training in distribution, not the unpruned run bit for bit),
  // and RM-LoRA's output-norm diagnostics cover the positions computed ([CLS] in the pruned modules).
  bool prune_last_layer = true;
  // Continue from <out>/checkpoint/ (an Error when there is none, or when it was written by a run with
  // other settings).
  bool resume = false;
  // The settings that decide the run beyond the fields above (the CLI's flags: model, data, method, ...),
  // name → value; a resumed run must have the same. Values that are numbers in words compare as numbers.
  nlohmann::json run_flags = nlohmann::json::object();
  // Each run flag's value when not given. A checkpoint written before a flag existed lacks it, and matches a run
  // that leaves it at this default.
  nlohmann::json run_flag_defaults = nlohmann::json::object();
  // Data parallelism (not owned; null or one rank: a single process). Every rank takes its slice of each
  // global batch, gradients are summed over ranks before clipping, only rank 0 writes. docs/distributed.md.
  Dist* dist = nullptr;
  // Flags that can be judged without data or model (batch sizes, epochs, lr, ...): lorakit::Error naming the flag.
  void validate() const;
};

struct EvalResult {
  double loss = 0;      // mean per-row task loss
  double accuracy = 0;  // fraction of rows the task counts correct (within tau for regression)
  std::map<std::string, double> metrics;  // the task's metrics (Task::metric_names)
  double seconds = 0;
};

// The model's logits for a batch: pixel_values for image models, token ids otherwise.
at::Tensor batch_logits(SequenceClassifier& model, const Batch& b);

// With `dist` (data parallel), batch i runs on rank i mod W and the outputs are summed into place over ranks,
// so every rank returns the one-process result.
// With `cache` (built on `ds`), the forward runs from the cached frozen prefix.
EvalResult evaluate(SequenceClassifier& model, const Task& task, const TaskDataset& ds, int64_t batch_size,
                    double regression_tau = 0.5, Dist* dist = nullptr, const PrefixCache* cache = nullptr);

// Logits [N, C] (float32) of every row of `ds`, in dataset order (eval mode, no grad).
at::Tensor predict_logits(SequenceClassifier& model, const TaskDataset& ds, int64_t batch_size);

// One optimizer step exactly as train() takes it: forward, task loss, method.extra_loss, backward,
// clipping, method.before_optimizer_step, learning rate, AdamW step, method.after_optimizer_step. A
// non-finite loss or gradient norm skips everything after backward (gradients are dropped, parameters,
// optimizer and method state stay as they were); the step still counts for the LR schedule.
// Used by train() and by the benchmarks.
class StepRunner {
 public:
  StepRunner(SequenceClassifier& model, Method& method, const Task& task, const TrainConfig& cfg,
             int64_t total_steps, int64_t warmup_steps);
  ~StepRunner();
  struct Out {
    at::Tensor logits;
    double loss;           // task loss (mean)
    bool skipped = false;  // the loss or the gradient norm was not finite: no update was made
  };
  Out step(const Batch& b, int64_t epoch);
  // Data parallel: `b` is this rank's slice of a global batch of `global_rows` rows; Out::loss is the global
  // batch's mean and the gradients the global batch's (summed over ranks) before clipping.
  Out step(const Batch& b, int64_t epoch, int64_t global_rows);
  int64_t steps_taken() const { return step_; }
  // Steps' forwards from this cache of the training set's frozen prefix (null: the whole model).
  void set_prefix_cache(const PrefixCache* cache);
  double current_lr() const;
  torch::optim::Optimizer& optimizer();
  // The runner's part of a training checkpoint: the step counter, the run's generator, every trainable
  // parameter, AdamW's state and learning rates, the method's state (Method::save_state) and LibTorch's
  // CPU generator (dropout). load_state restores all of it onto the same model and method (an Error
  // naming what does not fit).
  void save_state(nlohmann::json& state, std::map<std::string, at::Tensor>& tensors) const;
  void load_state(const nlohmann::json& state, const std::map<std::string, at::Tensor>& tensors);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int64_t step_ = 0;
};

struct TrainResult {
  std::vector<nlohmann::json> epochs;  // the JSONL lines
  nlohmann::json summary;              // also written to <out>/results.json
};

// Trains `base.model` with `method` (already attached) on `train`, evaluating on `eval` every epoch.
// Writes <out>/metrics.jsonl, <out>/results.json, <out>/best/ and <out>/last/ (method.save), and
// <out>/checkpoint/ (cfg.save_steps, every epoch end); with cfg.resume it continues from that checkpoint
// and ends bit-identical to the run never interrupted. SIGINT / SIGTERM (train/interrupt.h) end it after
// the current step with a checkpoint and an Interrupted error.
TrainResult train(LoadedModel& base, Method& method, const Task& task, const TaskDataset& train,
                  const TaskDataset& eval, const TrainConfig& cfg);

}  // namespace lorakit
