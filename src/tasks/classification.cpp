#include "tasks/classification.h"

#include <ATen/ATen.h>

#include "core/errors.h"

namespace lorakit {

at::Tensor per_sample_loss(const at::Tensor& logits, const at::Tensor& labels, bool regression) {
  if (regression) {
    at::Tensor d = logits.squeeze(-1) - labels.to(logits.scalar_type());
    return d * d;
  }
  return at::cross_entropy_loss(logits, labels, {}, at::Reduction::None);
}

at::Tensor correct_mask(const at::Tensor& logits, const at::Tensor& labels, bool regression, double tau) {
  if (regression) return (logits.squeeze(-1).detach() - labels.to(logits.scalar_type())).abs().le(tau);
  return logits.detach().argmax(-1).eq(labels);
}

PredictionCollector::PredictionCollector(size_t rows, std::vector<double> labels, bool regression, Metrics metrics)
    : predictions_(rows, 0.0), labels_(std::move(labels)), regression_(regression), metrics_(std::move(metrics)) {}

void PredictionCollector::add(const at::Tensor& outputs, const Batch& b) {
  at::Tensor pred = regression_ ? outputs.squeeze(-1).to(at::kDouble) : outputs.argmax(-1).to(at::kDouble);
  pred = pred.contiguous();
  auto acc = pred.accessor<double, 1>();
  for (size_t i = 0; i < b.indices.size(); ++i) predictions_.at(b.indices[i]) = acc[static_cast<int64_t>(i)];
}

std::map<std::string, double> PredictionCollector::finish() { return metrics_(predictions_, labels_); }

}  // namespace lorakit
