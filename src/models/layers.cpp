#include "models/layers.h"

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
  at::Tensor y = at::linear(x, weight, bias);
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

ClassificationHeadImpl::ClassificationHeadImpl(int64_t in, int64_t hidden, int64_t num_labels, double p) {
  dense = register_module("dense", AdaptableLinear(in, hidden));
  dropout = register_module("dropout", torch::nn::Dropout(p));
  out_proj = register_module("out_proj", AdaptableLinear(hidden, num_labels));
}

at::Tensor ClassificationHeadImpl::forward(const at::Tensor& x) {
  return out_proj(dropout(at::tanh(dense(dropout(x)))));
}

}  // namespace lorakit
