// Tokenized GLUE examples and padded batches.
#pragma once
#include <ATen/core/Tensor.h>

#include <vector>

#include "text/glue.h"
#include "text/tokenizer.h"

namespace lorakit {

struct Batch {
  at::Tensor input_ids, attention_mask, token_type_ids;  // [B, T] int64, T = longest in the batch
  at::Tensor pixel_values;                               // image models: [B, C, H, W] float (ids unused)
  at::Tensor labels;                                     // [B] int64 (classification) or float32 (regression)
  std::vector<size_t> indices;                           // positions in the dataset
};

class EncodedDataset {
 public:
  // An example without a label is an error unless `allow_unlabeled` (prediction), where it gets label 0.
  EncodedDataset(const std::vector<data::Example>& examples, const text::Tokenizer& tok, size_t max_seq_len,
                 bool regression, bool allow_unlabeled = false);
  size_t size() const { return enc_.size(); }
  const std::vector<size_t>& lengths() const { return lengths_; }
  const std::vector<double>& labels() const { return labels_; }
  // Pads to the longest sequence among `idx` (dynamic padding).
  Batch collate(const std::vector<size_t>& idx) const;

 private:
  std::vector<text::Encoding> enc_;
  std::vector<size_t> lengths_;
  std::vector<double> labels_;
  int64_t pad_id_;
  bool regression_;
};

// Per-sample task loss: cross-entropy, or squared error for regression (num_labels = 1).
at::Tensor per_sample_loss(const at::Tensor& logits, const at::Tensor& labels, bool regression);
// Per-sample correctness: argmax = label, or |ŷ − y| ≤ tau for regression.
at::Tensor correct_mask(const at::Tensor& logits, const at::Tensor& labels, bool regression, double tau = 0.5);

}  // namespace lorakit
