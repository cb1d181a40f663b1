#include "tuners/lora/layer.h"

#include <cmath>

#include <torch/nn/init.h>

namespace lorakit {

LoraLayer::LoraLayer(AdaptableLinearImpl& h, const LoraConfig& cfg)
    : host(&h), r(cfg.r), scaling(cfg.scaling()), dropout(cfg.lora_dropout) {
  lora_A = h.register_module("lora_A", torch::nn::Linear(torch::nn::LinearOptions(h.in_features, r).bias(false)));
  lora_B = h.register_module("lora_B", torch::nn::Linear(torch::nn::LinearOptions(r, h.out_features).bias(false)));
  torch::NoGradGuard g;
  if (cfg.init_lora_weights == "gaussian")
    lora_A->weight.normal_(0.0, 1.0 / static_cast<double>(r));
  else
    torch::nn::init::kaiming_uniform_(lora_A->weight, std::sqrt(5.0));
  lora_B->weight.zero_();
  lora_A->weight.set_data(lora_A->weight.to(h.weight.dtype()));
  lora_B->weight.set_data(lora_B->weight.to(h.weight.dtype()));
}

at::Tensor LoraLayer::dropped(const at::Tensor& x) const {
  return dropout > 0 ? at::dropout(x, dropout, host->is_training()) : x;
}

at::Tensor LoraLayer::forward(const at::Tensor& x, const at::Tensor& base_out) {
  at::Tensor xd = dropped(x);
  at::Tensor h = lora_B(lora_A(xd)) * scaling;
  return base_out + transform_branch(h, xd);
}

at::Tensor LoraLayer::delta_weight() const { return at::matmul(lora_B->weight, effective_A()) * scaling; }

}  // namespace lorakit
