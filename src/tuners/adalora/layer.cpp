#include "tuners/adalora/layer.h"

#include <ATen/ATen.h>

namespace lorakit {

AdaLoraLayer::AdaLoraLayer(AdaptableLinearImpl& h, const LoraConfig& cfg, double rn)
    : LoraLayer(h, cfg), ranknum(rn), lora_alpha(cfg.lora_alpha) {
  lora_E = h.register_module("lora_E", ParameterHolder(at::zeros({r, 1}, h.weight.options())));
  torch::NoGradGuard g;
  lora_A->weight.normal_(0.0, 0.02);
  lora_B->weight.normal_(0.0, 0.02);
  set_ranknum(rn);
}

double adalora_scaling(double lora_alpha, int64_t r, double ranknum) {
  return (lora_alpha > 0 ? lora_alpha : static_cast<double>(r)) / (ranknum + 1e-5);
}

void AdaLoraLayer::set_ranknum(double rn) {
  ranknum = rn;
  scaling = adalora_scaling(lora_alpha, r, ranknum);
}

at::Tensor AdaLoraLayer::effective_A() const { return lora_A->weight * lora_E->weight; }

at::Tensor AdaLoraLayer::forward(const at::Tensor& x, const at::Tensor& base_out) {
  return base_out + at::linear(at::linear(dropped(x), effective_A()), lora_B->weight) * scaling;
}

}  // namespace lorakit
