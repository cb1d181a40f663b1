// AdaLoRA's SVD-form layer (PEFT's adalora SVDLinear): h = W0 x + (α / (ranknum + 1e-5)) · B (A ⊙ E) x̃,
// A [r, in] and B [out, r] ~ N(0, 0.02), E [r, 1] (the "singular values") zero at init, ranknum = init_r
// (it stays init_r after pruning, so a pruned module keeps its scaling). Tensors are registered as
// "lora_A.weight", "lora_B.weight", "lora_E.weight" of the adapted linear; PEFT's files name them
// "lora_A", "lora_B", "lora_E".
#pragma once
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "tuners/lora/layer.h"

namespace lorakit {

// A module holding one parameter named "weight" (so E shows up as "<path>.lora_E.weight").
struct ParameterHolderImpl : torch::nn::Module {
  explicit ParameterHolderImpl(at::Tensor init) { weight = register_parameter("weight", std::move(init)); }
  at::Tensor weight;
};
TORCH_MODULE(ParameterHolder);

// PEFT's AdaLoRA scaling of a module of rank r: (lora_alpha if > 0, else r) / (ranknum + 1e-5).
double adalora_scaling(double lora_alpha, int64_t r, double ranknum);

class AdaLoraLayer : public LoraLayer {
 public:
  // cfg.r: this module's rank (init_r while training; the kept count when loading a pruned adapter).
  AdaLoraLayer(AdaptableLinearImpl& host, const LoraConfig& cfg, double ranknum);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& base_out) override;
  // A ⊙ E (rows of A scaled by E): ΔW = scaling · B · (A ⊙ E).
  at::Tensor effective_A() const override;
  void set_ranknum(double ranknum);

  ParameterHolder lora_E{nullptr};
  double ranknum;
  double lora_alpha;
};

}  // namespace lorakit
