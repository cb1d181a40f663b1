// Pieces of Tokenizer::encode shared by every tokenizer (internal to src/text).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "text/tokenizer.h"

namespace lorakit::text::detail {

// transformers' truncate_sequences with "longest_first": first checks that max_length can hold the
// `specials` special tokens (TokenizerError otherwise), then removes one token at a time from the
// end of the longer of a / b (from b on a tie) until a + b + specials fits. max_length 0: no limit.
void truncate_longest_first(std::vector<int64_t>& a, std::vector<int64_t>* b, size_t specials, size_t max_length);

// cls a sep, or for a pair cls a sep [sep] b sep (the extra sep when `double_sep`, RoBERTa's layout);
// token type 0 up to a's last sep, then `b_type`; attention mask all 1; b_begin = index of b's first token.
Encoding wrap_with_specials(int64_t cls, int64_t sep, const std::vector<int64_t>& a, const std::vector<int64_t>* b,
                            bool double_sep, int64_t b_type);

}  // namespace lorakit::text::detail
