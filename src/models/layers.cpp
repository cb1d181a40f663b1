#include "models/layers.h"

#include <ATen/autocast_mode.h>

#include <cmath>
#include <limits>

#include "core/errors.h"

namespace lorakit {

AdaptableLinearImpl::AdaptableLinearImpl(int64_t in, int64_t out, bool with_bias)
    : in_features(in), out_features(out) {
  weight = register_parameter("weight", torch::empty({out, in}));
  if (with_bias) bias = register_parameter("bias", torch::zeros({out}));
  reset_parameters(0.02);
}

void AdaptableLinearImpl::reset_parameters(double std) {
  torch::NoGradGuard g;
  weight.normal_(0.0, std);
  if (bias.defined()) bias.zero_();
}

at::Tensor AdaptableLinearImpl::forward(const at::Tensor& x) {
  // A frozen weight stored in bf16 for a bf16 run (store_frozen_weights_bf16) meets bf16 inputs under
  // autocast; a forward outside autocast gets it in the input's dtype.
  at::Tensor y = weight.scalar_type() == x.scalar_type() || at::autocast::is_cpu_enabled()
                     ? at::linear(x, weight, bias)
                     : at::linear(x, weight.to(x.scalar_type()), bias);
  if (adapter && !adapter->merged) y = adapter->forward(x, y);
  return y;
}

void AdaptableLinearImpl::merge() {
  if (!adapter) throw Error("merge: layer has no adapter");
  if (adapter->merged) return;
  torch::NoGradGuard g;
  weight.add_(adapter->delta_weight().to(weight.dtype()));
  adapter->merged = true;
}

void AdaptableLinearImpl::unmerge() {
  if (!adapter) throw Error("unmerge: layer has no adapter");
  if (!adapter->merged) return;
  torch::NoGradGuard g;
  weight.sub_(adapter->delta_weight().to(weight.dtype()));
  adapter->merged = false;
}

int64_t store_frozen_weights_bf16(torch::nn::Module& root) {
  torch::NoGradGuard g;
  int64_t n = 0;
  for (auto& m : root.modules(/*include_self=*/false))
    if (auto* lin = m->as<AdaptableLinearImpl>())
      if (!lin->weight.requires_grad() && lin->weight.scalar_type() == at::kFloat) {
        lin->weight.set_data(lin->weight.to(at::kBFloat16));
        ++n;
      }
  return n;
}

ClassificationHeadImpl::ClassificationHeadImpl(int64_t in, int64_t hidden, int64_t num_labels, double p) {
  dense = register_module("dense", AdaptableLinear(in, hidden));
  dropout = register_module("dropout", torch::nn::Dropout(p));
  out_proj = register_module("out_proj", AdaptableLinear(hidden, num_labels));
}

at::Tensor ClassificationHeadImpl::forward(const at::Tensor& x) {
  return out_proj(dropout(at::tanh(dense(dropout(x)))));
}

void init_hf_weights(torch::nn::Module& root, double std, bool truncated) {
  torch::NoGradGuard g;
  auto normal = [&](at::Tensor& w) {
    w.normal_(0.0, std);
    // nn.init.trunc_normal_(w, std=std) as transformers calls it keeps the default bounds a = −2, b = 2
    // (absolute, not in std units): for std ≪ 1 that is a plain normal, cut only at ±2.
    if (truncated) w.clamp_(-2.0, 2.0);
  };
  for (auto& m : root.modules(/*include_self=*/false)) {
    if (auto* lin = m->as<AdaptableLinearImpl>()) {
      normal(lin->weight);
      if (lin->bias.defined()) lin->bias.zero_();
    } else if (auto* conv = m->as<torch::nn::Conv2dImpl>()) {
      normal(conv->weight);
      if (conv->bias.defined()) conv->bias.zero_();
    } else if (auto* emb = m->as<torch::nn::EmbeddingImpl>()) {
      emb->weight.normal_(0.0, std);
      if (emb->options.padding_idx()) emb->weight[*emb->options.padding_idx()].zero_();
    } else if (auto* ln = m->as<torch::nn::LayerNormImpl>()) {
      ln->weight.fill_(1.0);
      ln->bias.zero_();
    }
  }
}

at::Tensor apply_activation(const std::string& act, const at::Tensor& h) {
  if (act == "gelu") return at::gelu(h);
  if (act == "gelu_new") return at::gelu(h, "tanh");
  if (act == "relu") return at::relu(h);
  if (act == "silu") return at::silu(h);
  if (act == "tanh") return at::tanh(h);
  throw Error("activation '" + act + "' is not supported");
}

double lowest_value(at::ScalarType dtype) {
  switch (dtype) {
    case at::kDouble: return std::numeric_limits<double>::lowest();
    case at::kBFloat16: return static_cast<float>(std::numeric_limits<c10::BFloat16>::lowest());
    case at::kHalf: return static_cast<float>(std::numeric_limits<c10::Half>::lowest());
    default: return std::numeric_limits<float>::lowest();
  }
}

at::Tensor additive_mask_bias(const at::Tensor& attention_mask, at::ScalarType dtype) {
  return (1.0 - attention_mask.to(dtype)).unsqueeze(1).unsqueeze(2) * lowest_value(dtype);
}

at::Tensor additive_mask_bias(const at::Tensor& attention_mask, const at::Tensor& states) {
  const at::Tensor mask = attention_mask.defined()
                              ? attention_mask
                              : at::ones({states.size(0), states.size(1)}, at::TensorOptions().dtype(at::kLong));
  return additive_mask_bias(mask, states.scalar_type());
}

void check_token_ids(const at::Tensor& input_ids, int64_t vocab_size) {
  if (input_ids.dim() != 2) throw Error("input_ids must be [batch, seq], got " + std::to_string(input_ids.dim()) + " dims");
  if (input_ids.numel() == 0) return;
  const int64_t lo = input_ids.min().item<int64_t>(), hi = input_ids.max().item<int64_t>();
  if (lo < 0 || hi >= vocab_size)
    throw Error("token id " + std::to_string(lo < 0 ? lo : hi) + " is outside the model's vocabulary (vocab_size " +
                std::to_string(vocab_size) + "): tokenizer and model do not match");
}

}  // namespace lorakit
