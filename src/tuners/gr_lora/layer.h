// The GR-LoRA layer: a LoRA layer whose branch output h = s·B A x̃ passes through the inverse-norm
// gradient-scaling function before it joins W0 x, and which records what the correctness-aware
// penalty needs (the branch output h' after the scaling, and the dropped-out input x̃).
#pragma once
#include <torch/csrc/autograd/custom_function.h>

#include <atomic>
#include <functional>

#include "tuners/gr_lora/config.h"
#include "tuners/lora/layer.h"

namespace lorakit {

// Shared by every scaling node of one method. While `bypass` > 0 the nodes' backward is the identity,
// so gradients taken for the penalty are the true ones (no c of any module along the way).
struct GradScaleSwitch : torch::CustomClassHolder {
  std::atomic<int> bypass{0};
  // Data parallelism: ‖h‖² summed over every rank, so that c is the global batch's (null: one process).
  std::function<double(double)> sum_over_ranks;
};

class GradScaleBypass {
 public:
  explicit GradScaleBypass(const c10::intrusive_ptr<GradScaleSwitch>& s) : s_(s) {
    if (s_) ++s_->bypass;
  }
  ~GradScaleBypass() {
    if (s_) --s_->bypass;
  }
  GradScaleBypass(const GradScaleBypass&) = delete;
  GradScaleBypass& operator=(const GradScaleBypass&) = delete;

 private:
  c10::intrusive_ptr<GradScaleSwitch> s_;
};

// c = min(λ / (n + ε), max_scale).
double grad_scale_factor(double norm, double scale, double eps, double max_scale);
// n = ‖h‖_F of the whole tensor (no grad), over every rank's batch when `sw` sums over ranks.
double branch_norm(const at::Tensor& h, const GradScaleSwitch* sw);

// Identity forward that records n = ‖h‖_F (the whole tensor, no grad); backward g ↦ c·g with c a
// constant (so the backward is itself differentiable: double backward works). `norm_out` (may be null)
// receives n. `sw` (may be null) lets a caller switch the scaling off for a backward pass.
struct GradScaleFunction : public torch::autograd::Function<GradScaleFunction> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, at::Tensor h, double scale, double eps,
                            double max_scale, c10::intrusive_ptr<GradScaleSwitch> sw, double* norm_out);
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_out);
};
at::Tensor grad_scale(const at::Tensor& h, double scale, double eps, double max_scale,
                      const c10::intrusive_ptr<GradScaleSwitch>& sw = {}, double* norm_out = nullptr);

class GrLoraLayer : public LoraLayer {
 public:
  GrLoraLayer(AdaptableLinearImpl& host, const LoraConfig& cfg, const GrLoraConfig& gr,
              c10::intrusive_ptr<GradScaleSwitch> sw);
  at::Tensor transform_branch(const at::Tensor& h, const at::Tensor& x_dropped) override;

  // Drops the recorded tensors (and with them the graph they keep alive).
  void clear_record() {
    rec_h = at::Tensor();
    rec_x = at::Tensor();
  }
  // Scope "params", after the trainer's backward: A's and B's gradients become c·(task part) + (the rest).
  // With task_grad_A/B recorded (the penalty's pass computed them) only the task part is scaled, as
  // grad += (c − 1)·task_grad; without (no penalty this step) the whole gradient is the task's and is
  // multiplied by c. Then drops the recorded task gradients.
  void scale_task_gradients();
  // Mean c of the training forwards since the last reset (NaN if none), then resets.
  double take_mean_scale();

  GrLoraConfig gr;
  c10::intrusive_ptr<GradScaleSwitch> sw;
  // Set by the last training forward with grad enabled (and only when the penalty is on):
  at::Tensor rec_h;  // h' = the branch output after the scaling function, where it joins W0 x
  at::Tensor rec_x;  // x̃ = the dropped-out input the branch saw
  // Scope "params": this rank's share of the task loss's gradient of A and B for the last step (no graph),
  // when the penalty's pass provided it.
  at::Tensor task_grad_A, task_grad_B;
  double last_scale = 0;  // c of the last training forward
  double scale_sum = 0;
  int64_t scale_count = 0;
};

}  // namespace lorakit
