// The LoRA layer PEFT puts on a linear module: h = W0 x + s · B A dropout(x).
#pragma once
#include <torch/nn/modules/linear.h>

#include "models/layers.h"
#include "tuners/lora/config.h"

namespace lorakit {

class LoraLayer : public LinearAdapter {
 public:
  // Registers "lora_A" [r, in] and "lora_B" [out, r] (no bias) as sub-modules of `host`.
  LoraLayer(AdaptableLinearImpl& host, const LoraConfig& cfg);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& base_out) override;
  at::Tensor delta_weight() const override;  // s · B · effective_A()
  // The factor A' with ΔW = s · B · A': A itself for LoRA; AdaLoRA folds in E, SoRA its gate. (What merge
  // and the ΔW diagnostics use.)
  virtual at::Tensor effective_A() const { return lora_A->weight; }
  // x with the branch's dropout applied (while training).
  at::Tensor dropped(const at::Tensor& x) const;

  // Subclasses (GR-LoRA, ...) may transform the branch output h = s·B A x̃ before it joins the base
  // output; x̃ is the dropped-out input the branch saw.
  virtual at::Tensor transform_branch(const at::Tensor& h, const at::Tensor& x_dropped) { return h; }

  AdaptableLinearImpl* host;
  torch::nn::Linear lora_A{nullptr}, lora_B{nullptr};
  int64_t r;
  double scaling;
  double dropout;
};

}  // namespace lorakit
