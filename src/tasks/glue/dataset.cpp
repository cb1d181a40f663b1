#include "tasks/glue/dataset.h"

#include <ATen/ATen.h>

#include <cmath>

#include "core/errors.h"
#include "tasks/token_batch.h"

namespace lorakit {

EncodedDataset::EncodedDataset(const std::vector<data::Example>& examples, const text::Tokenizer& tok,
                               size_t max_seq_len, bool regression, bool allow_unlabeled)
    : pad_id_(tok.pad_id()), regression_(regression) {
  enc_.reserve(examples.size());
  for (auto& ex : examples) {
    const bool unlabeled = std::isnan(ex.label);
    if (unlabeled && !allow_unlabeled) throw Error("example on line " + std::to_string(ex.line) + " has no label");
    enc_.push_back(tok.encode(ex.text_a, ex.has_b ? &ex.text_b : nullptr, max_seq_len));
    lengths_.push_back(enc_.back().input_ids.size());
    labels_.push_back(unlabeled ? 0.0 : ex.label);
  }
}

Batch EncodedDataset::collate(const std::vector<size_t>& idx) const {
  const int64_t B = static_cast<int64_t>(idx.size());
  Batch b;
  std::vector<TokenRow> rows;
  rows.reserve(idx.size());
  for (size_t i : idx) rows.emplace_back(&enc_.at(i).input_ids, &enc_.at(i).token_type_ids);
  pad_token_rows(b, rows, pad_id_);
  b.labels = regression_ ? at::empty({B}, at::kFloat) : at::empty({B}, at::kLong);
  for (int64_t r = 0; r < B; ++r) {
    if (regression_)
      b.labels[r] = static_cast<float>(labels_[idx[r]]);
    else
      b.labels[r] = static_cast<int64_t>(labels_[idx[r]]);
  }
  b.indices = idx;
  return b;
}

}  // namespace lorakit
