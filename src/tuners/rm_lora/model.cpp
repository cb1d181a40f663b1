#include "tuners/rm_lora/model.h"

#include <algorithm>
#include <limits>
#include <map>
#include <tuple>
#include <numeric>

#include <torch/optim/adam.h>
#include <torch/optim/adamw.h>

#include "core/errors.h"
#include "tuners/lora/diagnostics.h"

namespace lorakit {

at::Tensor RmLoraLayer::transform_branch(const at::Tensor& h, const at::Tensor& /*x_dropped*/) {
  if (host->is_training()) {
    at::NoGradGuard ng;
    at::Tensor n = h.detach().norm().to(at::kDouble);
    norm_sum = norm_sum.defined() ? norm_sum + n : n;
    ++norm_count;
  }
  return h;
}

uint64_t uniform_below(std::mt19937_64& rng, uint64_t n) {
  if (n == 0) throw Error("uniform_below: empty range");
  const uint64_t max = std::numeric_limits<uint64_t>::max();
  const uint64_t limit = max - max % n;  // a multiple of n (the last partial block is rejected)
  uint64_t x;
  do {
    x = rng();
  } while (x >= limit);
  return x % n;
}

std::vector<int64_t> draw_directions(std::mt19937_64& rng, int64_t r, int64_t r_hat) {
  if (r_hat < 0 || r_hat > r) throw Error("cannot draw " + std::to_string(r_hat) + " of " + std::to_string(r) + " directions");
  std::vector<int64_t> perm(static_cast<size_t>(r));
  std::iota(perm.begin(), perm.end(), 0);
  for (int64_t i = 0; i < r_hat; ++i) {
    const int64_t j = i + static_cast<int64_t>(uniform_below(rng, static_cast<uint64_t>(r - i)));
    std::swap(perm[i], perm[j]);
  }
  perm.resize(static_cast<size_t>(r_hat));
  std::sort(perm.begin(), perm.end());
  return perm;
}

namespace {

// AdamW's (or Adam's) moments of `p`, as handles sharing the optimizer's storage. False if the optimizer
// has no state for `p` yet (it creates it lazily in its first step).
bool find_moments(torch::optim::Optimizer& opt, const at::Tensor& p, at::Tensor& m, at::Tensor& v, at::Tensor& vmax) {
  auto& st = opt.state();
  auto it = st.find(c10::guts::to_string(p.unsafeGetTensorImpl()));
  if (it == st.end()) return false;
  if (auto* s = dynamic_cast<torch::optim::AdamWParamState*>(it->second.get())) {
    m = s->exp_avg();
    v = s->exp_avg_sq();
    vmax = s->max_exp_avg_sq();
    return true;
  }
  if (auto* s = dynamic_cast<torch::optim::AdamParamState*>(it->second.get())) {
    m = s->exp_avg();
    v = s->exp_avg_sq();
    vmax = s->max_exp_avg_sq();
    return true;
  }
  throw Error("GM-LoRA --mask-mode update keeps AdamW/Adam state of masked directions; this optimizer's state is "
              "of another kind (use --mask-mode grad)");
}

at::Tensor take(const at::Tensor& t, int64_t dim, const at::Tensor& idx) {
  return t.defined() ? t.index_select(dim, idx) : at::Tensor();
}

void put(const at::Tensor& t, int64_t dim, const at::Tensor& idx, const at::Tensor& saved, bool had_state) {
  if (!t.defined()) return;
  if (had_state && saved.defined())
    t.index_copy_(dim, idx, saved);
  else
    t.index_fill_(dim, idx, 0);  // lazily created state: its "before" was zeros
}

}  // namespace

RmLoraMethod::RmLoraMethod(LoraConfig lora, RmLoraConfig rm)
    : LoraMethod(std::move(lora),
                 [](AdaptableLinearImpl& h, const LoraConfig& c) { return std::make_shared<RmLoraLayer>(h, c); }),
      rm_(std::move(rm)) {
  if (rm_.mask) rm_.directions_for(cfg_.r);  // validates r̂ against r early
}

void RmLoraMethod::attach(SequenceClassifier& model) {
  LoraMethod::attach(model);
  r_hat_.clear();
  for (auto& [path, layer] : layers_) r_hat_.push_back(rm_.mask ? rm_.directions_for(layer->r) : layer->r);
  draw_.assign(layers_.size(), {});
  pending_.clear();
  shape_groups_.clear();
  std::map<std::tuple<int64_t, int64_t, int64_t, int, std::string>, size_t> where;
  for (size_t i = 0; i < layers_.size(); ++i) {
    const at::Tensor& A = layers_[i].second->lora_A->weight;
    const at::Tensor& B = layers_[i].second->lora_B->weight;
    auto key = std::make_tuple(A.size(0), A.size(1), B.size(0), static_cast<int>(A.scalar_type()), A.device().str());
    auto it = where.find(key);
    if (it == where.end()) {
      where.emplace(key, shape_groups_.size());
      shape_groups_.push_back({i});
    } else {
      shape_groups_[it->second].push_back(i);
    }
  }
}

at::Tensor RmLoraMethod::orthogonality_loss() const {
  // One batched pair of R×R Grams per group of equally shaped modules (BERT's query/value: one group),
  // so the term costs a handful of autograd nodes whatever the number of modules.
  at::Tensor total;
  for (auto& g : shape_groups_) {
    at::Tensor p;
    if (g.size() == 1) {
      auto& l = *layers_[g[0]].second;
      p = orthogonality_penalty(l.lora_A->weight, l.lora_B->weight);
    } else {
      std::vector<at::Tensor> as, bs;
      as.reserve(g.size());
      bs.reserve(g.size());
      for (size_t i : g) {
        as.push_back(layers_[i].second->lora_A->weight);
        bs.push_back(layers_[i].second->lora_B->weight);
      }
      at::Tensor A = at::stack(as), B = at::stack(bs);  // [G, R, in], [G, out, R]
      at::Tensor eye = at::eye(A.size(1), A.options().requires_grad(false));
      p = (at::bmm(A, A.transpose(1, 2)) - eye).pow(2).sum() + (at::bmm(B.transpose(1, 2), B) - eye).pow(2).sum();
    }
    total = total.defined() ? total + p : p;
  }
  return total;
}

at::Tensor RmLoraMethod::extra_loss(StepInfo& step) {
  if (!rm_.regularize || rm_.orth_reg == 0.0 || layers_.empty()) return {};
  at::Tensor pen = orthogonality_loss();
  {
    at::NoGradGuard ng;
    at::Tensor d = pen.detach().to(at::kDouble);
    penalty_sum_ = penalty_sum_.defined() ? penalty_sum_ + d : d;
    ++penalty_steps_;
  }
  return pen * (rm_.orth_reg * step.param_share);
}

void RmLoraMethod::before_optimizer_step(StepInfo& step, torch::optim::Optimizer& opt) {
  pending_.clear();
  if (!rm_.mask || layers_.empty()) return;
  if (!step.rng) throw Error("GM-LoRA needs the run's random generator (StepInfo::rng)");
  at::NoGradGuard ng;
  ++masked_steps_;
  pending_.resize(layers_.size());
  for (size_t i = 0; i < layers_.size(); ++i) {
    auto& layer = *layers_[i].second;
    const int64_t r = layer.r;
    if (r_hat_[i] == r) {  // every direction updates: nothing to draw or freeze
      draw_[i].resize(static_cast<size_t>(r));
      std::iota(draw_[i].begin(), draw_[i].end(), 0);
      continue;
    }
    draw_[i] = draw_directions(*step.rng, r, r_hat_[i]);
    std::vector<int64_t> frozen;
    frozen.reserve(static_cast<size_t>(r - r_hat_[i]));
    for (int64_t d = 0, k = 0; d < r; ++d) {
      if (k < static_cast<int64_t>(draw_[i].size()) && draw_[i][k] == d)
        ++k;
      else
        frozen.push_back(d);
    }
    const at::Tensor& A = layer.lora_A->weight;  // [r, in]: direction = row (dim 0)
    const at::Tensor& B = layer.lora_B->weight;  // [out, r]: direction = column (dim 1)
    ModuleMask& mm = pending_[i];
    mm.masked = at::tensor(frozen, at::TensorOptions().dtype(at::kLong)).to(A.device());
    if (rm_.mask_mode == MaskMode::Grad) {
      if (A.grad().defined()) A.grad().index_fill_(0, mm.masked, 0);
      if (B.grad().defined()) B.grad().index_fill_(1, mm.masked, 0);
      continue;
    }
    auto save = [&](const at::Tensor& p, int64_t dim, Saved& s) {
      s.value = p.index_select(dim, mm.masked);
      at::Tensor m, v, vmax;
      s.had_state = find_moments(opt, p, m, v, vmax);
      if (s.had_state) {
        s.exp_avg = take(m, dim, mm.masked);
        s.exp_avg_sq = take(v, dim, mm.masked);
        s.max_exp_avg_sq = take(vmax, dim, mm.masked);
      }
    };
    save(A, 0, mm.a);
    save(B, 1, mm.b);
  }
  if (rm_.mask_mode == MaskMode::Grad) pending_.clear();
}

void RmLoraMethod::after_optimizer_step(StepInfo& step, torch::optim::Optimizer& opt) {
  if (pending_.empty()) return;
  at::NoGradGuard ng;
  for (size_t i = 0; i < pending_.size(); ++i) {
    ModuleMask& mm = pending_[i];
    if (!mm.masked.defined()) continue;
    auto& layer = *layers_[i].second;
    auto restore = [&](const at::Tensor& p, int64_t dim, const Saved& s) {
      p.index_copy_(dim, mm.masked, s.value);
      at::Tensor m, v, vmax;
      if (!find_moments(opt, p, m, v, vmax)) return;  // the optimizer skipped p (no gradient)
      put(m, dim, mm.masked, s.exp_avg, s.had_state);
      put(v, dim, mm.masked, s.exp_avg_sq, s.had_state);
      put(vmax, dim, mm.masked, s.max_exp_avg_sq, s.had_state);
    };
    restore(layer.lora_A->weight, 0, mm.a);
    restore(layer.lora_B->weight, 1, mm.b);
  }
  pending_.clear();
}

nlohmann::json RmLoraMethod::epoch_stats() {
  nlohmann::json j = LoraMethod::epoch_stats();
  if (rm_.regularize) {
    j["orth_reg"] = rm_.orth_reg;
    // Σ_modules (‖AAᵀ−I‖² + ‖BᵀB−I‖²), unweighted, averaged over this epoch's steps.
    j["orth_penalty_mean"] = penalty_steps_ ? penalty_sum_.item<double>() / static_cast<double>(penalty_steps_) : 0.0;
  }
  if (rm_.mask) {
    j["mask_steps"] = masked_steps_;
    j["mask_directions"] = r_hat_.empty() ? 0 : r_hat_.front();
    j["mask_mode"] = mask_mode_name(rm_.mask_mode);
  }
  double norm_total = 0;
  int64_t norm_modules = 0;
  for (auto& [path, layer] : layers_) {
    auto* rl = dynamic_cast<RmLoraLayer*>(layer.get());
    if (!rl || rl->norm_count == 0) continue;
    const double mean = rl->norm_sum.item<double>() / static_cast<double>(rl->norm_count);
    if (j.contains("lora_modules") && j["lora_modules"].contains(path)) j["lora_modules"][path]["output_norm_mean"] = mean;
    norm_total += mean;
    ++norm_modules;
    rl->norm_sum = at::Tensor();
    rl->norm_count = 0;
  }
  if (norm_modules) j["lora_output_norm_mean"] = norm_total / static_cast<double>(norm_modules);
  penalty_sum_ = at::Tensor();
  penalty_steps_ = 0;
  masked_steps_ = 0;
  return j;
}

nlohmann::json RmLoraMethod::extra_config() const { return rm_.to_json(); }

nlohmann::json RmLoraMethod::describe() const {
  nlohmann::json j = LoraMethod::describe();
  if (rm_.mask && !r_hat_.empty()) j["mask_directions_resolved"] = r_hat_.front();
  return j;
}

// Epoch statistics, the last draw, and each layer's output-norm accumulator. (The mask generator is the
// run's generator, StepInfo::rng, which the trainer saves; r̂ comes from the configuration.)
void RmLoraMethod::save_state(MethodState& s) const {
  s.put_tensor("rm.penalty_sum", penalty_sum_);
  s.put_i64("rm.penalty_steps", penalty_steps_);
  s.put_i64("rm.masked_steps", masked_steps_);
  s.json["rm.draw"] = draw_;
  for (size_t i = 0; i < layers_.size(); ++i) {
    auto* rl = dynamic_cast<RmLoraLayer*>(layers_[i].second.get());
    if (!rl) continue;
    s.put_tensor("rm.layer." + std::to_string(i) + ".norm_sum", rl->norm_sum);
    s.put_i64("rm.layer." + std::to_string(i) + ".norm_count", rl->norm_count);
  }
}

void RmLoraMethod::load_state(const MethodState& s) {
  penalty_sum_ = s.get_tensor("rm.penalty_sum");
  penalty_steps_ = s.get_i64("rm.penalty_steps");
  masked_steps_ = s.get_i64("rm.masked_steps");
  if (s.json.contains("rm.draw")) draw_ = s.json["rm.draw"].get<std::vector<std::vector<int64_t>>>();
  for (size_t i = 0; i < layers_.size(); ++i) {
    auto* rl = dynamic_cast<RmLoraLayer*>(layers_[i].second.get());
    if (!rl) continue;
    rl->norm_sum = s.get_tensor("rm.layer." + std::to_string(i) + ".norm_sum");
    rl->norm_count = s.get_i64("rm.layer." + std::to_string(i) + ".norm_count");
  }
}

}  // namespace lorakit
