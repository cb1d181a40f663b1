// GR-LoRA as a method (SPEC 3.1): LoRA + inverse-norm gradient scaling on every branch + the
// correctness-aware per-sample gradient penalty, returned from extra_loss() so that the trainer's
// backward of L_task + penalty is a double backward. The saved adapter is a plain PEFT LoRA adapter.
#pragma once
#include <chrono>
#include <nlohmann/json.hpp>

#include "tuners/gr_lora/config.h"
#include "tuners/gr_lora/layer.h"
#include "tuners/lora/model.h"

namespace CLI {
class App;
}

namespace lorakit {

struct MethodOptions;

class GrLoraMethod : public LoraMethod {
 public:
  GrLoraMethod(LoraConfig cfg, GrLoraConfig gr);
  std::string name() const override { return "gr-lora"; }
  at::Tensor extra_loss(StepInfo& step) override;
  void after_backward(StepInfo& step) override;  // scope "params": c onto A's and B's task gradients
  void before_optimizer_step(StepInfo& step, torch::optim::Optimizer& opt) override;
  void after_optimizer_step(StepInfo& step, torch::optim::Optimizer& opt) override;
  nlohmann::json epoch_stats() override;
  void save_state(MethodState& s) const override;
  void load_state(const MethodState& s) override;
  nlohmann::json extra_config() const override;
  void set_rank_sum(RankSum sum) override;  // the branch norms ‖h‖_F over the global batch
  bool reads_padded_positions() const override { return gr_.scaling; }
  bool reads_every_position() const override { return true; }  // ‖h‖_F; the penalty's records

  // λ_reg · (1/|S|) Σ_{i∈S} Σ_modules (‖∇_A L_i‖² + ‖∇_B L_i‖²) for the last training forward, with
  // S = correct samples of `step`; `mode` "efficient" or "naive" (default: the configured one). A
  // scalar with a graph (differentiable w.r.t. every parameter), 0 when S is empty. Does not clear
  // the record, so both modes can be evaluated on one forward (tests). Scope "params": also records each
  // layer's task gradients of A and B (GrLoraLayer::task_grad_A/B) for after_backward.
  at::Tensor penalty(const StepInfo& step, const std::string& mode = "") const;
  // The unscaled double sum Σ_{i∈S} Σ_modules (...) by each path; `correct` is S as a bool mask [B].
  // `task_weight` > 0: the δ pass is seeded with every row's loss instead of S's (row i of δ is ∂L_i/∂h'_i
  // either way), and each layer's task gradients task_weight·Σ_i ∇_{A,B} L_i are recorded from it — the
  // pass that gives the penalty its δ gives the task gradient too, with no sweep of its own.
  at::Tensor penalty_sum_efficient(const at::Tensor& per_sample_loss, const at::Tensor& correct,
                                   double task_weight = 0) const;
  at::Tensor penalty_sum_naive(const at::Tensor& per_sample_loss, const at::Tensor& correct) const;

  const GrLoraConfig& gr_config() const { return gr_; }
  std::vector<GrLoraLayer*> gr_layers() const;
  const c10::intrusive_ptr<GradScaleSwitch>& scale_switch() const { return sw_; }

 private:
  void clear_records();
  void record_task_gradients_by_autograd(const StepInfo& step) const;

  GrLoraConfig gr_;
  c10::intrusive_ptr<GradScaleSwitch> sw_;
  // Epoch accumulators.
  double frac_sum_ = 0, pen_sum_ = 0;
  int64_t steps_ = 0;
  // Per-phase wall-clock seconds (gr_profile), from the hook call times: forward = previous step's
  // end → extra_loss; delta_grad = the autograd::grad call(s) for δ (naive: the per-sample grads);
  // penalty = the rest of extra_loss; backward = extra_loss → before_optimizer_step (the trainer's
  // double backward and clipping); optimizer = before → after_optimizer_step.
  using Clock = std::chrono::steady_clock;
  struct Phases {
    double forward = 0, delta_grad = 0, penalty = 0, backward = 0, optimizer = 0;
    int64_t steps = 0, forward_steps = 0;
  };
  mutable Phases ph_;
  Clock::time_point last_end_{}, extra_end_{}, before_opt_{};
  bool have_last_end_ = false;
};

std::unique_ptr<Method> make_gr_lora(const MethodOptions& opt);
// --gr-scale --gr-eps --gr-max-scale --gr-no-scaling --gr-reg --gr-tau --gr-no-penalty --gr-penalty
void add_gr_lora_flags(CLI::App& cmd, std::shared_ptr<nlohmann::json> extra);

}  // namespace lorakit
