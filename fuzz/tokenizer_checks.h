// What the tokenizer harnesses do with a tokenizer that loaded: tokenize (and encode some of) fixed texts
// (ASCII, accents, CJK, emoji, special tokens written literally, whitespace, invalid UTF-8), checking
// that ids lie in [0, vocab_size()), offsets inside the text, and truncation keeps to max_length.
#pragma once
#include <string>
#include <vector>

#include "harness.h"
#include "text/tokenizer.h"
#include "text/unicode.h"

namespace lorakit::fuzz {

using text::Encoding;
using text::Token;
using text::Tokenizer;

inline const std::vector<std::string>& sample_texts() {
  static const std::vector<std::string> t = {
      "Hello, world! It's 3.14 o'clock.",
      "  Caf\xc3\xa9 na\xc3\xafve \xce\xa3\xcf\x83 \xe4\xbd\xa0\xe5\xa5\xbd\xe4\xb8\x96\xe7\x95\x8c \xf0\x9f\x98\x80  ",
      "[CLS] a [SEP] b [MASK] <s></s><pad><unk><mask> \xe2\x96\x81x",
      "",
      " \t\n\r ",
      "bad \xff\xfe utf-8 \xc3 \xe2\x82 end",
      "unbelievable tokenization of antidisestablishmentarianism",
  };
  return t;
}

inline void check_ids(const Tokenizer& tok, const std::vector<int64_t>& ids, const char* what) {
  for (int64_t id : ids)
    if (id < 0 || static_cast<size_t>(id) >= tok.vocab_size())
      fail(std::string(what) + ": id " + std::to_string(id) + " outside [0, " + std::to_string(tok.vocab_size()) + ")");
}

inline void exercise_tokenizer(const Tokenizer& tok) {
  const auto& texts = sample_texts();
  for (size_t i = 0; i < texts.size(); ++i) {
    const std::string& a = texts[i];
    const std::string& b = texts[(i + 1) % texts.size()];
    const size_t chars = text::unicode::decode_utf8(a).size();
    for (const Token& t : tok.tokenize_with_offsets(a)) {
      if (t.start > t.end || t.end > chars)
        fail("token '" + t.text + "' has offsets [" + std::to_string(t.start) + ", " + std::to_string(t.end) +
             ") in a text of " + std::to_string(chars) + " characters");
      check_ids(tok, {t.id}, "tokenize_with_offsets");
    }
    if (i % 2 != 0) continue;  // encode (which tokenizes again) on half of the texts only: speed
    const Encoding single = tok.encode(a, nullptr, 0);
    check_ids(tok, single.input_ids, "encode");
    const Encoding pair = tok.encode(a, &b, 12);
    if (pair.input_ids.size() > 12) fail("encode(max_length 12) gave " + std::to_string(pair.input_ids.size()) + " ids");
    if (pair.token_type_ids.size() != pair.input_ids.size() || pair.attention_mask.size() != pair.input_ids.size())
      fail("encode: input_ids, token_type_ids and attention_mask differ in length");
    check_ids(tok, pair.input_ids, "encode pair");
    check_ids(tok, tok.encode_ids(single.input_ids, &pair.input_ids).input_ids, "encode_ids");
  }
  check_ids(tok, {tok.pad_id()}, "pad_id");
}

}  // namespace lorakit::fuzz
