#include "tuners/method.h"

#include "core/errors.h"
#include "core/json_bits.h"

namespace lorakit {

at::Tensor StepInfo::correct(double tau) const {
  if (!task) throw Error("StepInfo::correct: no task set for this step");
  return task->correct(logits, labels, tau);
}

void MethodState::put_f64(const std::string& key, double v) { json[key] = f64_bits(v); }

double MethodState::get_f64(const std::string& key) const {
  return f64_from_bits(json.contains(key) ? json[key] : nlohmann::json(), "method state " + key);
}

int64_t MethodState::get_i64(const std::string& key) const {
  if (!json.contains(key) || !json[key].is_number_integer())
    throw Error("training checkpoint: method state '" + key + "' is missing or not an integer");
  return json[key].get<int64_t>();
}

void MethodState::put_tensor(const std::string& key, const at::Tensor& t) {
  if (t.defined()) tensors[key] = t.detach().clone();
}

at::Tensor MethodState::get_tensor(const std::string& key) const {
  auto it = tensors.find(key);
  return it == tensors.end() ? at::Tensor() : it->second.clone();
}

bool is_no_decay_param(const std::string& name) {
  auto ends_with = [&](const std::string& s) {
    return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
  };
  return ends_with(".bias") || name.find("LayerNorm") != std::string::npos || name.find("layer_norm") != std::string::npos ||
         name.find("layernorm") != std::string::npos;  // ViT's layernorm_before / _after / vit.layernorm
}

std::vector<ParamGroup> Method::param_groups(SequenceClassifier& model, double weight_decay) {
  ParamGroup decay{{}, weight_decay, 1.0, "decay"}, no_decay{{}, 0.0, 1.0, "no_decay"};
  for (auto& p : model->named_parameters(true)) {
    if (!p.value().requires_grad()) continue;
    (is_no_decay_param(p.key()) ? no_decay : decay).params.push_back(p.value());
  }
  std::vector<ParamGroup> out;
  if (!decay.params.empty()) out.push_back(decay);
  if (!no_decay.params.empty()) out.push_back(no_decay);
  return out;
}

int64_t Method::inference_params(const SequenceClassifier& model) const { return count_trainable(*model); }

int64_t count_trainable(const torch::nn::Module& m) {
  int64_t n = 0;
  for (auto& p : m.parameters(true))
    if (p.requires_grad()) n += p.numel();
  return n;
}

int64_t count_all(const torch::nn::Module& m) {
  int64_t n = 0;
  for (auto& p : m.parameters(true)) n += p.numel();
  return n;
}

}  // namespace lorakit
