#include "text/encoding.h"

#include <string>

namespace lorakit::text::detail {

void truncate_longest_first(std::vector<int64_t>& a, std::vector<int64_t>* b, size_t specials, size_t max_length) {
  if (max_length != 0 && max_length < specials)
    throw TokenizerError("max_length " + std::to_string(max_length) + " cannot hold the " + std::to_string(specials) +
                         " special tokens of a " + (b ? "pair" : "single sequence"));
  if (max_length == 0) return;
  const size_t lb0 = b ? b->size() : 0;
  const size_t total = a.size() + lb0 + specials;
  if (total <= max_length) return;
  size_t to_remove = total - max_length, la = a.size(), lb = lb0;
  for (; to_remove > 0; --to_remove) {
    if (!b || la > lb) --la;
    else --lb;
  }
  a.resize(la);
  if (b) b->resize(lb);
}

Encoding wrap_with_specials(int64_t cls, int64_t sep, const std::vector<int64_t>& a, const std::vector<int64_t>* b,
                            bool double_sep, int64_t b_type) {
  Encoding enc;
  enc.input_ids.reserve(a.size() + (b ? b->size() + 2 + (double_sep ? 1 : 0) : 0) + 2);
  enc.input_ids.push_back(cls);
  enc.input_ids.insert(enc.input_ids.end(), a.begin(), a.end());
  enc.input_ids.push_back(sep);
  enc.token_type_ids.assign(enc.input_ids.size(), 0);
  if (b) {
    if (double_sep) enc.input_ids.push_back(sep);
    enc.b_begin = enc.input_ids.size();
    enc.input_ids.insert(enc.input_ids.end(), b->begin(), b->end());
    enc.input_ids.push_back(sep);
    enc.token_type_ids.resize(enc.input_ids.size(), b_type);
  }
  enc.attention_mask.assign(enc.input_ids.size(), 1);
  return enc;
}

}  // namespace lorakit::text::detail
