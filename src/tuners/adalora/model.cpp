#include "tuners/adalora/model.h"

#include <ATen/ATen.h>

#include <cmath>
#include <limits>
#include <set>

#include "core/errors.h"
#include "core/fileutil.h"
#include "core/safetensors.h"
#include "tuners/lora/diagnostics.h"

namespace lorakit {

AdaLoraMethod::AdaLoraMethod(AdaLoraConfig cfg) : LoraMethod(cfg.lora), ada_(std::move(cfg)) {
  ada_.validate();
  cfg_.r = ada_.init_r;
  factory_ = [init_r = ada_.init_r](AdaptableLinearImpl& h, const LoraConfig& c) -> std::shared_ptr<LoraLayer> {
    if (c.r == 0) return nullptr;  // pruned to nothing in a loaded adapter: the module stays plain
    return std::make_shared<AdaLoraLayer>(h, c, static_cast<double>(init_r));
  };
}

LoraConfig AdaLoraMethod::module_config(const std::string& path) const {
  LoraConfig c = cfg_;
  c.rank_pattern.clear();
  c.alpha_pattern.clear();
  auto it = load_ranks_.find(path);
  c.r = it != load_ranks_.end() ? it->second : ada_.init_r;
  return c;
}

std::vector<AdaLoraLayer*> AdaLoraMethod::ada_layers() const { return layers_as<AdaLoraLayer>(); }

void AdaLoraMethod::attach(SequenceClassifier& model) {
  LoraMethod::attach(model);
  imp_.assign(layers_.size(), {});
  keep_.clear();
  // Modules a loaded adapter prunes to rank 0 get no layer; remember them so save() writes them back.
  empty_modules_.clear();
  for (auto& item : model->named_modules("", false)) {
    auto* lin = item.value()->as<AdaptableLinearImpl>();
    auto it = load_ranks_.find(item.key());
    if (lin && it != load_ranks_.end() && it->second == 0)
      empty_modules_.push_back({item.key(), lin->in_features, lin->out_features});
  }
}

int64_t AdaLoraMethod::init_budget() const {
  int64_t n = 0;
  for (auto& [_, l] : layers_) n += l->r;
  return n;
}

at::Tensor AdaLoraMethod::extra_loss(StepInfo& step) {
  if (step.step == 0) {
    ada_.validate_schedule(step.total_steps);
    ada_.total_step = step.total_steps;
  }
  if (ada_.orth_reg_weight <= 0) return {};
  at::Tensor sum;
  int64_t n = 0;
  for (auto* l : ada_layers()) {
    if (l->r == 0) continue;
    const at::Tensor& a = l->lora_A->weight;
    const at::Tensor& b = l->lora_B->weight;
    const at::Tensor eye = at::eye(l->r, a.options());
    at::Tensor t = at::frobenius_norm(at::matmul(a, a.t()) - eye) + at::frobenius_norm(at::matmul(b.t(), b) - eye);
    sum = sum.defined() ? sum + t : t;
    n += 2;
  }
  if (!sum.defined()) return {};
  at::Tensor loss = sum * (ada_.orth_reg_weight / static_cast<double>(n));
  orth_sum_ = orth_sum_.defined() ? orth_sum_ + loss.detach() : loss.detach();
  ++orth_steps_;
  return loss * step.param_share;
}

void AdaLoraMethod::update_importance() {
  torch::NoGradGuard g;
  auto layers = ada_layers();
  for (size_t i = 0; i < layers.size(); ++i) {
    const std::array<at::Tensor, 3> ps = {layers[i]->lora_A->weight, layers[i]->lora_B->weight,
                                          layers[i]->lora_E->weight};
    for (int w = 0; w < 3; ++w) {
      const at::Tensor& p = ps[w];
      Importance& m = imp_[i][w];
      if (!m.avg_ipt.defined()) {
        m.avg_ipt = at::zeros_like(p);
        m.avg_unc = at::zeros_like(p);
      }
      if (!p.grad().defined()) continue;
      m.ipt = (p * p.grad()).abs();
      m.avg_ipt.mul_(ada_.beta1).add_(m.ipt, 1.0 - ada_.beta1);
      m.avg_unc.mul_(ada_.beta2).add_((m.ipt - m.avg_ipt).abs(), 1.0 - ada_.beta2);
    }
  }
}

at::Tensor AdaLoraMethod::triplet_scores(size_t layer) const {
  const auto& m = imp_.at(layer);
  const int64_t r = layers_.at(layer).second->r;
  if (!m[0].avg_ipt.defined()) return at::zeros({r}, at::kFloat);
  const at::Tensor sa = m[0].avg_ipt * m[0].avg_unc;  // [r, in]
  const at::Tensor sb = m[1].avg_ipt * m[1].avg_unc;  // [out, r]
  const at::Tensor se = m[2].avg_ipt * m[2].avg_unc;  // [r, 1]
  return se.view(-1) + sa.mean(1) + sb.mean(0);
}

double AdaLoraMethod::mask_to_budget(int64_t budget) {
  torch::NoGradGuard g;
  const int64_t k = init_budget() - budget;  // triplets to mask
  auto layers = ada_layers();
  std::vector<at::Tensor> scores;
  for (size_t i = 0; i < layers.size(); ++i) scores.push_back(triplet_scores(i));
  keep_.assign(layers.size(), {});
  last_budget_ = budget;
  ++mask_events_;
  if (k <= 0) {  // nothing to mask (the official code's kthvalue would fail on k = 0)
    for (size_t i = 0; i < layers.size(); ++i) keep_[i] = at::ones({layers[i]->r}, at::kBool);
    last_threshold_ = std::numeric_limits<double>::quiet_NaN();
    return last_threshold_;
  }
  const at::Tensor all = at::cat(scores);
  const double threshold = std::get<0>(at::kthvalue(all, std::min<int64_t>(k, all.numel()))).item<double>();
  for (size_t i = 0; i < layers.size(); ++i) {
    const at::Tensor drop = scores[i].le(threshold);
    layers[i]->lora_E->weight.masked_fill_(drop.view({-1, 1}), 0.0);
    keep_[i] = drop.logical_not();
  }
  last_threshold_ = threshold;
  return threshold;
}

void AdaLoraMethod::after_optimizer_step(StepInfo& step, torch::optim::Optimizer& opt) {
  const int64_t total = step.total_steps;
  if (step.step < total - ada_.tfinal) update_importance();
  const AdaLoraBudget b =
      adalora_budget(step.step, init_budget(), target_budget(), ada_.tinit, ada_.tfinal, total, ada_.delta_t);
  if (b.mask) mask_to_budget(b.budget);
}

std::vector<int64_t> AdaLoraMethod::kept_ranks() const {
  std::vector<int64_t> out;
  for (size_t i = 0; i < layers_.size(); ++i)
    out.push_back(keep_.empty() ? layers_[i].second->r : keep_[i].sum().item<int64_t>());
  return out;
}

nlohmann::json AdaLoraMethod::epoch_stats() {
  nlohmann::json j = LoraMethod::epoch_stats();  // ΔW diagnostics with E folded in (effective_A)
  const auto kept = kept_ranks();
  int64_t total_kept = 0;
  nlohmann::json ranks = nlohmann::json::object();
  for (size_t i = 0; i < kept.size(); ++i) {
    total_kept += kept[i];
    ranks[layers_[i].first] = kept[i];
  }
  j["adalora_budget"] = last_budget_ >= 0 ? last_budget_ : init_budget();
  j["adalora_kept_triplets"] = total_kept;
  j["adalora_init_budget"] = init_budget();
  j["adalora_target_budget"] = target_budget();
  j["adalora_ranks"] = ranks;
  j["adalora_mask_events"] = mask_events_;
  if (!std::isnan(last_threshold_) && mask_events_ > 0) j["adalora_threshold"] = last_threshold_;
  if (orth_steps_ > 0) j["adalora_orth_loss"] = orth_sum_.item<double>() / static_cast<double>(orth_steps_);
  orth_sum_ = at::Tensor();
  orth_steps_ = 0;
  mask_events_ = 0;
  return j;
}

nlohmann::json AdaLoraMethod::extra_config() const {
  nlohmann::json j = {{"method", name()}};
  j["adalora"] = ada_.to_json();
  return j;
}

nlohmann::json AdaLoraMethod::describe() const {
  nlohmann::json j = LoraMethod::describe();
  j["init_r"] = ada_.init_r;
  j["target_r"] = ada_.target_r;
  return j;
}

int64_t AdaLoraMethod::inference_params(const SequenceClassifier& model) const {
  int64_t n = trainable_outside_adapters(model);
  const auto kept = kept_ranks();
  for (size_t i = 0; i < layers_.size(); ++i) {
    const auto* h = layers_[i].second->host;
    n += kept[i] * (h->in_features + h->out_features + 1);
  }
  return n;
}

void AdaLoraMethod::save(const SequenceClassifier& model, const LoadedModel& base, const std::string& dir) const {
  const std::string prefix = kAdapterKeyPrefix;
  st::NamedTensors out;
  nlohmann::ordered_json rank_pattern = nlohmann::ordered_json::object();
  auto layers = ada_layers();
  for (size_t i = 0; i < layers.size(); ++i) {
    const std::string& path = layers_[i].first;
    at::Tensor a = layers[i]->lora_A->weight.detach(), b = layers[i]->lora_B->weight.detach(),
               e = layers[i]->lora_E->weight.detach();
    if (!keep_.empty()) {
      const at::Tensor idx = keep_[i].nonzero().view(-1);
      a = a.index_select(0, idx);
      e = e.index_select(0, idx);
      b = b.index_select(1, idx);
      std::vector<bool> bits;
      for (int64_t k = 0; k < keep_[i].numel(); ++k) bits.push_back(keep_[i][k].item<bool>());
      rank_pattern[path + ".lora_E"] = bits;
    } else if (layers[i]->r != ada_.init_r) {
      // A pruned adapter loaded and saved again: PEFT needs one flag per initial rank; which positions were
      // kept does not matter to it (the weights come from the file).
      std::vector<bool> bits(static_cast<size_t>(ada_.init_r), false);
      for (int64_t k = 0; k < layers[i]->r; ++k) bits[static_cast<size_t>(k)] = true;
      rank_pattern[path + ".lora_E"] = bits;
    }
    out.emplace_back(prefix + path + ".lora_A", a.contiguous());
    out.emplace_back(prefix + path + ".lora_B", b.contiguous());
    out.emplace_back(prefix + path + ".lora_E", e.contiguous());
  }
  for (auto& m : empty_modules_) {  // pruned to nothing: zero-size tensors and an all-false pattern, as PEFT
    out.emplace_back(prefix + m.path + ".lora_A", at::zeros({0, m.in}));
    out.emplace_back(prefix + m.path + ".lora_B", at::zeros({m.out, 0}));
    out.emplace_back(prefix + m.path + ".lora_E", at::zeros({0, 1}));
    rank_pattern[m.path + ".lora_E"] = std::vector<bool>(static_cast<size_t>(ada_.init_r), false);
  }
  for (auto& p : model->named_parameters(true))
    if (p.key().find(".lora_") == std::string::npos && in_modules_to_save(p.key(), cfg_.modules_to_save))
      out.emplace_back(prefix + p.key(), p.value().detach().contiguous());
  const bool pruned = !rank_pattern.empty();
  auto make_config = [&](const std::string& abs_base) {
    // PEFT 0.6's AdaLoraConfig = LoraConfig's fields + its own; sorted as PEFT writes them.
    nlohmann::json j;
    const nlohmann::ordered_json lora_json = cfg_.to_peft_json(abs_base);
    for (auto& [k, v] : lora_json.items()) j[k] = v;
    j["peft_type"] = "ADALORA";
    j["r"] = 8;  // LoraConfig's default: AdaLoRA ignores r (PEFT warns when it is set)
    j["rank_pattern"] = pruned ? nlohmann::json(rank_pattern) : nlohmann::json(nullptr);
    j["alpha_pattern"] = nlohmann::json::object();
    j["target_r"] = ada_.target_r;
    j["init_r"] = ada_.init_r;
    j["tinit"] = ada_.tinit;
    j["tfinal"] = ada_.tfinal;
    j["deltaT"] = ada_.delta_t;
    j["beta1"] = ada_.beta1;
    j["beta2"] = ada_.beta2;
    j["orth_reg_weight"] = ada_.orth_reg_weight;
    j["total_step"] = ada_.total_step > 0 ? nlohmann::json(ada_.total_step) : nlohmann::json(nullptr);
    nlohmann::ordered_json o;
    for (auto& [k, v] : j.items()) o[k] = v;
    return o;
  };
  save_adapter_files(dir, make_config, out, base.dir, sidecar(model));
}

AdaLoraConfig read_adalora_config(const std::string& dir, std::map<std::string, int64_t>* kept) {
  const std::string src = join_path(dir, "adapter_config.json");
  const nlohmann::ordered_json j = read_adapter_config_json(dir);
  AdaLoraConfig c;
  std::map<std::string, int64_t> ranks;
  auto hook = [&](const std::string& key, const nlohmann::ordered_json& v) -> bool {
    auto integer = [&](int64_t& out) {
      if (!v.is_number_integer()) throw Error(src + ": '" + key + "' must be an integer, got " + v.dump());
      out = v.get<int64_t>();
    };
    auto number = [&](double& out) {
      if (!v.is_number()) throw Error(src + ": '" + key + "' must be a number, got " + v.dump());
      out = v.get<double>();
    };
    if (key == "init_r") integer(c.init_r);
    else if (key == "target_r") integer(c.target_r);
    else if (key == "tinit") integer(c.tinit);
    else if (key == "tfinal") integer(c.tfinal);
    else if (key == "deltaT") integer(c.delta_t);
    else if (key == "beta1") number(c.beta1);
    else if (key == "beta2") number(c.beta2);
    else if (key == "orth_reg_weight") number(c.orth_reg_weight);
    else if (key == "total_step") {
      if (!v.is_null()) integer(c.total_step);
    } else if (key == "rank_pattern") {
      // PEFT's AdaLoRA rank_pattern: {"<module>.lora_E": [true, false, ...]} (one flag per initial rank).
      if (v.is_null()) return true;
      if (!v.is_object()) throw Error(src + ": AdaLoRA 'rank_pattern' must be an object of boolean lists");
      for (auto e = v.begin(); e != v.end(); ++e) {
        if (!e.value().is_array()) throw Error(src + ": rank_pattern['" + e.key() + "'] must be a list of booleans");
        int64_t n = 0;
        for (auto& b : e.value()) {
          if (!b.is_boolean()) throw Error(src + ": rank_pattern['" + e.key() + "'] must be a list of booleans");
          n += b.get<bool>();
        }
        std::string path = e.key();
        const std::string suffix = ".lora_E";
        if (path.size() > suffix.size() && path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0)
          path.resize(path.size() - suffix.size());
        if (path.rfind(kAdapterKeyPrefix, 0) == 0) path = path.substr(std::string(kAdapterKeyPrefix).size());
        ranks[path] = n;
      }
    } else {
      return false;
    }
    return true;
  };
  c.lora = LoraConfig::from_peft_json(j, src, "ADALORA", hook);
  c.lora.r = c.init_r;
  try {
    c.validate();
  } catch (const Error& e) {
    throw Error(src + ": " + e.what());
  }
  if (kept) *kept = std::move(ranks);
  return c;
}

std::unique_ptr<LoraMethod> load_adalora_adapter(SequenceClassifier& model, const std::string& dir) {
  std::map<std::string, int64_t> kept;
  AdaLoraConfig cfg = read_adalora_config(dir, &kept);
  auto method = std::make_unique<AdaLoraMethod>(cfg);
  method->set_module_ranks(kept);
  method->attach(model);
  const std::string wpath = join_path(dir, "adapter_model.safetensors");
  // ranknum, where a file carries it (PEFT itself does not save it: it stays init_r).
  std::map<std::string, AdaLoraLayer*> by_path;
  auto layers = method->ada_layers();
  for (size_t i = 0; i < layers.size(); ++i) by_path[method->layers()[i].first] = layers[i];
  {
    st::SafetensorsFile f(wpath);
    for (auto& key : f.keys()) {
      const std::string suffix = ".ranknum";
      if (key.size() <= suffix.size() || key.compare(key.size() - suffix.size(), suffix.size(), suffix) != 0) continue;
      std::string path = key.substr(0, key.size() - suffix.size());
      if (path.rfind(kAdapterKeyPrefix, 0) == 0) path = path.substr(std::string(kAdapterKeyPrefix).size());
      auto it = by_path.find(path);
      if (it == by_path.end()) throw Error(wpath + ": tensor '" + key + "' matches no adapted module");
      it->second->set_ranknum(f.load(key).to(at::kDouble).reshape({-1})[0].item<double>());
    }
  }
  std::set<std::string> empty;  // modules rank_pattern prunes to 0: their (zero-size) tensors are skipped
  for (auto& [path, n] : kept)
    if (n == 0) empty.insert(path);
  load_adapter_weights(model, *method, wpath, 3, [&empty](const std::string& name) -> std::string {
    for (const char* t : {".lora_A", ".lora_B", ".lora_E"}) {
      const std::string s = t;
      if (name.size() > s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0)
        return empty.count(name.substr(0, name.size() - s.size())) ? "" : name + ".weight";
    }
    const std::string rn = ".ranknum";
    if (name.size() > rn.size() && name.compare(name.size() - rn.size(), rn.size(), rn) == 0) return "";
    return name;
  });
  return method;
}

// The RankAllocator's EMAs, the masks of the last masking, the budget record and the epoch accumulators.
void AdaLoraMethod::save_state(MethodState& s) const {
  static const char* kWhich[3] = {"A", "B", "E"};
  for (size_t i = 0; i < imp_.size(); ++i)
    for (int w = 0; w < 3; ++w) {
      const std::string k = "adalora.imp." + std::to_string(i) + "." + kWhich[w] + ".";
      s.put_tensor(k + "ipt", imp_[i][w].ipt);
      s.put_tensor(k + "avg_ipt", imp_[i][w].avg_ipt);
      s.put_tensor(k + "avg_unc", imp_[i][w].avg_unc);
    }
  s.put_i64("adalora.masked_layers", static_cast<int64_t>(keep_.size()));
  for (size_t i = 0; i < keep_.size(); ++i) s.put_tensor("adalora.keep." + std::to_string(i), keep_[i]);
  s.put_i64("adalora.last_budget", last_budget_);
  s.put_f64("adalora.last_threshold", last_threshold_);
  s.put_i64("adalora.mask_events", mask_events_);
  s.put_tensor("adalora.orth_sum", orth_sum_);
  s.put_i64("adalora.orth_steps", orth_steps_);
  s.put_i64("adalora.total_step", ada_.total_step);  // set at step 0; written into the adapter's config
}

void AdaLoraMethod::load_state(const MethodState& s) {
  static const char* kWhich[3] = {"A", "B", "E"};
  for (size_t i = 0; i < imp_.size(); ++i)
    for (int w = 0; w < 3; ++w) {
      const std::string k = "adalora.imp." + std::to_string(i) + "." + kWhich[w] + ".";
      imp_[i][w].ipt = s.get_tensor(k + "ipt");
      imp_[i][w].avg_ipt = s.get_tensor(k + "avg_ipt");
      imp_[i][w].avg_unc = s.get_tensor(k + "avg_unc");
    }
  const int64_t n = s.get_i64("adalora.masked_layers");
  if (n != 0 && n != static_cast<int64_t>(layers_.size()))
    throw Error("training checkpoint: AdaLoRA masks for " + std::to_string(n) + " modules, the model has " +
                std::to_string(layers_.size()));
  keep_.assign(static_cast<size_t>(n), {});
  for (int64_t i = 0; i < n; ++i) {
    keep_[i] = s.get_tensor("adalora.keep." + std::to_string(i));
    if (!keep_[i].defined()) throw Error("training checkpoint: AdaLoRA mask " + std::to_string(i) + " is missing");
  }
  last_budget_ = s.get_i64("adalora.last_budget");
  last_threshold_ = s.get_f64("adalora.last_threshold");
  mask_events_ = s.get_i64("adalora.mask_events");
  orth_sum_ = s.get_tensor("adalora.orth_sum");
  orth_steps_ = s.get_i64("adalora.orth_steps");
  ada_.total_step = s.get_i64("adalora.total_step");
}

}  // namespace lorakit
