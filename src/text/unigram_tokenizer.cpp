#include "text/unigram_tokenizer.h"

#include <utf8proc.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "text/encoding.h"
#include "text/unicode.h"

namespace lorakit::text {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr char32_t kSpacePiece = 0x2581;  // '▁'

std::u32string nfkc(const std::u32string& s) {
  bool ascii = true;
  for (char32_t c : s)
    if (c >= 0x80) {
      ascii = false;
      break;
    }
  if (ascii) return s;  // NFKC leaves ASCII unchanged
  const std::string utf8 = unicode::encode_utf8(s);
  utf8proc_uint8_t* out = nullptr;
  const utf8proc_ssize_t n =
      utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(utf8.data()), static_cast<utf8proc_ssize_t>(utf8.size()),
                   &out, static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT));
  if (n < 0 || !out) {
    std::free(out);
    return s;  // cannot happen for valid input (encode_utf8 only writes valid UTF-8)
  }
  std::string r(reinterpret_cast<char*>(out), static_cast<size_t>(n));
  std::free(out);
  return unicode::decode_utf8(r);
}

int64_t utf16_length(const std::string& utf8) {
  int64_t n = 0;
  for (char32_t c : unicode::decode_utf8(utf8)) n += c >= 0x10000 ? 2 : 1;
  return n;
}

}  // namespace

UnigramTokenizer UnigramTokenizer::from_vocab_json(const std::string& path, size_t reserved_count) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw TokenizerError("unigram vocabulary '" + path + "' does not exist");
  std::ifstream is(path, std::ios::binary);
  if (!is) throw TokenizerError("unigram vocabulary '" + path + "': cannot open");
  json doc;
  try {
    doc = json::parse(is);
  } catch (const json::exception& e) {
    throw TokenizerError("unigram vocabulary '" + path + "': invalid JSON (" + std::string(e.what()) + ")");
  }
  if (!doc.is_array())
    throw TokenizerError("unigram vocabulary '" + path + "' is not a JSON array of [piece, score] pairs");
  std::vector<Piece> pieces;
  pieces.reserve(doc.size());
  for (size_t i = 0; i < doc.size(); ++i) {
    const json& e = doc[i];
    if (!e.is_array() || e.empty() || !e[0].is_string() || (e.size() > 1 && !e[1].is_number() && !e[1].is_null()))
      throw TokenizerError("unigram vocabulary '" + path + "': entry " + std::to_string(i) +
                           " is not a [piece, score] pair: " + e.dump().substr(0, 80));
    Piece p;
    p.text = e[0].get<std::string>();
    if (!unicode::is_valid_utf8(p.text))
      throw TokenizerError("unigram vocabulary '" + path + "': entry " + std::to_string(i) + " is not valid UTF-8");
    p.score = e.size() > 1 && e[1].is_number() ? e[1].get<double>() : 0.0;
    pieces.push_back(std::move(p));
  }
  return from_pieces(std::move(pieces), reserved_count, path);
}

UnigramTokenizer UnigramTokenizer::from_pieces(std::vector<Piece> pieces, size_t reserved_count,
                                               const std::string& source) {
  UnigramTokenizer t;
  t.pieces_ = std::move(pieces);
  t.reserved_ = reserved_count;
  t.build(source);
  return t;
}

UnigramTokenizer UnigramTokenizer::from_model_dir(const std::string& dir) {
  return from_vocab_json((fs::path(dir) / "vocab.json").string());
}

bool UnigramTokenizer::is_unigram_vocab_json(const std::string& path) {
  try {
    std::ifstream is(path, std::ios::binary);
    if (!is) return false;
    // Skip whitespace, expect '[' then '['.
    char c;
    auto next = [&]() -> bool {
      while (is.get(c))
        if (c != ' ' && c != '\n' && c != '\r' && c != '\t') return true;
      return false;
    };
    if (!next() || c != '[') return false;
    if (!next() || c != '[') return false;
    if (!next() || c != '"') return false;
    return true;
  } catch (...) {
    return false;
  }
}

void UnigramTokenizer::build(const std::string& source) {
  if (pieces_.size() <= reserved_)
    throw TokenizerError("unigram vocabulary '" + source + "' has " + std::to_string(pieces_.size()) +
                         " entries, not more than the " + std::to_string(reserved_) + " reserved ones");
  utf16_len_.resize(pieces_.size());
  for (size_t i = 0; i < pieces_.size(); ++i) utf16_len_[i] = utf16_length(pieces_[i].text);
  trie_.assign(1, Node{});
  for (size_t i = reserved_; i < pieces_.size(); ++i) {
    const std::u32string cps = unicode::decode_utf8(pieces_[i].text);
    if (cps.empty()) continue;  // the JS trie ignores an empty piece
    int32_t node = 0;
    for (char32_t c : cps) {
      auto it = trie_[node].children.find(c);
      if (it == trie_[node].children.end()) {
        const int32_t child = static_cast<int32_t>(trie_.size());
        trie_[node].children.emplace(c, child);
        trie_.emplace_back();
        node = child;
      } else {
        node = it->second;
      }
    }
    trie_[node].id = static_cast<int64_t>(i);  // a later duplicate overwrites
  }
}

std::u32string UnigramTokenizer::normalize(const std::string& text) {
  std::u32string s = nfkc(unicode::decode_utf8(text));
  if (s.empty()) return s;
  std::u32string out;
  out.reserve(s.size() + 1);
  out.push_back(kSpacePiece);
  for (char32_t c : s) out.push_back(c == U' ' ? kSpacePiece : c);
  return out;
}

std::vector<std::pair<size_t, size_t>> UnigramTokenizer::normalize_spans(const std::string& text,
                                                                         const std::u32string& sym) {
  // Spans of the raw code points behind each char of normalize(text); the '▁' prefix has none (empty).
  // NFKC never composes across U+0020, so segments that start at a space normalise independently;
  // within a segment, char-by-char NFKC gives exact spans whenever it reproduces the segment's NFKC,
  // else every char of the segment gets the segment's whole span.
  const std::u32string raw = unicode::decode_utf8(text);
  std::vector<std::pair<size_t, size_t>> spans;
  if (sym.empty()) return spans;
  spans.reserve(sym.size());
  spans.emplace_back(0, 0);
  size_t a = 0;
  while (a < raw.size()) {
    size_t b = a + 1;
    while (b < raw.size() && raw[b] != U' ') ++b;
    const std::u32string seg_norm = nfkc(raw.substr(a, b - a));
    std::u32string joined;
    std::vector<std::pair<size_t, size_t>> seg;
    for (size_t k = a; k < b; ++k) {
      const std::u32string one = nfkc(std::u32string(1, raw[k]));
      joined += one;
      seg.insert(seg.end(), one.size(), {k, k + 1});
    }
    if (joined != seg_norm) seg.assign(seg_norm.size(), {a, b});
    spans.insert(spans.end(), seg.begin(), seg.end());
    a = b;
  }
  if (spans.size() != sym.size()) spans.assign(sym.size(), {0, raw.size()});  // cannot happen; stay safe
  spans[0] = {0, 0};
  return spans;
}

std::vector<int64_t> UnigramTokenizer::tokenize_to_ids(const std::string& text) const {
  std::vector<int64_t> out;
  for (auto& p : viterbi(normalize(text))) out.push_back(p.id);
  return out;
}

std::vector<Token> UnigramTokenizer::tokenize_with_offsets(const std::string& text) const {
  const std::u32string sym = normalize(text);
  const auto spans = normalize_spans(text, sym);
  std::vector<Token> out;
  for (auto& p : viterbi(sym)) {
    Token t{p.id, pieces_[static_cast<size_t>(p.id)].text, 0, 0};
    bool any = false;
    for (size_t k = p.start; k < p.end && k < spans.size(); ++k) {
      if (spans[k].first == spans[k].second) continue;  // the '▁' prefix
      t.start = any ? std::min(t.start, spans[k].first) : spans[k].first;
      t.end = any ? std::max(t.end, spans[k].second) : spans[k].second;
      any = true;
    }
    if (!any) {  // a piece of only the prefix: an empty span where the text starts
      t.start = t.end = p.end < spans.size() ? spans[p.end].first : (spans.empty() ? 0 : spans.back().second);
    }
    out.push_back(std::move(t));
  }
  return out;
}

std::vector<UnigramTokenizer::Located> UnigramTokenizer::viterbi(const std::u32string& sym) const {
  const size_t n = sym.size();
  // Candidates ending at each position, in ascending start order (starts are visited in order).
  struct Cand {
    size_t start;
    int64_t id;
    double score;
  };
  std::vector<std::vector<Cand>> ending(n + 1);
  for (size_t i = 0; i < n; ++i) {
    bool any = false;
    auto it = trie_[0].children.find(sym[i]);
    int32_t node = it == trie_[0].children.end() ? -1 : it->second;
    for (size_t j = i; j < n && node >= 0; ++j) {
      const Node& nd = trie_[static_cast<size_t>(node)];
      if (nd.id >= 0) {
        ending[j + 1].push_back({i, nd.id, pieces_[static_cast<size_t>(nd.id)].score});
        any = true;
      }
      if (j + 1 >= n) break;
      auto c = nd.children.find(sym[j + 1]);
      node = c == nd.children.end() ? -1 : c->second;
    }
    if (!any) ending[i + 1].push_back({i, 0, 0.0});
  }
  std::vector<double> best(n + 1, 0.0);
  std::vector<int64_t> words(n + 1, 0);
  for (size_t end = 0; end <= n; ++end) {
    for (const Cand& c : ending[end]) {
      const double score = c.score + best[c.start];
      if (best[end] == 0 || score >= best[end]) {
        best[end] = score;
        words[end] = c.id;
      }
    }
  }
  std::vector<Located> rev;
  int64_t iter = static_cast<int64_t>(n);
  while (iter > 0) {
    const int64_t id = words[static_cast<size_t>(iter)];
    const int64_t next = iter - std::max<int64_t>(utf16_len_[static_cast<size_t>(id)], 1);  // JS would loop forever on 0
    rev.push_back({id, static_cast<size_t>(std::max<int64_t>(next, 0)), static_cast<size_t>(iter)});
    iter = next;
  }
  // Consecutive unknowns merge into one (backwards: the earlier one absorbs the later's span).
  std::vector<Located> out;
  out.reserve(rev.size());
  for (const Located& l : rev) {
    if (!out.empty() && out.back().id == 0 && l.id == 0) {
      out.back().start = l.start;
      continue;
    }
    out.push_back(l);
  }
  std::reverse(out.begin(), out.end());
  return out;
}

std::vector<std::string> UnigramTokenizer::tokenize(const std::string& text) const {
  std::vector<std::string> out;
  for (int64_t id : tokenize_to_ids(text)) out.push_back(pieces_[static_cast<size_t>(id)].text);
  return out;
}

Encoding UnigramTokenizer::encode(const std::string& a, const std::string* b, size_t max_length) const {
  std::vector<int64_t> ia = tokenize_to_ids(a), ib;
  if (b) ib = tokenize_to_ids(*b);
  detail::truncate_longest_first(ia, b ? &ib : nullptr, /*specials=*/0, max_length);
  return encode_ids(ia, b ? &ib : nullptr);
}

Encoding UnigramTokenizer::encode_ids(const std::vector<int64_t>& a, const std::vector<int64_t>* b) const {
  Encoding e;
  e.input_ids = a;
  e.token_type_ids.assign(a.size(), 0);
  if (b) {
    e.b_begin = a.size();
    e.input_ids.insert(e.input_ids.end(), b->begin(), b->end());
    e.token_type_ids.insert(e.token_type_ids.end(), b->size(), 1);
  }
  e.attention_mask.assign(e.input_ids.size(), 1);
  return e;
}

const UnigramTokenizer::Piece& UnigramTokenizer::piece(int64_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= pieces_.size())
    throw TokenizerError("unigram tokenizer: id " + std::to_string(id) + " is out of range");
  return pieces_[static_cast<size_t>(id)];
}

int64_t UnigramTokenizer::piece_to_id(const std::string& text) const {
  int32_t node = 0;
  for (char32_t c : unicode::decode_utf8(text)) {
    auto it = trie_[static_cast<size_t>(node)].children.find(c);
    if (it == trie_[static_cast<size_t>(node)].children.end()) return -1;
    node = it->second;
  }
  return node == 0 ? -1 : trie_[static_cast<size_t>(node)].id;
}

}  // namespace lorakit::text
