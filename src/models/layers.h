// The linear layer every model uses for its projections. It behaves like torch::nn::Linear
// (parameters "weight" [out, in] and "bias" [out], so checkpoint names match Hugging Face's), and
// has one adapter slot: a tuner (LoRA, GR-LoRA, ...) attaches its layer there, registers its own
// parameters as sub-modules of this one (e.g. "<path>.lora_A.weight"), and gets to transform the
// output. Nothing in the model knows which tuner is attached.
#pragma once
#include <torch/nn/module.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/pimpl.h>

#include <memory>
#include <string>

namespace lorakit {

class AdaptableLinearImpl;

class LinearAdapter {
 public:
  virtual ~LinearAdapter() = default;
  // x: the layer input; base_out = x Wᵀ + b. Returns the layer's output.
  virtual at::Tensor forward(const at::Tensor& x, const at::Tensor& base_out) = 0;
  // ΔW in the base weight's shape [out, in], as merge adds it.
  virtual at::Tensor delta_weight() const = 0;
  // While merged, forward() is not called: ΔW already sits in the base weight.
  bool merged = false;
};

class AdaptableLinearImpl : public torch::nn::Module {
 public:
  AdaptableLinearImpl(int64_t in_features, int64_t out_features, bool with_bias = true);
  at::Tensor forward(const at::Tensor& x);

  void reset_parameters(double std);  // N(0, std) weight, zero bias (Hugging Face's init)
  // Adds / subtracts ΔW of the attached adapter into the base weight.
  void merge();
  void unmerge();

  int64_t in_features, out_features;
  at::Tensor weight, bias;
  std::shared_ptr<LinearAdapter> adapter;
};
TORCH_MODULE(AdaptableLinear);

// For a bf16 run (TrainConfig::bf16): every frozen AdaptableLinear weight (not requiring grad) is stored
// in bf16, rounded once as autocast would round it at every forward; the run then neither casts it per
// forward nor keeps a bf16 copy per step for the backward. Trainable weights, biases, norms and
// embeddings stay fp32. Returns the number of weights converted. The base's fp32 values are not kept:
// what is saved (adapters, trained modules) never holds a converted weight.
int64_t store_frozen_weights_bf16(torch::nn::Module& root);

// The two-layer classification head of RoBERTa and of USE-lite's task models:
// out_proj(dropout(tanh(dense(dropout(x))))), with Hugging Face's names "dense" and "out_proj".
struct ClassificationHeadImpl : torch::nn::Module {
  ClassificationHeadImpl(int64_t in_features, int64_t hidden, int64_t num_labels, double dropout);
  at::Tensor forward(const at::Tensor& x);
  AdaptableLinear dense{nullptr}, out_proj{nullptr};
  torch::nn::Dropout dropout{nullptr};
};
TORCH_MODULE(ClassificationHead);

// Hugging Face's _init_weights over every sub-module: linear (and conv) weights N(0, std) — cut at
// ±2 when `truncated` (ViT's trunc_normal_ with its default absolute bounds) — zero biases, embeddings N(0, std) with the padding row
// zero, LayerNorm (1, 0). Uses the global generator: seed it first.
void init_hf_weights(torch::nn::Module& root, double std, bool truncated = false);

// transformers' ACT2FN for the activations lorakit supports: gelu (erf), gelu_new (tanh), relu, silu, tanh.
at::Tensor apply_activation(const std::string& act, const at::Tensor& x);

// torch.finfo(dtype).min for a floating dtype (double, float, bfloat16, half): what Hugging Face fills masked
// attention scores with (a bf16 score under autocast cannot hold float's lowest).
double lowest_value(at::ScalarType dtype);

// Additive attention bias [B, 1, 1, T] from a [B, T] 0/1 mask, as Hugging Face builds it: 0 where
// attended, the dtype's lowest value where masked.
at::Tensor additive_mask_bias(const at::Tensor& attention_mask, at::ScalarType dtype);
// The same for `states` [B, T, ...] in their dtype; an undefined mask attends to every position.
at::Tensor additive_mask_bias(const at::Tensor& attention_mask, const at::Tensor& states);

// A length check that names the model's limit (shared by the text encoders).
void check_token_ids(const at::Tensor& input_ids, int64_t vocab_size);

}  // namespace lorakit
