// The padded [B, T] token tensors of a text batch, shared by the text tasks (GLUE rows, SQuAD windows).
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

#include "tasks/task.h"

namespace lorakit {

// One row: its token ids and token types (types may be empty: all 0).
using TokenRow = std::pair<const std::vector<int64_t>*, const std::vector<int64_t>*>;

// Fills b.input_ids (pad_id past each row's end), b.attention_mask (1 on real tokens) and
// b.token_type_ids, each [rows, T] int64 with T the longest row (at least 1): dynamic padding.
void pad_token_rows(Batch& b, const std::vector<TokenRow>& rows, int64_t pad_id);

}  // namespace lorakit
