#include "tasks/token_batch.h"

#include <ATen/ATen.h>

#include <algorithm>

namespace lorakit {

void pad_token_rows(Batch& b, const std::vector<TokenRow>& rows, int64_t pad_id) {
  size_t T = 1;
  for (auto& r : rows) T = std::max(T, r.first->size());
  const int64_t B = static_cast<int64_t>(rows.size()), TT = static_cast<int64_t>(T);
  b.input_ids = at::full({B, TT}, pad_id, at::kLong);
  b.attention_mask = at::zeros({B, TT}, at::kLong);
  b.token_type_ids = at::zeros({B, TT}, at::kLong);
  auto ids = b.input_ids.accessor<int64_t, 2>();
  auto mask = b.attention_mask.accessor<int64_t, 2>();
  auto tt = b.token_type_ids.accessor<int64_t, 2>();
  for (int64_t r = 0; r < B; ++r) {
    const std::vector<int64_t>& in = *rows[static_cast<size_t>(r)].first;
    const std::vector<int64_t>& types = *rows[static_cast<size_t>(r)].second;
    for (size_t t = 0; t < in.size(); ++t) {
      ids[r][t] = in[t];
      mask[r][t] = 1;
      tt[r][t] = types.empty() ? 0 : types[t];
    }
  }
}

}  // namespace lorakit
