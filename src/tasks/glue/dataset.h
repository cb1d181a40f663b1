// Tokenized GLUE examples and their padded batches.
#pragma once
#include <vector>

#include "tasks/task.h"
#include "text/glue.h"
#include "text/tokenizer.h"

namespace lorakit {

class EncodedDataset : public TaskDataset {
 public:
  // An example without a label is an error unless `allow_unlabeled` (prediction), where it gets label 0.
  EncodedDataset(const std::vector<data::Example>& examples, const text::Tokenizer& tok, size_t max_seq_len,
                 bool regression, bool allow_unlabeled = false);
  size_t size() const override { return enc_.size(); }
  const std::vector<size_t>& lengths() const override { return lengths_; }
  const std::vector<double>& labels() const { return labels_; }
  Batch collate(const std::vector<size_t>& idx) const override;

 private:
  std::vector<text::Encoding> enc_;
  std::vector<size_t> lengths_;
  std::vector<double> labels_;
  int64_t pad_id_;
  bool regression_;
};

}  // namespace lorakit
