#include "tasks/glue/dataset.h"

#include <ATen/ATen.h>

#include <cmath>

#include "core/errors.h"

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
  size_t T = 1;
  for (size_t i : idx) T = std::max(T, lengths_.at(i));
  const int64_t B = static_cast<int64_t>(idx.size());
  Batch b;
  b.input_ids = at::full({B, static_cast<int64_t>(T)}, pad_id_, at::kLong);
  b.attention_mask = at::zeros({B, static_cast<int64_t>(T)}, at::kLong);
  b.token_type_ids = at::zeros({B, static_cast<int64_t>(T)}, at::kLong);
  auto ids = b.input_ids.accessor<int64_t, 2>();
  auto mask = b.attention_mask.accessor<int64_t, 2>();
  auto tt = b.token_type_ids.accessor<int64_t, 2>();
  b.labels = regression_ ? at::empty({B}, at::kFloat) : at::empty({B}, at::kLong);
  for (int64_t r = 0; r < B; ++r) {
    const text::Encoding& e = enc_[idx[r]];
    for (size_t t = 0; t < e.input_ids.size(); ++t) {
      ids[r][t] = e.input_ids[t];
      mask[r][t] = 1;
      tt[r][t] = e.token_type_ids.empty() ? 0 : e.token_type_ids[t];
    }
    if (regression_)
      b.labels[r] = static_cast<float>(labels_[idx[r]]);
    else
      b.labels[r] = static_cast<int64_t>(labels_[idx[r]]);
  }
  b.indices = idx;
  return b;
}

}  // namespace lorakit
