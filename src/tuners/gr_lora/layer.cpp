#include "tuners/gr_lora/layer.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace lorakit {

double grad_scale_factor(double norm, double scale, double eps, double max_scale) {
  const double denom = norm + eps;
  if (!(denom > 0)) return max_scale;  // n = ε = 0: the clamp decides
  return std::min(scale / denom, max_scale);
}

double branch_norm(const at::Tensor& h, const GradScaleSwitch* sw) {
  double n = h.detach().norm().item<double>();
  if (sw && sw->sum_over_ranks) n = std::sqrt(sw->sum_over_ranks(n * n));
  return n;
}

at::Tensor GradScaleFunction::forward(torch::autograd::AutogradContext* ctx, at::Tensor h, double scale, double eps,
                                      double max_scale, c10::intrusive_ptr<GradScaleSwitch> sw, double* norm_out) {
  const double n = branch_norm(h, sw.get());
  ctx->saved_data["c"] = grad_scale_factor(n, scale, eps, max_scale);
  if (sw) ctx->saved_data["switch"] = c10::IValue::make_capsule(sw);
  if (norm_out) *norm_out = n;
  return h;  // identity (autograd wraps it as a view of the input with this node as its grad_fn)
}

torch::autograd::variable_list GradScaleFunction::backward(torch::autograd::AutogradContext* ctx,
                                                           torch::autograd::variable_list grad_out) {
  const double c = ctx->saved_data["c"].toDouble();
  bool bypass = false;
  auto it = ctx->saved_data.find("switch");
  if (it != ctx->saved_data.end())
    bypass = c10::static_intrusive_pointer_cast<GradScaleSwitch>(it->second.toCapsule())->bypass.load() > 0;
  at::Tensor g = grad_out[0];
  if (g.defined() && !bypass) g = g * c;
  return {g, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
}

at::Tensor grad_scale(const at::Tensor& h, double scale, double eps, double max_scale,
                      const c10::intrusive_ptr<GradScaleSwitch>& sw, double* norm_out) {
  return GradScaleFunction::apply(h, scale, eps, max_scale, sw, norm_out);
}

GrLoraLayer::GrLoraLayer(AdaptableLinearImpl& host, const LoraConfig& cfg, const GrLoraConfig& g,
                         c10::intrusive_ptr<GradScaleSwitch> s)
    : LoraLayer(host, cfg), gr(g), sw(std::move(s)) {}

at::Tensor GrLoraLayer::transform_branch(const at::Tensor& h, const at::Tensor& x_dropped) {
  // Only a training forward that builds a graph is scaled and recorded: evaluation (eval mode or
  // no-grad) keeps nothing alive.
  if (!host->is_training() || !at::GradMode::is_enabled() || !h.requires_grad()) {
    clear_record();
    return h;
  }
  at::Tensor out = h;
  if (gr.scaling) {
    double n = 0;
    if (gr.params_scope())
      n = branch_norm(h, sw.get());  // no node on the graph: c is applied to A's and B's gradients afterwards
    else
      out = grad_scale(h, gr.scale, gr.eps, gr.max_scale, sw, &n);
    last_scale = grad_scale_factor(n, gr.scale, gr.eps, gr.max_scale);
    scale_sum += last_scale;
    ++scale_count;
  }
  if (gr.penalty_active()) {
    rec_h = out;
    rec_x = x_dropped;
  }
  return out;
}

void GrLoraLayer::scale_task_gradients() {
  torch::NoGradGuard ng;
  const double c = last_scale;
  auto fix = [c](const at::Tensor& w, const at::Tensor& task) {
    if (!w.grad().defined()) return;
    at::Tensor& g = const_cast<at::Tensor&>(w).mutable_grad();
    if (task.defined())
      g.add_(task.to(g.scalar_type()), c - 1.0);
    else
      g.mul_(c);
  };
  fix(lora_A->weight, task_grad_A);
  fix(lora_B->weight, task_grad_B);
  task_grad_A = at::Tensor();
  task_grad_B = at::Tensor();
}

double GrLoraLayer::take_mean_scale() {
  const double m = scale_count > 0 ? scale_sum / scale_count : std::numeric_limits<double>::quiet_NaN();
  scale_sum = 0;
  scale_count = 0;
  return m;
}

}  // namespace lorakit
