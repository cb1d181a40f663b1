// The seam between the trainer and a fine-tuning method (full, LoRA, GR-LoRA, RM-LoRA, ...).
// A method = its config + the layer it attaches to matched modules + training hooks. The trainer
// calls these hooks in a fixed order and never names a method:
//
//   attach(model)                         once, before the optimizer is built
//   param_groups()                        the optimizer's groups (weight decay per group)
//   for each step:
//     forward → task loss (mean) and per-sample losses
//     extra_loss(step)                    added to the task loss before backward
//     backward
//     after_backward(step)                this rank's gradients, before the ranks' sum and clipping
//     before_optimizer_step(step, opt)    gradient transforms (after clipping)
//     optimizer.step()
//     after_optimizer_step(step, opt)     update transforms / pruning / projection
//   epoch_stats()                         merged into the epoch's JSONL line
//   save(dir) / load(dir)                 the method's artifact (adapter or full checkpoint)
//   save_state / load_state               what the method carries between steps, for a training
//                                         checkpoint (the parameters and the optimizer are the trainer's)
#pragma once
#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "models/checkpoint.h"
#include "tasks/task.h"

namespace lorakit {

struct StepInfo {
  int64_t step = 0;         // optimizer steps taken before this one
  int64_t total_steps = 0;
  int64_t epoch = 0;
  std::mt19937_64* rng = nullptr;  // the run's seeded generator (for methods that draw)
  // Filled by the trainer before extra_loss():
  at::Tensor logits;           // the model's outputs: [B, C] (C = 1 for regression), [B, T, 2] for span QA
  at::Tensor labels;           // Batch::labels
  at::Tensor per_sample_loss;  // [B], each sample's own loss (not divided by B)
  at::Tensor task_loss;        // mean of per_sample_loss
  // ∂task_loss/∂per_sample_loss[i], the same for every row: 1/B, or 1/(the global batch's rows) when data-parallel.
  // 0 (a StepInfo the trainer did not fill) reads as 1/B.
  double sample_weight = 0;
  double task_weight() const {
    return sample_weight > 0 ? sample_weight : 1.0 / static_cast<double>(std::max<int64_t>(1, per_sample_loss.size(0)));
  }
  const Task* task = nullptr;  // the task being trained
  // The task's "correct" mask [B] bool for these outputs (GR-LoRA's S); `tau`: regression tolerance.
  at::Tensor correct(double tau) const;
  // Data parallelism (docs/distributed.md): the trainer sums every rank's gradients, so extra_loss returns
  // this rank's share — a term of the parameters alone times param_share (1 / the number of ranks), a term
  // over samples normalised by global counts (global_count_of: the sum of a count over every rank). One
  // process: 1 and the count itself.
  double param_share = 1.0;
  std::function<int64_t(int64_t)> global_count;
  int64_t global_count_of(int64_t local) const { return global_count ? global_count(local) : local; }
};

// A sum over every rank of a data-parallel run (the identity in one process).
using RankSum = std::function<double(double)>;

// A method's own state between steps (mask generators' draws, EMAs, gates' statistics, epoch accumulators)
// for a training checkpoint: tensors by name, the rest as JSON. Doubles go in as their bit patterns
// (put_f64 / get_f64), so a resumed run continues bit-identically.
struct MethodState {
  nlohmann::json json = nlohmann::json::object();
  std::map<std::string, at::Tensor> tensors;  // an undefined tensor is left out (and reads back undefined)

  void put_f64(const std::string& key, double v);
  double get_f64(const std::string& key) const;  // lorakit::Error when missing
  void put_i64(const std::string& key, int64_t v) { json[key] = v; }
  int64_t get_i64(const std::string& key) const;
  void put_tensor(const std::string& key, const at::Tensor& t);
  at::Tensor get_tensor(const std::string& key) const;  // undefined when absent
};

struct ParamGroup {
  std::vector<at::Tensor> params;
  double weight_decay = 0.0;
  double lr_scale = 1.0;
  std::string name;
  double lr = -1;  // > 0: this group's own peak lr (instead of the run's lr × lr_scale)
};

class Method {
 public:
  virtual ~Method() = default;
  virtual std::string name() const = 0;
  // Puts the method's layers on the model and marks which parameters train.
  virtual void attach(SequenceClassifier& model) = 0;
  // Default: every trainable parameter; biases and LayerNorm weights without weight decay.
  virtual std::vector<ParamGroup> param_groups(SequenceClassifier& model, double weight_decay);
  virtual at::Tensor extra_loss(StepInfo& step) { return {}; }
  // Gradient corrections on this rank's own gradients (p.grad()), right after backward: data-parallel ranks sum
  // the gradients after it, so a correction linear in the rank's samples comes out right for the global batch.
  virtual void after_backward(StepInfo& step) {}
  virtual void before_optimizer_step(StepInfo& step, torch::optim::Optimizer& opt) {}
  virtual void after_optimizer_step(StepInfo& step, torch::optim::Optimizer& opt) {}
  // Statistics gathered since the last call, for the epoch log (then reset).
  virtual nlohmann::json epoch_stats() { return nlohmann::json::object(); }
  // Writes what this method produces (adapter or full model) into `dir`; `base_model_dir` is where
  // the frozen base came from.
  virtual void save(const SequenceClassifier& model, const LoadedModel& base, const std::string& dir) const = 0;
  // "# T / I-Params" as seed 001 reports them: T = trainable parameters, I = the tuned parameters
  // still needed at inference (equal to T for LoRA and full fine-tuning; fewer after pruning).
  virtual int64_t inference_params(const SequenceClassifier& model) const;
  virtual nlohmann::json describe() const { return {{"method", name()}}; }
  // The method's state that is neither a parameter nor optimizer state (see MethodState). load_state is
  // called after attach() on the same configuration; the default holds nothing.
  virtual void save_state(MethodState& s) const {}
  virtual void load_state(const MethodState& s) {}
  // Called once before training when the run is data-parallel: a method whose forward depends on the whole
  // batch (GR-LoRA's branch norms) sums over ranks with `sum`.
  virtual void set_rank_sum(RankSum sum) {}
  // Whether the method's forward reads activations at padded positions (GR-LoRA's ‖h‖_F over the whole
  // batch tensor): a frozen-prefix cache then keeps every row's padded positions too (train/prefix_cache.h).
  virtual bool reads_padded_positions() const { return false; }
  // Whether the method's forward reads activations at positions the logits do not depend on (GR-LoRA's ‖h‖_F
  // covers every position of a branch's input): the last encoder layer is then computed at every position,
  // not at the first alone (TrainConfig::prune_last_layer).
  virtual bool reads_every_position() const { return false; }
};

// Counts: trainable parameters, and all parameters (as at inference).
int64_t count_trainable(const torch::nn::Module& m);
int64_t count_all(const torch::nn::Module& m);

// Default no-decay rule (transformers): biases and LayerNorm weights.
bool is_no_decay_param(const std::string& name);

}  // namespace lorakit
