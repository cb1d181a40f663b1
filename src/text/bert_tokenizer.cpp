#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <utility>

#include "text/encoding.h"
#include "text/tokenizer.h"
#include "text/tokenizer_io.h"
#include "text/unicode.h"

namespace lorakit::text {
namespace fs = std::filesystem;
using nlohmann::json;

using detail::parse_json_file;
using detail::read_file_bytes;

namespace {

inline bool is_ascii_control(char32_t c) {  // category Cc among ASCII, minus \t \n \r
  return (c < 0x20 && c != U'\t' && c != U'\n' && c != U'\r') || c == 0x7F;
}

// Sinks receive each token with its [start, end) code-point offsets in the text being tokenized
// (meaningful only for sinks with kWantsOffsets).
struct TokenSink {
  std::vector<std::string>* out;
  static constexpr bool kWantsText = true;
  static constexpr bool kWantsOffsets = false;
  void emit(int64_t /*id*/, std::string text, size_t, size_t) { out->push_back(std::move(text)); }
};

struct IdSink {
  std::vector<int64_t>* out;
  static constexpr bool kWantsText = false;
  static constexpr bool kWantsOffsets = false;
  void emit(int64_t id, const std::string& /*text*/, size_t, size_t) { out->push_back(id); }
};

struct OffsetSink {
  std::vector<Token>* out;
  static constexpr bool kWantsText = true;
  static constexpr bool kWantsOffsets = true;
  void emit(int64_t id, std::string text, size_t start, size_t end) {
    out->push_back(Token{id, std::move(text), start, end});
  }
};

// The per-word normalisation of the basic tokenizer (NFC, lower-casing, accent stripping).
struct WordNormalizer {
  bool nfc, lower, strip;
  std::u32string operator()(std::u32string w) const {
    if (nfc) w = unicode::nfc(w);
    if (lower) w = unicode::lower_chars(w);
    if (strip) w = unicode::strip_accents(w);
    return w;
  }
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// construction

void BertTokenizer::insert_token(const std::string& tok, int64_t id) {
  if (id < 0) throw TokenizerError("negative token id " + std::to_string(id) + " for token '" + tok + "'");
  if (static_cast<size_t>(id) >= id_to_token_.size()) id_to_token_.resize(static_cast<size_t>(id) + 1);
  id_to_token_[static_cast<size_t>(id)] = tok;
  token_to_id_[tok] = id;
}

void BertTokenizer::add_never_split(const std::string& tok) {
  if (tok.empty()) return;
  if (std::find(never_split_.begin(), never_split_.end(), tok) != never_split_.end()) return;
  never_split_.push_back(tok);
}

void BertTokenizer::finalize(const std::string& source) {
  source_ = source;
  strip_accents_ = opt_.strip_accents.value_or(opt_.do_lower_case);
  unk_id_ = find_id(opt_.unk_token);
  if (unk_id_ < 0) {
    throw TokenizerError("unknown token '" + opt_.unk_token + "' is not in the vocabulary of '" + source + "'");
  }
  cls_id_ = find_id(opt_.cls_token);
  sep_id_ = find_id(opt_.sep_token);
  pad_id_ = find_id(opt_.pad_token);
  mask_id_ = find_id(opt_.mask_token);
  // HF's all_special_tokens are never split; those absent from the vocabulary are ignored here.
  for (const std::string* t : {&opt_.unk_token, &opt_.sep_token, &opt_.pad_token, &opt_.cls_token, &opt_.mask_token}) {
    if (find_id(*t) >= 0) add_never_split(*t);
  }
  // Longest first, so that the first literal matching at a position is the longest one.
  std::stable_sort(never_split_.begin(), never_split_.end(),
                   [](const std::string& x, const std::string& y) { return x.size() > y.size(); });
  std::fill(std::begin(never_split_first_byte_), std::end(never_split_first_byte_), false);
  for (const auto& t : never_split_) never_split_first_byte_[static_cast<unsigned char>(t[0])] = true;
}

BertTokenizer BertTokenizer::from_vocab_file(const std::string& path, Options opt) {
  std::string data = read_file_bytes(path, "vocab file");
  if (data.size() >= 3 && static_cast<unsigned char>(data[0]) == 0xEF && static_cast<unsigned char>(data[1]) == 0xBB &&
      static_cast<unsigned char>(data[2]) == 0xBF) {
    data.erase(0, 3);
  }
  if (data.empty()) throw TokenizerError("vocab file '" + path + "' is empty");
  if (!unicode::is_valid_utf8(data)) throw TokenizerError("vocab file '" + path + "' is not valid UTF-8");

  BertTokenizer tok;
  tok.opt_ = std::move(opt);
  // Python's readlines() in text mode: lines end at "\n", "\r\n" or "\r"; a last line without a
  // terminator still counts; no empty token after a final terminator.
  size_t start = 0;
  int64_t id = 0;
  const size_t n = data.size();
  while (start < n) {
    size_t end = start;
    while (end < n && data[end] != '\n' && data[end] != '\r') ++end;
    tok.insert_token(data.substr(start, end - start), id++);
    if (end < n && data[end] == '\r' && end + 1 < n && data[end + 1] == '\n') ++end;
    start = end + 1;
  }
  tok.finalize(path);
  return tok;
}

BertTokenizer BertTokenizer::from_tokenizer_json(const std::string& path) {
  return from_tokenizer_json(path, NormalizerOverrides{});
}

BertTokenizer BertTokenizer::from_tokenizer_json(const std::string& path, const NormalizerOverrides& ov) {
  const json j = parse_json_file(path, "tokenizer file");
  auto fail = [&](const std::string& msg) -> TokenizerError { return TokenizerError("tokenizer file '" + path + "': " + msg); };
  if (!j.is_object()) throw fail("top level is not a JSON object");
  try {
    auto mit = j.find("model");
    if (mit == j.end() || !mit->is_object()) throw fail("no \"model\" object");
    const json& model = *mit;
    const std::string type = model.value("type", std::string("WordPiece"));
    if (type != "WordPiece") throw fail("model type '" + type + "' is not supported by BertTokenizer (need WordPiece)");
    auto vit = model.find("vocab");
    if (vit == model.end() || !vit->is_object() || vit->empty()) throw fail("model.vocab is missing or empty");

    BertTokenizer tok;
    Options& opt = tok.opt_;
    opt.nfc = false;  // the tokenizers library's BertNormalizer has no NFC step
    if (model.contains("unk_token") && model["unk_token"].is_string()) opt.unk_token = model["unk_token"].get<std::string>();
    if (model.contains("continuing_subword_prefix") && model["continuing_subword_prefix"].is_string())
      opt.continuing_subword_prefix = model["continuing_subword_prefix"].get<std::string>();
    if (model.contains("max_input_chars_per_word") && model["max_input_chars_per_word"].is_number_unsigned())
      opt.max_input_chars_per_word = model["max_input_chars_per_word"].get<size_t>();

    // Normalizer.
    auto nit = j.find("normalizer");
    if (nit == j.end() || nit->is_null()) {
      opt.clean_text = false;
      opt.tokenize_chinese_chars = false;
      opt.do_lower_case = false;
      opt.strip_accents = false;
    } else {
      const std::string ntype = nit->value("type", std::string());
      if (ntype != "BertNormalizer") throw fail("normalizer type '" + ntype + "' is not supported (need BertNormalizer)");
      opt.clean_text = nit->value("clean_text", true);
      opt.tokenize_chinese_chars = nit->value("handle_chinese_chars", true);
      opt.do_lower_case = nit->value("lowercase", true);
      auto sa = nit->find("strip_accents");
      if (sa == nit->end() || sa->is_null()) opt.strip_accents = std::nullopt;
      else opt.strip_accents = sa->get<bool>();
    }
    if (ov.do_lower_case) opt.do_lower_case = *ov.do_lower_case;
    if (ov.strip_accents) opt.strip_accents = *ov.strip_accents;
    if (ov.tokenize_chinese_chars) opt.tokenize_chinese_chars = *ov.tokenize_chinese_chars;

    // Pre-tokenizer: BertPreTokenizer (whitespace + punctuation), WhitespaceSplit (whitespace only).
    auto pit = j.find("pre_tokenizer");
    if (pit != j.end() && !pit->is_null()) {
      const std::string ptype = pit->value("type", std::string());
      if (ptype == "WhitespaceSplit") opt.split_on_punc = false;
      else if (ptype != "BertPreTokenizer") throw fail("pre_tokenizer type '" + ptype + "' is not supported");
    }

    // Post-processor: where [CLS] / [SEP] come from.
    auto ppit = j.find("post_processor");
    if (ppit != j.end() && ppit->is_object()) {
      const std::string pptype = ppit->value("type", std::string());
      if (pptype == "BertProcessing") {
        if (ppit->contains("cls") && (*ppit)["cls"].is_array() && !(*ppit)["cls"].empty())
          opt.cls_token = (*ppit)["cls"][0].get<std::string>();
        if (ppit->contains("sep") && (*ppit)["sep"].is_array() && !(*ppit)["sep"].empty())
          opt.sep_token = (*ppit)["sep"][0].get<std::string>();
      } else if (pptype == "TemplateProcessing") {
        std::vector<std::string> specials;
        if (ppit->contains("single") && (*ppit)["single"].is_array()) {
          for (const auto& piece : (*ppit)["single"]) {
            if (piece.contains("SpecialToken")) specials.push_back(piece["SpecialToken"].value("id", std::string()));
          }
        }
        if (specials.size() >= 2) {
          opt.cls_token = specials.front();
          opt.sep_token = specials.back();
        }
      }
    }
    auto padit = j.find("padding");
    if (padit != j.end() && padit->is_object() && padit->contains("pad_token") && (*padit)["pad_token"].is_string())
      opt.pad_token = (*padit)["pad_token"].get<std::string>();

    // The table of tokens is indexed by id: an id may lie at most 2^16 past the number of tokens listed
    // (a 1 kB file with the id 300000000 would otherwise allocate 10 GB).
    auto ait = j.find("added_tokens");
    const size_t listed = vit->size() + (ait != j.end() && ait->is_array() ? ait->size() : 0);
    const int64_t limit = static_cast<int64_t>(listed) + (int64_t{1} << 16);
    auto checked_id = [&](const json& v, const std::string& where) {
      if (!v.is_number_integer()) throw fail(where + " has a non-integer id");
      const int64_t id = v.get<int64_t>();
      if (id < 0 || id >= limit)
        throw fail(where + " has the id " + std::to_string(id) + ", out of range (0 to " + std::to_string(limit - 1) +
                   " for " + std::to_string(listed) + " tokens)");
      return id;
    };
    for (auto it = vit->begin(); it != vit->end(); ++it)
      tok.insert_token(it.key(), checked_id(it.value(), "model.vocab entry '" + it.key() + "'"));
    // Added tokens are matched literally in the raw text and override the vocab entries.
    if (ait != j.end() && ait->is_array()) {
      for (const auto& at : *ait) {
        const std::string content = at.at("content").get<std::string>();
        tok.insert_token(content, checked_id(at.at("id"), "added token '" + content + "'"));
        tok.add_never_split(content);
      }
    }
    for (const auto& t : tok.id_to_token_) {
      if (!unicode::is_valid_utf8(t)) throw fail("a token is not valid UTF-8");
    }
    tok.finalize(path);
    return tok;
  } catch (const json::exception& e) {
    throw fail(std::string("unexpected structure: ") + e.what());
  }
}

// ---------------------------------------------------------------------------------------------
// tokenization

int64_t BertTokenizer::find_id(const std::string& t) const {
  auto it = token_to_id_.find(t);
  return it == token_to_id_.end() ? -1 : it->second;
}

template <class Sink>
void BertTokenizer::wordpiece(const char32_t* begin, const char32_t* end, const Span* spans, Sink& sink) const {
  const size_t n = static_cast<size_t>(end - begin);
  if (n == 0) return;
  auto span_of = [&](size_t a, size_t b) -> std::pair<size_t, size_t> {  // chars [a, b) of the word
    if constexpr (Sink::kWantsOffsets) return {spans[a].first, spans[b - 1].second};
    return {0, 0};
  };
  if (n > opt_.max_input_chars_per_word) {
    auto [s0, s1] = span_of(0, n);
    sink.emit(unk_id_, opt_.unk_token, s0, s1);
    return;
  }
  // UTF-8 bytes of the word and the byte offset of every code point.
  std::string word;
  std::vector<size_t> off(n + 1);
  word.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    off[i] = word.size();
    unicode::append_utf8(word, begin[i]);
  }
  off[n] = word.size();

  struct Piece {
    int64_t id;
    size_t start, end;
  };
  std::vector<Piece> pieces;
  std::string cand;
  size_t start = 0;
  while (start < n) {
    size_t stop = n;
    int64_t found = -1;
    while (start < stop) {
      cand.clear();
      if (start > 0) cand += opt_.continuing_subword_prefix;
      cand.append(word, off[start], off[stop] - off[start]);
      found = find_id(cand);
      if (found >= 0) break;
      --stop;
    }
    if (found < 0) {
      auto [s0, s1] = span_of(0, n);
      sink.emit(unk_id_, opt_.unk_token, s0, s1);
      return;
    }
    pieces.push_back({found, start, stop});
    start = stop;
  }
  for (const Piece& p : pieces) {
    auto [s0, s1] = span_of(p.start, p.end);
    if constexpr (Sink::kWantsText) {
      std::string text = p.start > 0 ? opt_.continuing_subword_prefix : std::string();
      text.append(word, off[p.start], off[p.end] - off[p.start]);
      sink.emit(p.id, std::move(text), s0, s1);
    } else {
      sink.emit(p.id, std::string(), s0, s1);
    }
  }
}

template <class Sink>
void BertTokenizer::basic_and_wordpiece(const std::string& segment, size_t char_base, Sink& sink) const {
  const std::u32string raw = unicode::decode_utf8(segment);
  std::u32string text;
  std::vector<uint32_t> pos;  // with offsets: the raw index of every char of `text`
  text.reserve(raw.size() + 8);
  auto put = [&](char32_t c, size_t k) {
    text.push_back(c);
    if constexpr (Sink::kWantsOffsets) pos.push_back(static_cast<uint32_t>(k));
  };
  for (size_t k = 0; k < raw.size(); ++k) {
    char32_t c = raw[k];
    if (opt_.clean_text) {
      if (c < 0x80) {
        if (c == 0 || is_ascii_control(c)) continue;
        if (c == U'\t' || c == U'\n' || c == U'\r') c = U' ';
      } else {
        if (c == 0xFFFD || unicode::is_control(c)) continue;
        if (unicode::is_bert_whitespace(c)) c = U' ';
      }
    }
    if (opt_.tokenize_chinese_chars && c >= 0x3400 && unicode::is_chinese_char(c)) {
      put(U' ', k);
      put(c, k);
      put(U' ', k);
    } else {
      put(c, k);
    }
  }

  // Words are split on Python whitespace before NFC: NFC never composes across whitespace, so this
  // equals transformers' NFC-then-split.
  const WordNormalizer norm{opt_.nfc, opt_.do_lower_case, strip_accents_};
  const size_t n = text.size();
  std::vector<Span> spans;
  size_t i = 0;
  while (i < n) {
    while (i < n && unicode::is_python_space(text[i])) ++i;
    if (i >= n) break;
    size_t j = i;
    bool ascii = true;
    while (j < n && !unicode::is_python_space(text[j])) ascii = ascii && text[j] < 0x80, ++j;
    std::u32string word(text, i, j - i);
    if (ascii) {
      if (opt_.do_lower_case)
        for (auto& c : word)
          if (c >= U'A' && c <= U'Z') c += 32;
    } else {
      word = norm(std::move(word));
    }
    if constexpr (Sink::kWantsOffsets) {
      // Each output char gets the raw chars it came from. Normalising char by char gives exact spans
      // whenever it reproduces the word's normalisation (always, except where NFC composes several
      // chars); otherwise every char of the word gets the word's whole span.
      spans.clear();
      if (ascii) {
        for (size_t k = i; k < j; ++k) spans.emplace_back(char_base + pos[k], char_base + pos[k] + 1);
      } else {
        std::u32string joined;
        for (size_t k = i; k < j; ++k) {
          const std::u32string one = norm(std::u32string(1, text[k]));
          joined += one;
          for (size_t q = 0; q < one.size(); ++q) spans.emplace_back(char_base + pos[k], char_base + pos[k] + 1);
        }
        if (joined != word) spans.assign(word.size(), Span(char_base + pos[i], char_base + pos[j - 1] + 1));
      }
    }
    i = j;
    const Span* sp = spans.empty() ? nullptr : spans.data();
    if (!opt_.split_on_punc) {
      wordpiece(word.data(), word.data() + word.size(), sp, sink);
      continue;
    }
    const char32_t* w = word.data();
    const char32_t* p = w;
    const char32_t* e = p + word.size();
    const char32_t* run = p;
    auto at = [&](const char32_t* q) { return sp ? sp + (q - w) : nullptr; };
    for (; p != e; ++p) {
      if (unicode::is_punctuation(*p)) {
        wordpiece(run, p, at(run), sink);
        wordpiece(p, p + 1, at(p), sink);
        run = p + 1;
      }
    }
    wordpiece(run, e, at(run), sink);
  }
}

template <class Sink>
void BertTokenizer::run(const std::string& text, Sink& sink) const {
  if (never_split_.empty()) {
    basic_and_wordpiece(text, 0, sink);
    return;
  }
  const size_t n = text.size();
  size_t seg_start = 0;
  size_t pos = 0;
  size_t chars_before_seg = 0;  // code points of text[0, seg_start) (offsets only)
  auto count_chars = [](const std::string& t, size_t a, size_t b) {
    return unicode::decode_utf8(t.substr(a, b - a)).size();
  };
  while (pos < n) {
    if (!never_split_first_byte_[static_cast<unsigned char>(text[pos])]) {
      ++pos;
      continue;
    }
    const std::string* match = nullptr;
    for (const auto& t : never_split_) {  // longest first
      if (text.compare(pos, t.size(), t) == 0) {
        match = &t;
        break;
      }
    }
    if (!match) {
      ++pos;
      continue;
    }
    if (pos > seg_start) basic_and_wordpiece(text.substr(seg_start, pos - seg_start), chars_before_seg, sink);
    size_t match_start = 0, match_chars = 0;
    if constexpr (Sink::kWantsOffsets) {
      match_start = chars_before_seg + count_chars(text, seg_start, pos);
      match_chars = count_chars(text, pos, pos + match->size());
      chars_before_seg = match_start + match_chars;
    }
    sink.emit(find_id(*match), *match, match_start, match_start + match_chars);
    pos += match->size();
    seg_start = pos;
  }
  if (seg_start < n) basic_and_wordpiece(seg_start == 0 ? text : text.substr(seg_start), chars_before_seg, sink);
}

std::vector<std::string> BertTokenizer::tokenize(const std::string& text) const {
  std::vector<std::string> out;
  TokenSink sink{&out};
  run(text, sink);
  return out;
}

std::vector<Token> BertTokenizer::tokenize_with_offsets(const std::string& text) const {
  std::vector<Token> out;
  OffsetSink sink{&out};
  run(text, sink);
  return out;
}

std::vector<int64_t> BertTokenizer::tokenize_to_ids(const std::string& text) const {
  std::vector<int64_t> out;
  IdSink sink{&out};
  run(text, sink);
  return out;
}

std::vector<int64_t> BertTokenizer::convert_tokens_to_ids(const std::vector<std::string>& toks) const {
  std::vector<int64_t> out;
  out.reserve(toks.size());
  for (const auto& t : toks) out.push_back(token_to_id(t));
  return out;
}

int64_t BertTokenizer::token_to_id(const std::string& t) const {
  const int64_t id = find_id(t);
  return id >= 0 ? id : unk_id_;
}

bool BertTokenizer::has_token(const std::string& t) const { return find_id(t) >= 0; }

const std::string& BertTokenizer::id_to_token(int64_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= id_to_token_.size()) return opt_.unk_token;
  return id_to_token_[static_cast<size_t>(id)];
}

std::vector<std::string> BertTokenizer::convert_ids_to_tokens(const std::vector<int64_t>& ids) const {
  std::vector<std::string> out;
  out.reserve(ids.size());
  for (int64_t id : ids) out.push_back(id_to_token(id));
  return out;
}

// ---------------------------------------------------------------------------------------------
// encoding

int64_t BertTokenizer::cls_id() const {
  if (cls_id_ < 0) throw TokenizerError("CLS token '" + opt_.cls_token + "' is not in the vocabulary of '" + source_ + "'");
  return cls_id_;
}
int64_t BertTokenizer::sep_id() const {
  if (sep_id_ < 0) throw TokenizerError("SEP token '" + opt_.sep_token + "' is not in the vocabulary of '" + source_ + "'");
  return sep_id_;
}
int64_t BertTokenizer::mask_id() const {
  if (mask_id_ < 0) throw TokenizerError("mask token '" + opt_.mask_token + "' is not in the vocabulary of '" + source_ + "'");
  return mask_id_;
}
int64_t BertTokenizer::pad_id() const {
  if (pad_id_ < 0) throw TokenizerError("pad token '" + opt_.pad_token + "' is not in the vocabulary of '" + source_ + "'");
  return pad_id_;
}

size_t BertTokenizer::vocab_size() const { return id_to_token_.size(); }

Encoding BertTokenizer::encode(const std::string& a, const std::string* b, size_t max_length) const {
  std::vector<int64_t> ids_a = tokenize_to_ids(a), ids_b;
  if (b) ids_b = tokenize_to_ids(*b);
  detail::truncate_longest_first(ids_a, b ? &ids_b : nullptr, b ? 3 : 2, max_length);
  return encode_ids(ids_a, b ? &ids_b : nullptr);
}

Encoding BertTokenizer::encode_ids(const std::vector<int64_t>& a, const std::vector<int64_t>* b) const {
  return detail::wrap_with_specials(cls_id(), sep_id(), a, b, /*double_sep=*/false, /*b_type=*/1);
}

// ---------------------------------------------------------------------------------------------
// saving and loading

void BertTokenizer::save_vocab(const std::string& path) const {
  for (const auto& t : id_to_token_) {
    if (t.find('\n') != std::string::npos || t.find('\r') != std::string::npos) {
      throw TokenizerError("cannot save vocab to '" + path + "': a token contains a line break");
    }
  }
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw TokenizerError("cannot write vocab file '" + tmp + "'");
    for (const auto& t : id_to_token_) out << t << '\n';
    out.flush();
    if (!out) throw TokenizerError("error writing vocab file '" + tmp + "'");
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    fs::remove(tmp, ec);
    throw TokenizerError("cannot move vocab file into place at '" + path + "'");
  }
}

}  // namespace lorakit::text
