#pragma once
// Unicode helpers for the text tokenizers (standard library + utf8proc only, no LibTorch).
//
// Code points are held as char32_t in std::u32string. Character classes follow the Python
// helpers Hugging Face's BERT tokenizer uses (unicodedata categories, str.isspace, str.lower),
// with utf8proc's Unicode tables standing in for Python's unicodedata.
#include <cstddef>
#include <string>

namespace lorakit::text::unicode {

// Decodes UTF-8. Invalid input never throws: each maximal ill-formed subsequence (bad lead byte,
// truncated sequence, overlong form, UTF-16 surrogate, code point above U+10FFFF) becomes one
// U+FFFD, as Python's bytes.decode("utf-8", errors="replace") does.
std::u32string decode_utf8(const std::string& s);
// True when `s` is well-formed UTF-8.
bool is_valid_utf8(const std::string& s);
// Appends the UTF-8 form of `cp` to `out` (code points that cannot be encoded become U+FFFD).
void append_utf8(std::string& out, char32_t cp);
std::string encode_utf8(const std::u32string& s);
std::string encode_utf8(const char32_t* begin, const char32_t* end);

// unicodedata.category(c)[0] == 'C' (Cc, Cf, Cs, Co, Cn: unassigned code points count too),
// except \t \n \r, which BERT treats as whitespace.
bool is_control(char32_t c);
// ' ', \t, \n, \r, or category Zs (BERT's _is_whitespace).
bool is_bert_whitespace(char32_t c);
// Python's str.isspace(): what str.split() with no argument splits on.
bool is_python_space(char32_t c);
// ASCII 33-47, 58-64, 91-96, 123-126, or any category P* (BERT's _is_punctuation).
bool is_punctuation(char32_t c);
// The CJK ideograph ranges of BERT's _is_chinese_char.
bool is_chinese_char(char32_t c);
// Unicode category Mn (non-spacing mark).
bool is_nonspacing_mark(char32_t c);

// Lower-cases each char on its own (full mapping: 'İ' → "i̇"), as tokenizers' NormalizedString::lowercase;
// no context rules (Python's str.lower() would turn a word-final 'Σ' into 'ς').
std::u32string lower_chars(const std::u32string& s);
// Canonical normalisation (utf8proc). Fast paths: nfc() returns strings whose code points are all
// below U+0300 unchanged, nfd() those all below U+00C0 (nothing there changes under that form).
std::u32string nfc(const std::u32string& s);
std::u32string nfd(const std::u32string& s);
// NFD, then drop every Mn character (BERT's _run_strip_accents).
std::u32string strip_accents(const std::u32string& s);

}  // namespace lorakit::text::unicode
