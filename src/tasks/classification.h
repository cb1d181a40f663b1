// What GLUE and image classification share: the per-sample loss and "correct" mask of a [B, C] logits
// head (C = 1 is regression), and an evaluation collector of argmax predictions (or scores).
#pragma once
#include <ATen/core/Tensor.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "tasks/task.h"

namespace lorakit {

// Per-sample task loss: cross-entropy, or squared error for regression (num_labels = 1).
at::Tensor per_sample_loss(const at::Tensor& logits, const at::Tensor& labels, bool regression);
// Per-sample correctness: argmax = label, or |ŷ − y| ≤ tau for regression.
at::Tensor correct_mask(const at::Tensor& logits, const at::Tensor& labels, bool regression, double tau = 0.5);

// Collects one prediction per row (argmax, or the score for regression) in dataset order, then hands
// predictions and the dataset's labels to `metrics`.
class PredictionCollector : public MetricCollector {
 public:
  using Metrics = std::function<std::map<std::string, double>(const std::vector<double>& predictions,
                                                              const std::vector<double>& labels)>;
  PredictionCollector(size_t rows, std::vector<double> labels, bool regression, Metrics metrics);
  void add(const at::Tensor& outputs, const Batch& b) override;
  std::map<std::string, double> finish() override;

 private:
  std::vector<double> predictions_, labels_;
  bool regression_;
  Metrics metrics_;
};

}  // namespace lorakit
