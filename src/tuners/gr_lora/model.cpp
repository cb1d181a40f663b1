#include "tuners/gr_lora/model.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "core/errors.h"
#include "tuners/registry.h"

namespace lorakit {

namespace {
c10::intrusive_ptr<GradScaleSwitch> new_switch() { return c10::make_intrusive<GradScaleSwitch>(); }
double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}
// Every layer's A and B, in layer order (A, B, A, B, ...).
std::vector<at::Tensor> adapter_params(const std::vector<GrLoraLayer*>& layers) {
  std::vector<at::Tensor> p;
  p.reserve(2 * layers.size());
  for (auto* l : layers) {
    p.push_back(l->lora_A->weight);
    p.push_back(l->lora_B->weight);
  }
  return p;
}
}  // namespace

GrLoraMethod::GrLoraMethod(LoraConfig cfg, GrLoraConfig gr)
    : LoraMethod(std::move(cfg)), gr_(std::move(gr)), sw_(new_switch()) {
  gr_.validate();
  // Every adapted module gets a GrLoraLayer sharing this method's bypass switch.
  factory_ = [g = gr_, s = sw_](AdaptableLinearImpl& h, const LoraConfig& c) -> std::shared_ptr<LoraLayer> {
    return std::make_shared<GrLoraLayer>(h, c, g, s);
  };
}

std::vector<GrLoraLayer*> GrLoraMethod::gr_layers() const { return layers_as<GrLoraLayer>(); }

nlohmann::json GrLoraMethod::extra_config() const {
  nlohmann::ordered_json j;
  j["method"] = name();
  j["gr_lora"] = gr_.to_json();
  return j;
}

void GrLoraMethod::clear_records() {
  for (auto* l : gr_layers()) l->clear_record();
}

at::Tensor GrLoraMethod::penalty_sum_efficient(const at::Tensor& per_sample_loss, const at::Tensor& correct,
                                               double task_weight) const {
  const auto layers = gr_layers();
  std::vector<at::Tensor> outs;
  outs.reserve(layers.size());
  for (auto* l : layers) {
    if (!l->rec_h.defined()) throw Error("gr-lora: no recorded training forward for the penalty");
    outs.push_back(l->rec_h);
  }
  const int64_t batch = correct.size(0);
  at::Tensor idx = correct.nonzero().squeeze(1);
  const int64_t n_s = idx.size(0);
  const bool all = n_s == batch;
  // δ = ∂(Σ_{i∈S} L_i)/∂h' for every module at once. Samples do not interact, so row i∈S is ∂L_i/∂h'_i
  // (the rows outside S are zero and dropped below). create_graph: the penalty is differentiated
  // again by the trainer's backward. The scaling nodes downstream are bypassed: true gradients. With
  // task_weight the seed is every row's loss: the rows in S are the same, the others feed the task gradients.
  const bool with_task = task_weight > 0;
  at::Tensor sum_s =
      with_task ? per_sample_loss.sum() : (per_sample_loss * correct.to(per_sample_loss.scalar_type())).sum();
  torch::autograd::variable_list deltas;
  const auto t0 = Clock::now();
  {
    GradScaleBypass bypass(sw_);
    deltas = torch::autograd::grad({sum_s}, outs, {}, /*retain_graph=*/true, /*create_graph=*/true,
                                   /*allow_unused=*/true);
  }
  ph_.delta_grad += seconds_since(t0);
  // [|S|, k·T, width]: example i's rows of a record. A model that runs an example as k encoder rows stacks
  // them block-wise, row j·B + i being example i's j-th (USE-lite's bi-encoder: its two sentences), so the
  // example's per-sample gradient sums over all k of them.
  auto per_example = [&](const at::Tensor& t, int64_t width) {
    const int64_t rows = t.size(0);
    if (rows % batch != 0)
      throw Error("gr-lora: a recorded branch has " + std::to_string(rows) + " rows for a batch of " +
                  std::to_string(batch) + " examples");
    const int64_t k = rows / batch;
    at::Tensor e = k == 1 ? t.reshape({batch, -1, width})
                          : t.reshape({k, batch, -1, width}).transpose(0, 1).reshape({batch, -1, width});
    return all ? e : e.index_select(0, idx);
  };
  at::Tensor total;
  for (size_t m = 0; m < layers.size(); ++m) {
    auto* l = layers[m];
    if (!deltas[m].defined()) {  // this module does not reach the loss
      if (with_task) {
        l->task_grad_A = at::zeros_like(l->lora_A->weight).detach();
        l->task_grad_B = at::zeros_like(l->lora_B->weight).detach();
      }
      continue;
    }
    const at::Tensor& A = l->lora_A->weight;  // [R, d_in]
    const at::Tensor& B = l->lora_B->weight;  // [d_out, R]
    const int64_t d_in = A.size(1), d_out = B.size(0);
    if (with_task) {
      // Σ_i ∂L_i/∂A and ∂L_i/∂B from every row of δ (no graph): s·Σ_t (δ_t B)ᵀ x̃_t and s·Σ_t δ_tᵀ (A x̃_t).
      torch::NoGradGuard ng;
      at::Tensor dt = deltas[m].detach().to(A.scalar_type()).reshape({-1, d_out});
      at::Tensor xt = l->rec_x.detach().to(A.scalar_type()).reshape({-1, d_in});
      const double f = task_weight * l->scaling;
      l->task_grad_B = at::matmul(dt.t(), at::matmul(xt, A.detach().t())) * f;  // [d_out, R]
      l->task_grad_A = at::matmul(at::matmul(dt, B.detach()).t(), xt) * f;      // [R, d_in]
    }
    at::Tensor d = per_example(deltas[m], d_out);  // [|S|, k·T, d_out]
    at::Tensor x = per_example(l->rec_x, d_in);    // [|S|, k·T, d_in]   (x̃: the forward's dropped-out input)
    // Under --bf16 the recorded branch ran in bf16 autocast: the penalty's own arithmetic is fp32.
    if (d.scalar_type() != A.scalar_type()) d = d.to(A.scalar_type());
    if (x.scalar_type() != A.scalar_type()) x = x.to(A.scalar_type());
    at::Tensor u = at::matmul(x, A.t());                                     // [|S|, T, R]
    at::Tensor grad_B = at::bmm(d.transpose(1, 2), u) * l->scaling;          // [|S|, d_out, R] = s·δᵢᵀ uᵢ
    at::Tensor grad_A = at::bmm(at::matmul(d, B).transpose(1, 2), x) * l->scaling;  // [|S|, R, d_in] = s·(δᵢB)ᵀ x̃ᵢ
    at::Tensor term = grad_A.square().sum() + grad_B.square().sum();
    total = total.defined() ? total + term : term;
  }
  if (!total.defined()) total = at::zeros({}, per_sample_loss.options());
  return total;
}

at::Tensor GrLoraMethod::penalty_sum_naive(const at::Tensor& per_sample_loss, const at::Tensor& correct) const {
  const std::vector<at::Tensor> params = adapter_params(gr_layers());
  at::Tensor idx = correct.nonzero().squeeze(1);
  auto acc = idx.accessor<int64_t, 1>();
  at::Tensor total;
  for (int64_t k = 0; k < idx.size(0); ++k) {
    torch::autograd::variable_list g;
    const auto t0 = Clock::now();
    {
      GradScaleBypass bypass(sw_);
      g = torch::autograd::grad({per_sample_loss[acc[k]]}, params, {}, /*retain_graph=*/true, /*create_graph=*/true,
                                /*allow_unused=*/true);
    }
    ph_.delta_grad += seconds_since(t0);
    for (auto& t : g) {
      if (!t.defined()) continue;
      at::Tensor term = t.square().sum();
      total = total.defined() ? total + term : term;
    }
  }
  if (!total.defined()) total = at::zeros({}, per_sample_loss.options());
  return total;
}

// The naive path computes no δ: the task loss's own first-order gradients of A and B (one more sweep; the naive
// path is the reference, not the fast one). No scaling node is on the graph under scope "params".
void GrLoraMethod::record_task_gradients_by_autograd(const StepInfo& step) const {
  const auto layers = gr_layers();
  const std::vector<at::Tensor> params = adapter_params(layers);
  auto g = torch::autograd::grad({step.task_loss}, params, {}, /*retain_graph=*/true, /*create_graph=*/false,
                                 /*allow_unused=*/true);
  for (size_t k = 0; k < layers.size(); ++k) {
    layers[k]->task_grad_A = g[2 * k].defined() ? g[2 * k] : at::zeros_like(params[2 * k]);
    layers[k]->task_grad_B = g[2 * k + 1].defined() ? g[2 * k + 1] : at::zeros_like(params[2 * k + 1]);
  }
}

at::Tensor GrLoraMethod::penalty(const StepInfo& step, const std::string& mode_in) const {
  const std::string mode = mode_in.empty() ? gr_.penalty_mode : mode_in;
  const bool params_scope = gr_.params_scope();
  for (auto* l : gr_layers()) l->task_grad_A = l->task_grad_B = at::Tensor();
  at::Tensor correct = step.correct(gr_.tau);
  const int64_t local_s = correct.sum().item<int64_t>();
  // 1/|S| over the whole (global) batch: each rank returns its samples' share.
  const int64_t n_s = step.global_count_of(local_s);
  if (local_s == 0 || n_s == 0) return at::zeros({}, step.per_sample_loss.options().requires_grad(false));
  at::Tensor sum;
  if (mode == "efficient") {
    sum = penalty_sum_efficient(step.per_sample_loss, correct, params_scope ? step.task_weight() : 0.0);
  } else if (mode == "naive") {
    sum = penalty_sum_naive(step.per_sample_loss, correct);
    if (params_scope) record_task_gradients_by_autograd(step);
  } else {
    throw Error("gr-lora: unknown penalty mode '" + mode + "'");
  }
  return sum * (gr_.reg / static_cast<double>(n_s));
}

at::Tensor GrLoraMethod::extra_loss(StepInfo& step) {
  const auto t0 = Clock::now();
  if (have_last_end_) {
    ph_.forward += std::chrono::duration<double>(t0 - last_end_).count();
    ++ph_.forward_steps;
  }
  const double before_delta = ph_.delta_grad;
  const int64_t batch = step.logits.size(0);
  at::Tensor correct = step.correct(gr_.tau);
  frac_sum_ += correct.sum().item<double>() / std::max<int64_t>(1, batch);
  ++steps_;
  at::Tensor p;
  if (gr_.penalty_active()) {
    p = penalty(step);
    clear_records();  // the penalty's graph holds what it needs; the layers let go
    pen_sum_ += p.item<double>();
  }
  extra_end_ = Clock::now();
  ph_.penalty += std::chrono::duration<double>(extra_end_ - t0).count() - (ph_.delta_grad - before_delta);
  return p;
}

void GrLoraMethod::set_rank_sum(RankSum sum) { sw_->sum_over_ranks = std::move(sum); }

void GrLoraMethod::after_backward(StepInfo&) {
  if (!gr_.params_scope()) return;
  for (auto* l : gr_layers()) l->scale_task_gradients();
}

void GrLoraMethod::before_optimizer_step(StepInfo&, torch::optim::Optimizer&) {
  before_opt_ = Clock::now();
  ph_.backward += std::chrono::duration<double>(before_opt_ - extra_end_).count();
}

void GrLoraMethod::after_optimizer_step(StepInfo&, torch::optim::Optimizer&) {
  clear_records();
  last_end_ = Clock::now();
  have_last_end_ = true;
  ph_.optimizer += std::chrono::duration<double>(last_end_ - before_opt_).count();
  ++ph_.steps;
}

nlohmann::json GrLoraMethod::epoch_stats() {
  nlohmann::json j = LoraMethod::epoch_stats();
  if (steps_ > 0) {
    j["gr_correct_fraction"] = frac_sum_ / steps_;
    j["gr_penalty"] = pen_sum_ / steps_;
  }
  std::vector<double> means;
  for (auto* l : gr_layers()) {
    const double m = l->take_mean_scale();
    if (std::isfinite(m)) means.push_back(m);
  }
  if (!means.empty()) {
    std::sort(means.begin(), means.end());
    const size_t n = means.size();
    j["gr_scale_min"] = means.front();
    j["gr_scale_median"] = n % 2 ? means[n / 2] : 0.5 * (means[n / 2 - 1] + means[n / 2]);
    j["gr_scale_max"] = means.back();
  }
  if (gr_.profile && ph_.steps > 0) {
    // Mean milliseconds per step of each phase.
    const double n = static_cast<double>(ph_.steps);
    j["gr_phase_ms"] = {{"forward", ph_.forward_steps ? 1e3 * ph_.forward / ph_.forward_steps : 0.0},
                        {"delta_grad", 1e3 * ph_.delta_grad / n},
                        {"penalty_rest", 1e3 * ph_.penalty / n},
                        {"backward", 1e3 * ph_.backward / n},
                        {"optimizer", 1e3 * ph_.optimizer / n},
                        {"steps", ph_.steps}};
  }
  frac_sum_ = pen_sum_ = 0;
  steps_ = 0;
  ph_ = Phases{};
  return j;
}

std::unique_ptr<Method> make_gr_lora(const MethodOptions& opt) {
  return std::make_unique<GrLoraMethod>(opt.lora, GrLoraConfig::from_json(opt.extra));
}

// The epoch accumulators and each layer's scale statistics (epoch_stats reads them).
void GrLoraMethod::save_state(MethodState& s) const {
  s.put_f64("gr.frac_sum", frac_sum_);
  s.put_f64("gr.pen_sum", pen_sum_);
  s.put_i64("gr.steps", steps_);
  const auto layers = gr_layers();
  for (size_t i = 0; i < layers.size(); ++i) {
    const std::string k = "gr.layer." + std::to_string(i) + ".";
    s.put_f64(k + "last_scale", layers[i]->last_scale);
    s.put_f64(k + "scale_sum", layers[i]->scale_sum);
    s.put_i64(k + "scale_count", layers[i]->scale_count);
  }
}

void GrLoraMethod::load_state(const MethodState& s) {
  frac_sum_ = s.get_f64("gr.frac_sum");
  pen_sum_ = s.get_f64("gr.pen_sum");
  steps_ = s.get_i64("gr.steps");
  const auto layers = gr_layers();
  for (size_t i = 0; i < layers.size(); ++i) {
    const std::string k = "gr.layer." + std::to_string(i) + ".";
    layers[i]->last_scale = s.get_f64(k + "last_scale");
    layers[i]->scale_sum = s.get_f64(k + "scale_sum");
    layers[i]->scale_count = s.get_i64(k + "scale_count");
  }
}

}  // namespace lorakit
