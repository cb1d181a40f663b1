#include "tuners/sora/model.h"

#include <ATen/ATen.h>
#include <CLI/CLI.hpp>

#include <cmath>

#include "core/errors.h"
#include "tuners/lora/diagnostics.h"

namespace lorakit {

SoraConfig SoraConfig::from_options(const nlohmann::json& extra) {
  SoraConfig c;
  try {
    if (extra.contains("sora_lambda")) c.sparse_lambda = extra["sora_lambda"].get<double>();
    if (extra.contains("sora_lambda2")) c.sparse_lambda_2 = extra["sora_lambda2"].get<double>();
    if (extra.contains("sora_gate_lr")) c.gate_lr = extra["sora_gate_lr"].get<double>();
    if (extra.contains("sora_threshold")) {
      const std::string t = extra["sora_threshold"].get<std::string>();
      if (t != "official" && t != "textbook")
        throw Error("--sora-threshold must be 'official' or 'textbook', got '" + t + "'");
      c.textbook = t == "textbook";
    }
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("bad SoRA option: ") + e.what());
  }
  if (!(c.sparse_lambda >= 0) || !std::isfinite(c.sparse_lambda)) throw Error("--sora-lambda must be >= 0");
  if (!(c.sparse_lambda_2 >= 0) || !std::isfinite(c.sparse_lambda_2)) throw Error("--sora-lambda2 must be >= 0");
  if (extra.contains("sora_gate_lr") && !(c.gate_lr > 0)) throw Error("--sora-gate-lr must be positive");
  return c;
}

nlohmann::json SoraConfig::to_json() const {
  nlohmann::json j = {{"sparse_lambda", sparse_lambda},
                      {"sparse_lambda_2", sparse_lambda_2},
                      {"threshold", textbook ? "textbook" : "official"}};
  if (gate_lr > 0) j["gate_lr"] = gate_lr;
  return j;
}

void sora_threshold_(at::Tensor& g, double xi, bool textbook) {
  torch::NoGradGuard ng;
  if (xi <= 0) return;
  if (textbook) {
    g.copy_(g.sign() * (g.abs() - xi).clamp_min(0.0));
    return;
  }
  // The official SparseAdamW lines, in their order (each sees the previous one's result).
  g.sub_(g.gt(xi).to(g.scalar_type()) * xi);
  g.add_(g.lt(-xi).to(g.scalar_type()) * xi);
  g.masked_fill_(g.abs().lt(xi), 0.0);
}

SoraLayer::SoraLayer(AdaptableLinearImpl& h, const LoraConfig& cfg) : LoraLayer(h, cfg) {
  lora_gate = h.register_module("lora_gate", ParameterHolder(at::randn({1, r}, h.weight.options())));
}

at::Tensor SoraLayer::forward(const at::Tensor& x, const at::Tensor& base_out) {
  return base_out + at::linear(at::linear(dropped(x), lora_A->weight) * lora_gate->weight, lora_B->weight) * scaling;
}

at::Tensor SoraLayer::effective_A() const { return lora_A->weight * lora_gate->weight.t(); }

SoraMethod::SoraMethod(LoraConfig lora, SoraConfig sora)
    : LoraMethod(std::move(lora), [](AdaptableLinearImpl& h, const LoraConfig& c) -> std::shared_ptr<LoraLayer> {
        return std::make_shared<SoraLayer>(h, c);
      }),
      sora_(sora) {}

std::vector<SoraLayer*> SoraMethod::sora_layers() const { return layers_as<SoraLayer>(); }

std::vector<ParamGroup> SoraMethod::param_groups(SequenceClassifier& model, double weight_decay) {
  std::vector<ParamGroup> groups;
  ParamGroup decay{{}, weight_decay, 1.0, "decay"}, no_decay{{}, 0.0, 1.0, "no_decay"},
      gates{{}, 0.0, 1.0, "sora_gates", sora_.gate_lr};
  for (auto& p : model->named_parameters(true)) {
    if (!p.value().requires_grad()) continue;
    if (p.key().find(".lora_gate.") != std::string::npos)
      gates.params.push_back(p.value());
    else
      (is_no_decay_param(p.key()) ? no_decay : decay).params.push_back(p.value());
  }
  for (auto* g : {&decay, &no_decay, &gates})
    if (!g->params.empty()) groups.push_back(*g);
  return groups;
}

at::Tensor SoraMethod::extra_loss(StepInfo& step) {
  if (sora_.sparse_lambda <= 0) return {};
  at::Tensor sum;
  int64_t n = 0;
  for (auto* l : sora_layers()) {
    at::Tensor a = l->lora_gate->weight.abs().sum();
    sum = sum.defined() ? sum + a : a;
    n += l->lora_gate->weight.numel();
  }
  at::Tensor loss = sum * (sora_.sparse_lambda / static_cast<double>(n));
  l1_sum_ = l1_sum_.defined() ? l1_sum_ + loss.detach() : loss.detach();
  ++l1_steps_;
  return loss * step.param_share;
}

void SoraMethod::after_optimizer_step(StepInfo& step, torch::optim::Optimizer& opt) {
  for (auto* l : sora_layers()) sora_threshold_(l->lora_gate->weight, sora_.sparse_lambda_2, sora_.textbook);
}

std::vector<int64_t> SoraMethod::kept_ranks() const {
  std::vector<int64_t> out;
  for (auto* l : sora_layers()) out.push_back(l->lora_gate->weight.ne(0).sum().item<int64_t>());
  return out;
}

nlohmann::json SoraMethod::epoch_stats() {
  nlohmann::json j = LoraMethod::epoch_stats();  // ΔW diagnostics with the gates folded in (effective_A)
  auto layers = sora_layers();
  int64_t kept = 0, total = 0;
  nlohmann::json ranks = nlohmann::json::object();
  const auto k = kept_ranks();
  for (size_t i = 0; i < k.size(); ++i) {
    kept += k[i];
    total += layers[i]->r;
    ranks[layers_[i].first] = k[i];
  }
  j["sora_kept_rank"] = kept;
  j["sora_gates"] = total;
  j["sora_sparsity"] = total > 0 ? 1.0 - static_cast<double>(kept) / static_cast<double>(total) : 0.0;
  j["sora_ranks"] = ranks;
  if (l1_steps_ > 0) j["sora_l1"] = l1_sum_.item<double>() / static_cast<double>(l1_steps_);
  l1_sum_ = at::Tensor();
  l1_steps_ = 0;
  return j;
}

nlohmann::json SoraMethod::extra_config() const {
  nlohmann::json j = {{"method", name()}};
  j["sora"] = sora_.to_json();
  return j;
}

int64_t SoraMethod::inference_params(const SequenceClassifier& model) const {
  int64_t n = trainable_outside_adapters(model);
  const auto kept = kept_ranks();
  for (size_t i = 0; i < layers_.size(); ++i) {
    const auto* h = layers_[i].second->host;
    n += kept[i] * (h->in_features + h->out_features);  // the gate is folded into B at export
  }
  return n;
}

void SoraMethod::save(const SequenceClassifier& model, const LoadedModel& base, const std::string& dir) const {
  const std::string prefix = kAdapterKeyPrefix;
  st::NamedTensors out;
  LoraConfig exp = cfg_;
  exp.rank_pattern.clear();
  exp.alpha_pattern.clear();
  nlohmann::json kept_json = nlohmann::json::object();
  std::vector<std::string> paths;
  auto layers = sora_layers();
  for (size_t i = 0; i < layers.size(); ++i) {
    const std::string& path = layers_[i].first;
    paths.push_back(path);
    const at::Tensor g = layers[i]->lora_gate->weight.detach().view(-1);
    at::Tensor idx = g.ne(0).nonzero().view(-1);
    const int64_t kept = idx.numel();
    kept_json[path] = kept;
    at::Tensor a, b;
    if (kept == 0) {  // PEFT refuses r = 0: one direction with a zero B column (ΔW = 0 exactly)
      a = layers[i]->lora_A->weight.detach().narrow(0, 0, 1);
      b = at::zeros({layers[i]->lora_B->weight.size(0), 1}, layers[i]->lora_B->weight.options());
    } else {
      a = layers[i]->lora_A->weight.detach().index_select(0, idx);
      b = layers[i]->lora_B->weight.detach().index_select(1, idx) * g.index_select(0, idx).view({1, -1});
    }
    const int64_t r_new = a.size(0);
    // Same scaling after the rank change: α'/r' = α/r (rsLoRA: α'/√r' = α/√r).
    const double s = layers[i]->scaling;
    const double alpha_new = cfg_.use_rslora ? s * std::sqrt(static_cast<double>(r_new)) : s * static_cast<double>(r_new);
    exp.rank_pattern.emplace_back(path, r_new);
    exp.alpha_pattern.emplace_back(path, alpha_new);
    out.emplace_back(prefix + path + ".lora_A.weight", a.contiguous());
    out.emplace_back(prefix + path + ".lora_B.weight", b.contiguous());
  }
  for (auto& p : model->named_parameters(true))
    if (p.key().find(".lora_") == std::string::npos && in_modules_to_save(p.key(), cfg_.modules_to_save))
      out.emplace_back(prefix + p.key(), p.value().detach().contiguous());
  nlohmann::json side = sidecar(model);
  side["sora"]["initial_r"] = cfg_.r;
  side["sora"]["kept_ranks"] = kept_json;
  save_adapter_files(
      dir, [&](const std::string& abs_base) { return exp.to_peft_json(abs_base, paths); }, out, base.dir, side);
}

void add_sora_flags(CLI::App& cmd, std::shared_ptr<nlohmann::json> extra) {
  auto number = [&](const std::string& flag, const std::string& key, const std::string& help) {
    cmd.add_option_function<double>(flag, [extra, key](const double& v) { (*extra)[key] = v; }, help);
  };
  number("--sora-lambda", "sora_lambda", "sora: weight of the gates' L1 term sparse_lambda·mean|g| (default 1e-3)");
  number("--sora-lambda2", "sora_lambda2", "sora: threshold ξ applied to the gates after each step (default 1e-3)");
  number("--sora-gate-lr", "sora_gate_lr", "sora: learning rate of the gates (default: --lr)");
  cmd.add_option_function<std::string>(
         "--sora-threshold", [extra](const std::string& v) { (*extra)["sora_threshold"] = v; },
         "sora: official (g>ξ: −ξ; g<−ξ: +ξ; then |g|<ξ: 0) | textbook (sign(g)·max(|g|−ξ, 0))")
      ->check(CLI::IsMember({"official", "textbook"}));
}

double sora_table_lambda(const std::string& task) {
  if (task == "cola" || task == "mrpc" || task == "stsb") return 1e-3;
  if (task == "sst2" || task == "qqp" || task == "mnli" || task == "rte") return 5e-3;
  if (task == "qnli") return 1e-4;
  if (task == "wnli") return 1e-2;
  return 1e-3;
}

// The L1 accumulator of the epoch (the gates are parameters; their optimizer is the trainer's AdamW).
void SoraMethod::save_state(MethodState& s) const {
  s.put_tensor("sora.l1_sum", l1_sum_);
  s.put_i64("sora.l1_steps", l1_steps_);
}

void SoraMethod::load_state(const MethodState& s) {
  l1_sum_ = s.get_tensor("sora.l1_sum");
  l1_steps_ = s.get_i64("sora.l1_steps");
}

}  // namespace lorakit
