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

void AdaLoraLayer::set_ranknum(double rn) {
  ranknum = rn;
  // PEFT: scaling = lora_alpha if lora_alpha > 0 else r, divided by (ranknum + 1e-5) in forward.
  const double alpha = lora_alpha > 0 ? lora_alpha : static_cast<double>(r);
  scaling = alpha / (ranknum + 1e-5);
}

at::Tensor AdaLoraLayer::scaled_A() const { return lora_A->weight * lora_E->weight; }

at::Tensor AdaLoraLayer::forward(const at::Tensor& x, const at::Tensor& base_out) {
  at::Tensor xd = dropout > 0 ? at::dropout(x, dropout, host->is_training()) : x;
  return base_out + at::linear(at::linear(xd, scaled_A()), lora_B->weight) * scaling;
}

at::Tensor AdaLoraLayer::delta_weight() const { return at::matmul(lora_B->weight, scaled_A()) * scaling; }

}  // namespace lorakit
