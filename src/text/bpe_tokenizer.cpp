#include "text/bpe_tokenizer.h"

#include <utf8proc.h>

#include <algorithm>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <queue>
#include <utility>

#include "text/encoding.h"
#include "text/tokenizer_io.h"
#include "text/unicode.h"

namespace lorakit::text {
namespace fs = std::filesystem;
using nlohmann::json;
using detail::parse_json_file;
using detail::read_file_bytes;

namespace {

constexpr int64_t kMaxId = int64_t{1} << 26;  // far above any real vocabulary
// The table of tokens is indexed by id, so an id bounds memory: it may lie at most kIdSlack past the
// number of tokens the files list (a 60-byte vocab.json with the id 67108863 would otherwise cost 2 GiB).
constexpr int64_t kIdSlack = int64_t{1} << 16;
int64_t id_limit(size_t listed) { return std::min<int64_t>(kMaxId, static_cast<int64_t>(listed) + kIdSlack); }

// GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the other 68 bytes get
// U+0100 + n in byte order.
struct ByteTable {
  char32_t cp[256];
  std::string utf8[256];
  ByteTable() {
    auto printable = [](int b) { return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF); };
    int extra = 0;
    for (int b = 0; b < 256; ++b) {
      cp[b] = printable(b) ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + extra++);
      unicode::append_utf8(utf8[b], cp[b]);
    }
  }
};
const ByteTable& byte_table() {
  static const ByteTable t;
  return t;
}
constexpr char32_t kSpaceSymbol = 0x120;  // 'Ġ', the symbol of byte 0x20

// Character classes of GPT-2's regex.
inline bool is_letter(char32_t c) {
  if (c < 0x80) return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
  const auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
  return cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO;
}
inline bool is_number(char32_t c) {
  if (c < 0x80) return c >= '0' && c <= '9';
  const auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
  return cat >= UTF8PROC_CATEGORY_ND && cat <= UTF8PROC_CATEGORY_NO;
}
// Unicode White_Space (the `regex` module's and Oniguruma's \s; unlike str.isspace, not U+001C-1F).
inline bool is_regex_space(char32_t c) {
  if (c < 0x80) return (c >= 0x09 && c <= 0x0D) || c == 0x20;
  switch (c) {
    case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F: case 0x3000:
      return true;
    default:
      return c >= 0x2000 && c <= 0x200A;
  }
}
inline bool is_other(char32_t c) { return !is_regex_space(c) && !is_letter(c) && !is_number(c); }

struct TokenSink {
  std::vector<std::string>* out;
  static constexpr bool kWantsOffsets = false;
  const BpeTokenizer* tok;
  void emit(int64_t id, size_t, size_t) { out->push_back(tok->id_to_token(id)); }
};
struct IdSink {
  std::vector<int64_t>* out;
  static constexpr bool kWantsOffsets = false;
  void emit(int64_t id, size_t, size_t) { out->push_back(id); }
};
struct OffsetSink {
  std::vector<Token>* out;
  static constexpr bool kWantsOffsets = true;
  const BpeTokenizer* tok;
  void emit(int64_t id, size_t s, size_t e) { out->push_back(Token{id, tok->id_to_token(id), s, e}); }
};

void sort_longest_first(std::vector<AddedToken>& v) {
  std::stable_sort(v.begin(), v.end(),
                   [](const AddedToken& x, const AddedToken& y) { return x.content.size() > y.content.size(); });
}

}  // namespace

struct BpeTokenizer::Cache {
  std::mutex mu;
  std::unordered_map<std::string, std::vector<Piece>> map;
  static constexpr size_t kMaxEntries = 1 << 17;
  static constexpr size_t kMaxKeyBytes = 256;
};

// ---------------------------------------------------------------------------------------------
// pre-tokenization: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+

std::vector<std::pair<size_t, size_t>> BpeTokenizer::pretokenize(const std::u32string& t) {
  std::vector<std::pair<size_t, size_t>> out;
  const size_t n = t.size();
  size_t i = 0;
  auto run_of = [&](size_t j, bool (*pred)(char32_t)) {
    while (j < n && pred(t[j])) ++j;
    return j;
  };
  while (i < n) {
    const char32_t c = t[i];
    size_t end = 0;
    // 1. contractions
    if (c == U'\'' && i + 1 < n) {
      const char32_t d = t[i + 1];
      if (d == U's' || d == U't' || d == U'm' || d == U'd') {
        end = i + 2;
      } else if (i + 2 < n && ((d == U'r' && t[i + 2] == U'e') || (d == U'v' && t[i + 2] == U'e') ||
                               (d == U'l' && t[i + 2] == U'l'))) {
        end = i + 3;
      }
    }
    if (end == 0) {
      // 2-4. optional ' ' then a run of letters / numbers / others
      const bool space = c == U' ' && i + 1 < n;
      const size_t k = space ? i + 1 : i;
      for (bool (*pred)(char32_t) : {&is_letter, &is_number, &is_other}) {
        if (space && pred(t[k])) {
          end = run_of(k, pred);
          break;
        }
        if (pred(c)) {
          end = run_of(i, pred);
          break;
        }
      }
    }
    if (end == 0) {
      // 5. \s+(?!\S): the whitespace run, minus its last char when a non-space follows
      // 6. \s+: a single whitespace char before a non-space
      const size_t j = run_of(i, &is_regex_space);
      end = (j == n || j - i == 1) ? j : j - 1;
    }
    out.emplace_back(i, end);
    i = end;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// BPE

std::vector<BpeTokenizer::Piece> BpeTokenizer::bpe_uncached(const std::string& bytes) const {
  const size_t n = bytes.size();
  struct Sym {
    int64_t id;
    int32_t prev, next;
    uint32_t nbytes;
    bool alive;
  };
  std::vector<Sym> s(n);
  for (size_t i = 0; i < n; ++i) {
    s[i] = Sym{byte_id_[static_cast<unsigned char>(bytes[i])], static_cast<int32_t>(i) - 1,
               i + 1 < n ? static_cast<int32_t>(i + 1) : -1, 1, true};
  }
  struct Entry {
    uint32_t rank;
    int32_t pos;
    int64_t left, right;
    bool operator>(const Entry& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> heap;
  auto push_pair = [&](int32_t pos) {
    if (pos < 0) return;
    const int32_t nx = s[pos].next;
    if (nx < 0 || s[pos].id < 0 || s[nx].id < 0) return;
    auto it = merge_map_.find(static_cast<uint64_t>(s[pos].id) << 32 | static_cast<uint64_t>(s[nx].id));
    if (it != merge_map_.end()) heap.push(Entry{it->second.rank, pos, s[pos].id, s[nx].id});
  };
  auto valid = [&](const Entry& e) {
    const Sym& l = s[e.pos];
    return l.alive && l.id == e.left && l.next >= 0 && s[l.next].id == e.right;
  };
  for (size_t i = 0; i + 1 < n; ++i) push_pair(static_cast<int32_t>(i));

  std::vector<int32_t> batch, merged;
  while (!heap.empty()) {
    // GPT-2: take the lowest-ranked pair present and merge all of its occurrences, left to right.
    // All heap entries of one rank are the same pair; they pop in position order.
    const uint32_t rank = heap.top().rank;
    batch.clear();
    while (!heap.empty() && heap.top().rank == rank) {
      if (valid(heap.top())) batch.push_back(heap.top().pos);
      heap.pop();
    }
    if (batch.empty()) continue;
    const int64_t left = s[batch.front()].id, right = s[s[batch.front()].next].id;
    const int64_t result = merge_map_.at(static_cast<uint64_t>(left) << 32 | static_cast<uint64_t>(right)).result;
    merged.clear();
    for (int32_t pos : batch) {
      Sym& l = s[pos];
      if (!l.alive || l.id != left || l.next < 0 || s[l.next].id != right) continue;  // overlapped
      Sym& r = s[l.next];
      l.id = result;
      l.nbytes += r.nbytes;
      r.alive = false;
      l.next = r.next;
      if (r.next >= 0) s[r.next].prev = pos;
      merged.push_back(pos);
    }
    for (int32_t pos : merged) {
      if (!s[pos].alive) continue;
      push_pair(s[pos].prev);
      push_pair(pos);
    }
  }
  std::vector<Piece> out;
  for (int32_t i = n ? 0 : -1; i >= 0; i = s[i].next) {
    if (s[i].id >= 0) {
      out.push_back(Piece{s[i].id, s[i].nbytes});
    } else {
      // A byte symbol missing from the vocabulary: the unknown token for that byte.
      out.push_back(Piece{unk_id_, s[i].nbytes});
    }
  }
  return out;
}

std::vector<BpeTokenizer::Piece> BpeTokenizer::bpe(const std::string& bytes) const {
  if (bytes.size() > Cache::kMaxKeyBytes) return bpe_uncached(bytes);
  {
    std::lock_guard<std::mutex> lock(cache_->mu);
    auto it = cache_->map.find(bytes);
    if (it != cache_->map.end()) return it->second;
  }
  std::vector<Piece> pieces = bpe_uncached(bytes);
  std::lock_guard<std::mutex> lock(cache_->mu);
  if (cache_->map.size() >= Cache::kMaxEntries) cache_->map.clear();
  cache_->map.emplace(bytes, pieces);
  return pieces;
}

// ---------------------------------------------------------------------------------------------
// tokenization

template <class Sink>
void BpeTokenizer::run_segment(const std::u32string& chars, size_t begin, size_t end, size_t& token_index,
                               Sink& sink) const {
  if (begin >= end) return;
  std::u32string seg(chars, begin, end - begin);
  // With add_prefix_space, a ' ' standing for the segment's first char (RobertaTokenizerFast).
  const bool prefix = opt_.add_prefix_space && seg[0] != U' ';
  if (prefix) seg.insert(seg.begin(), U' ');
  std::string bytes;
  std::vector<std::pair<uint32_t, uint32_t>> byte_span;  // per byte: char span in `chars`
  for (auto [ps, pe] : pretokenize(seg)) {
    bytes.clear();
    byte_span.clear();
    for (size_t k = ps; k < pe; ++k) {
      unicode::append_utf8(bytes, seg[k]);
      if constexpr (Sink::kWantsOffsets) {
        const size_t orig = begin + (prefix ? (k == 0 ? 0 : k - 1) : k);
        byte_span.resize(bytes.size(), {static_cast<uint32_t>(orig), static_cast<uint32_t>(orig + 1)});
      }
    }
    size_t at = 0;
    for (const Piece& p : bpe(bytes)) {
      size_t s0 = 0, s1 = 0;
      if constexpr (Sink::kWantsOffsets) {
        s0 = byte_span[at].first;
        s1 = byte_span[at + p.nbytes - 1].second;
        if (opt_.trim_offsets) {
          size_t lead = 0, trail = 0;
          while (lead < p.nbytes && bytes[at + lead] == ' ') ++lead;
          while (trail < p.nbytes && bytes[at + p.nbytes - 1 - trail] == ' ') ++trail;
          if (lead > 0) {
            const bool is_first = token_index == 0 || s0 == 0;
            if (is_first && opt_.add_prefix_space && lead == 1) lead = 0;
            s0 = std::min(s0 + lead, s1);
          }
          if (trail > 0 && s1 >= trail) s1 = std::max(s1 - trail, s0);
        }
      }
      sink.emit(p.id, s0, s1);
      ++token_index;
      at += p.nbytes;
    }
  }
}

template <class Sink>
void BpeTokenizer::run(const std::string& text, Sink& sink) const {
  const std::u32string chars = unicode::decode_utf8(text);
  const size_t n = chars.size();
  size_t token_index = 0;
  if (added_.empty()) {
    run_segment(chars, 0, n, token_index, sink);
    return;
  }
  // Added tokens are matched on the code points (the same as matching the UTF-8 bytes).
  size_t seg_start = 0, pos = 0;
  while (pos < n) {
    const char32_t c = chars[pos];
    const AddedToken* match = nullptr;
    size_t match_len = 0;
    if (c >= 0x80 || added_first_byte_[c]) {
      for (size_t k = 0; k < added_.size(); ++k) {  // longest first
        const std::u32string& t = added_cps_[k];
        if (!t.empty() && chars.compare(pos, t.size(), t) == 0) {
          match = &added_[k];
          match_len = t.size();
          break;
        }
      }
    }
    if (!match) {
      ++pos;
      continue;
    }
    size_t start = pos, stop = pos + match_len;
    if (match->lstrip)
      while (start > seg_start && unicode::is_python_space(chars[start - 1])) --start;
    if (match->rstrip)
      while (stop < n && unicode::is_python_space(chars[stop])) ++stop;
    run_segment(chars, seg_start, start, token_index, sink);
    sink.emit(match->id, start, stop);
    ++token_index;
    pos = seg_start = stop;
  }
  run_segment(chars, seg_start, n, token_index, sink);
}

std::vector<std::string> BpeTokenizer::tokenize(const std::string& text) const {
  std::vector<std::string> out;
  TokenSink sink{&out, this};
  run(text, sink);
  return out;
}

std::vector<int64_t> BpeTokenizer::tokenize_to_ids(const std::string& text) const {
  std::vector<int64_t> out;
  IdSink sink{&out};
  run(text, sink);
  return out;
}

std::vector<Token> BpeTokenizer::tokenize_with_offsets(const std::string& text) const {
  std::vector<Token> out;
  OffsetSink sink{&out, this};
  run(text, sink);
  return out;
}

Encoding BpeTokenizer::encode(const std::string& a, const std::string* b, size_t max_length) const {
  std::vector<int64_t> ids_a = tokenize_to_ids(a), ids_b;
  if (b) ids_b = tokenize_to_ids(*b);
  // <s> a </s></s> b </s>: a pair carries 4 special tokens, all of token type 0.
  detail::truncate_longest_first(ids_a, b ? &ids_b : nullptr, b ? 4 : 2, max_length);
  return encode_ids(ids_a, b ? &ids_b : nullptr);
}

Encoding BpeTokenizer::encode_ids(const std::vector<int64_t>& a, const std::vector<int64_t>* b) const {
  return detail::wrap_with_specials(cls_id_, sep_id_, a, b, /*double_sep=*/true, /*b_type=*/0);
}

// ---------------------------------------------------------------------------------------------
// lookups

int64_t BpeTokenizer::find_id(const std::string& t) const {
  auto it = token_to_id_.find(t);
  return it == token_to_id_.end() ? -1 : it->second;
}
int64_t BpeTokenizer::token_to_id(const std::string& t) const {
  const int64_t id = find_id(t);
  return id >= 0 ? id : unk_id_;
}
bool BpeTokenizer::has_token(const std::string& t) const { return find_id(t) >= 0; }
const std::string& BpeTokenizer::id_to_token(int64_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= id_to_token_.size()) return opt_.unk_token;
  return id_to_token_[static_cast<size_t>(id)];
}
int64_t BpeTokenizer::mask_id() const {
  if (mask_id_ < 0) throw TokenizerError("mask token '" + opt_.mask_token + "' is not in the vocabulary");
  return mask_id_;
}

// ---------------------------------------------------------------------------------------------
// construction

void BpeTokenizer::set_token(const std::string& tok, int64_t id) {
  if (static_cast<size_t>(id) >= id_to_token_.size()) {
    id_to_token_.resize(static_cast<size_t>(id) + 1);
    in_model_vocab_.resize(static_cast<size_t>(id) + 1, false);
  }
  id_to_token_[static_cast<size_t>(id)] = tok;
  token_to_id_[tok] = id;
}

void BpeTokenizer::add_merge(const std::string& left, const std::string& right, const std::string& source,
                             size_t line) {
  auto where = [&] { return source + "'" + (line ? " line " + std::to_string(line) : std::string()); };
  const int64_t l = find_id(left), r = find_id(right), res = find_id(left + right);
  if (l < 0 || r < 0 || res < 0) {
    const std::string& missing = l < 0 ? left : r < 0 ? right : left + right;
    throw TokenizerError("merges of '" + where() + ": merge '" + left + " " + right + "' uses '" + missing +
                         "', which is not in the vocabulary");
  }
  const uint64_t key = static_cast<uint64_t>(l) << 32 | static_cast<uint64_t>(r);
  // A merge listed twice keeps its last rank, as HF's dict(zip(merges, range(len(merges)))).
  merge_map_[key] = MergeInfo{static_cast<uint32_t>(merges_.size()), res};
  merges_.emplace_back(left, right);
}

void BpeTokenizer::finalize(const std::string& source) {
  cache_ = std::make_shared<Cache>();
  auto need = [&](const std::string& name, const char* what) {
    const int64_t id = find_id(name);
    if (id < 0) throw TokenizerError(std::string(what) + " token '" + name + "' is not in the vocabulary of '" + source + "'");
    return id;
  };
  unk_id_ = need(opt_.unk_token, "unknown");
  bos_id_ = need(opt_.bos_token, "BOS");
  eos_id_ = need(opt_.eos_token, "EOS");
  cls_id_ = need(opt_.cls_token, "CLS");
  sep_id_ = need(opt_.sep_token, "SEP");
  pad_id_ = need(opt_.pad_token, "pad");
  mask_id_ = find_id(opt_.mask_token);
  for (size_t i = 0; i < id_to_token_.size(); ++i) {
    if (!unicode::is_valid_utf8(id_to_token_[i])) throw TokenizerError("vocabulary of '" + source + "' has a token that is not valid UTF-8");
  }
  const ByteTable& bt = byte_table();
  for (int b = 0; b < 256; ++b) byte_id_[b] = find_id(bt.utf8[b]);

  // Added tokens: the explicit ones, then every special token that is in the vocabulary (HF's
  // all_special_tokens are never split).
  std::vector<AddedToken> added;
  auto add = [&](const AddedToken& t) {
    if (t.content.empty()) return;
    for (const auto& x : added)
      if (x.content == t.content) return;
    added.push_back(t);
  };
  for (const auto& t : opt_.added_tokens) add(AddedToken{t.content, find_id(t.content), t.lstrip, t.rstrip});
  if (mask_id_ >= 0) add(AddedToken{opt_.mask_token, mask_id_, opt_.mask_lstrip, false});
  for (const std::string* t : {&opt_.bos_token, &opt_.eos_token, &opt_.unk_token, &opt_.sep_token, &opt_.pad_token,
                               &opt_.cls_token})
    add(AddedToken{*t, find_id(*t), false, false});
  sort_longest_first(added);
  added_ = std::move(added);
  added_cps_.clear();
  for (const auto& a : added_) added_cps_.push_back(unicode::decode_utf8(a.content));
  std::fill(std::begin(added_first_byte_), std::end(added_first_byte_), false);
  for (const auto& t : added_) added_first_byte_[static_cast<unsigned char>(t.content[0])] = true;
}

namespace {

// Places the explicit added tokens of `opt` (ids -1: the next free id) into the tokenizer's table.
template <class SetToken>
void place_added_tokens(BpeTokenizerOptions& opt, size_t& next_id, SetToken&& set_token, const std::string& source) {
  const int64_t limit = id_limit(next_id + opt.added_tokens.size());
  for (auto& t : opt.added_tokens) {
    if (t.content.empty()) throw TokenizerError("added token with empty content in '" + source + "'");
    if (t.id < 0) t.id = static_cast<int64_t>(next_id);
    if (t.id >= limit)
      throw TokenizerError("added token '" + t.content + "' of '" + source + "' has the id " + std::to_string(t.id) +
                           ", too far past the vocabulary (ids must stay below " + std::to_string(limit) + ")");
    set_token(t.content, t.id);
    next_id = std::max(next_id, static_cast<size_t>(t.id) + 1);
  }
}

}  // namespace

BpeTokenizer BpeTokenizer::from_files(const std::string& vocab_json, const std::string& merges_txt, Options opt) {
  BpeTokenizer tok;
  tok.opt_ = std::move(opt);
  // vocab.json
  const json vocab = parse_json_file(vocab_json, "vocab file");
  if (!vocab.is_object()) throw TokenizerError("vocab file '" + vocab_json + "' is not a JSON object of token -> id");
  if (vocab.empty()) throw TokenizerError("vocab file '" + vocab_json + "' is empty");
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    if (!it.value().is_number_integer())
      throw TokenizerError("vocab file '" + vocab_json + "': the id of '" + it.key() + "' is not an integer");
    const int64_t id = it.value().get<int64_t>();
    if (id < 0 || id >= id_limit(vocab.size()))
      throw TokenizerError("vocab file '" + vocab_json + "': the id " + std::to_string(id) + " of '" + it.key() +
                           "' is out of range (0 to " + std::to_string(id_limit(vocab.size()) - 1) + " for " +
                           std::to_string(vocab.size()) + " tokens)");
    tok.set_token(it.key(), id);
    tok.in_model_vocab_[static_cast<size_t>(id)] = true;
  }
  // merges.txt
  std::string data = read_file_bytes(merges_txt, "merges file");
  if (data.size() >= 3 && data.compare(0, 3, "\xEF\xBB\xBF") == 0) data.erase(0, 3);
  if (!unicode::is_valid_utf8(data)) throw TokenizerError("merges file '" + merges_txt + "' is not valid UTF-8");
  size_t start = 0, line_no = 0;
  bool header = false;
  while (start < data.size()) {
    size_t end = data.find('\n', start);
    if (end == std::string::npos) end = data.size();
    std::string line = data.substr(start, end - start);
    start = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line_no == 1) {
      if (line.rfind("#version", 0) != 0) {
        throw TokenizerError("merges file '" + merges_txt +
                             "' does not start with a \"#version\" header line (Hugging Face skips the first line of "
                             "merges.txt, so a file without it would silently lose its first merge)");
      }
      header = true;
      continue;
    }
    if (line.find_first_not_of(" \t") == std::string::npos) continue;  // blank
    const size_t sp = line.find(' ');
    if (sp == 0 || sp == std::string::npos || sp + 1 == line.size() || line.find(' ', sp + 1) != std::string::npos) {
      throw TokenizerError("merges file '" + merges_txt + "' line " + std::to_string(line_no) +
                           ": expected two tokens separated by one space, got '" + line + "'");
    }
    tok.add_merge(line.substr(0, sp), line.substr(sp + 1), merges_txt, line_no);
  }
  if (!header) throw TokenizerError("merges file '" + merges_txt + "' is empty");
  size_t next_id = tok.id_to_token_.size();
  place_added_tokens(tok.opt_, next_id, [&](const std::string& c, int64_t id) { tok.set_token(c, id); }, merges_txt);
  tok.finalize(vocab_json);
  return tok;
}

BpeTokenizer BpeTokenizer::from_tokenizer_json(const std::string& path, std::optional<bool> add_prefix_space,
                                               std::optional<bool> trim_offsets) {
  const json j = parse_json_file(path, "tokenizer file");
  auto fail = [&](const std::string& msg) { return TokenizerError("tokenizer file '" + path + "': " + msg); };
  if (!j.is_object()) throw fail("top level is not a JSON object");
  try {
    auto mit = j.find("model");
    if (mit == j.end() || !mit->is_object()) throw fail("no \"model\" object");
    const json& model = *mit;
    const std::string type = model.value("type", std::string());
    if (type != "BPE") throw fail("model type '" + type + "' is not supported by BpeTokenizer (need BPE)");
    if (model.contains("dropout") && !model["dropout"].is_null()) throw fail("BPE dropout is not supported");
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
      if (model.contains(key) && !model[key].is_null() && model[key] != "") throw fail(std::string(key) + " is not supported");
    }
    if (model.value("byte_fallback", false)) throw fail("byte_fallback is not supported");
    auto nit = j.find("normalizer");
    if (nit != j.end() && !nit->is_null()) throw fail("a normalizer is not supported (byte-level BPE has none)");

    BpeTokenizer tok;
    Options& opt = tok.opt_;
    auto pit = j.find("pre_tokenizer");
    if (pit == j.end() || !pit->is_object() || pit->value("type", std::string()) != "ByteLevel")
      throw fail("the pre_tokenizer must be ByteLevel");
    if (!pit->value("use_regex", true)) throw fail("ByteLevel use_regex=false is not supported");
    opt.add_prefix_space = pit->value("add_prefix_space", false);
    auto ppit = j.find("post_processor");
    if (ppit != j.end() && ppit->is_object()) {
      const std::string pptype = ppit->value("type", std::string());
      if (pptype == "RobertaProcessing" || pptype == "BertProcessing") {
        if (ppit->contains("cls") && (*ppit)["cls"].is_array() && !(*ppit)["cls"].empty())
          opt.cls_token = opt.bos_token = (*ppit)["cls"][0].get<std::string>();
        if (ppit->contains("sep") && (*ppit)["sep"].is_array() && !(*ppit)["sep"].empty())
          opt.sep_token = opt.eos_token = (*ppit)["sep"][0].get<std::string>();
        opt.trim_offsets = ppit->value("trim_offsets", true);
      } else if (pptype == "ByteLevel") {
        opt.trim_offsets = ppit->value("trim_offsets", true);
      } else if (pptype == "TemplateProcessing") {
        std::vector<std::string> specials;
        if (ppit->contains("single") && (*ppit)["single"].is_array())
          for (const auto& piece : (*ppit)["single"])
            if (piece.contains("SpecialToken")) specials.push_back(piece["SpecialToken"].value("id", std::string()));
        if (specials.size() >= 2) {
          opt.cls_token = opt.bos_token = specials.front();
          opt.sep_token = opt.eos_token = specials.back();
        }
        opt.trim_offsets = false;
      } else {
        throw fail("post_processor type '" + pptype + "' is not supported");
      }
    } else {
      opt.trim_offsets = false;  // no post-processor: offsets are not trimmed
    }
    if (model.contains("unk_token") && model["unk_token"].is_string()) opt.unk_token = model["unk_token"].get<std::string>();
    auto padit = j.find("padding");
    if (padit != j.end() && padit->is_object() && padit->contains("pad_token") && (*padit)["pad_token"].is_string())
      opt.pad_token = (*padit)["pad_token"].get<std::string>();
    if (add_prefix_space) opt.add_prefix_space = *add_prefix_space;
    if (trim_offsets) opt.trim_offsets = *trim_offsets;

    auto vit = model.find("vocab");
    if (vit == model.end() || !vit->is_object() || vit->empty()) throw fail("model.vocab is missing or empty");
    for (auto it = vit->begin(); it != vit->end(); ++it) {
      if (!it.value().is_number_integer()) throw fail("model.vocab entry '" + it.key() + "' has a non-integer id");
      const int64_t id = it.value().get<int64_t>();
      if (id < 0 || id >= id_limit(vit->size()))
        throw fail("model.vocab id " + std::to_string(id) + " is out of range (0 to " +
                   std::to_string(id_limit(vit->size()) - 1) + " for " + std::to_string(vit->size()) + " tokens)");
      tok.set_token(it.key(), id);
      tok.in_model_vocab_[static_cast<size_t>(id)] = true;
    }
    auto mgit = model.find("merges");
    if (mgit == model.end() || !mgit->is_array()) throw fail("model.merges is missing");
    size_t k = 0;
    for (const auto& m : *mgit) {
      ++k;
      std::string left, right;
      if (m.is_string()) {
        const std::string s = m.get<std::string>();
        const size_t sp = s.find(' ');
        if (sp == 0 || sp == std::string::npos || sp + 1 == s.size() || s.find(' ', sp + 1) != std::string::npos)
          throw fail("merge " + std::to_string(k) + " '" + s + "' is not two tokens separated by one space");
        left = s.substr(0, sp);
        right = s.substr(sp + 1);
      } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
        left = m[0].get<std::string>();
        right = m[1].get<std::string>();
        if (left.empty() || right.empty()) throw fail("merge " + std::to_string(k) + " has an empty part");
      } else {
        throw fail("merge " + std::to_string(k) + " is neither \"a b\" nor [\"a\", \"b\"]");
      }
      tok.add_merge(left, right, path, 0);
    }
    auto ait = j.find("added_tokens");
    if (ait != j.end() && ait->is_array()) {
      for (const auto& at : *ait) {
        AddedToken t;
        t.content = at.at("content").get<std::string>();
        t.id = at.at("id").get<int64_t>();
        if (t.id < 0) throw fail("added token '" + t.content + "' has a negative id");
        t.lstrip = at.value("lstrip", false);
        t.rstrip = at.value("rstrip", false);
        if (t.content == opt.mask_token) opt.mask_lstrip = t.lstrip;
        opt.added_tokens.push_back(std::move(t));
      }
    }
    size_t next_id = tok.id_to_token_.size();
    place_added_tokens(opt, next_id, [&](const std::string& c, int64_t id) { tok.set_token(c, id); }, path);
    tok.finalize(path);
    return tok;
  } catch (const json::exception& e) {
    throw fail(std::string("unexpected structure: ") + e.what());
  }
}

BpeTokenizer BpeTokenizer::from_model_dir(const std::string& dir) {
  const fs::path d(dir);
  std::error_code ec;
  if (!fs::is_directory(d, ec)) throw TokenizerError("tokenizer directory '" + dir + "' does not exist");
  const fs::path cfg_path = d / "tokenizer_config.json", tj = d / "tokenizer.json", added_path = d / "added_tokens.json";
  const json cfg = detail::read_tokenizer_config(dir);
  auto bool_setting = [&](const char* key) { return detail::bool_setting(cfg, key, cfg_path.string()); };
  if (fs::exists(tj, ec)) return from_tokenizer_json(tj.string(), bool_setting("add_prefix_space"), bool_setting("trim_offsets"));
  Options opt;
  if (auto v = bool_setting("add_prefix_space")) opt.add_prefix_space = *v;
  if (auto v = bool_setting("trim_offsets")) opt.trim_offsets = *v;
  struct Key {
    const char* key;
    std::string* field;
  } keys[] = {{"bos_token", &opt.bos_token}, {"eos_token", &opt.eos_token}, {"cls_token", &opt.cls_token},
              {"sep_token", &opt.sep_token}, {"unk_token", &opt.unk_token}, {"pad_token", &opt.pad_token},
              {"mask_token", &opt.mask_token}};
  for (const auto& k : keys)
    if (auto t = detail::token_setting(cfg, k.key)) *k.field = *t;
  auto mk = cfg.find("mask_token");
  if (mk != cfg.end() && mk->is_object() && mk->contains("lstrip") && (*mk)["lstrip"].is_boolean())
    opt.mask_lstrip = (*mk)["lstrip"].get<bool>();
  if (fs::exists(added_path, ec)) {
    const json added = parse_json_file(added_path.string(), "added tokens file");
    if (!added.is_object()) throw TokenizerError("added tokens file '" + added_path.string() + "' is not a JSON object");
    for (auto it = added.begin(); it != added.end(); ++it) {
      if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0)
        throw TokenizerError("added tokens file '" + added_path.string() + "': the id of '" + it.key() + "' is not a non-negative integer");
      AddedToken t{it.key(), it.value().get<int64_t>(), it.key() == opt.mask_token && opt.mask_lstrip, false};
      opt.added_tokens.push_back(std::move(t));
    }
  }
  return from_files((d / "vocab.json").string(), (d / "merges.txt").string(), std::move(opt));
}

// ---------------------------------------------------------------------------------------------
// saving

void BpeTokenizer::save(const std::string& dir) const {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (!fs::is_directory(dir, ec)) throw TokenizerError("cannot create tokenizer directory '" + dir + "'");
  const fs::path d(dir);

  json vocab = json::object();  // std::map: keys sorted by UTF-8 bytes = by code point (sort_keys=True)
  json added = json::object();
  for (size_t id = 0; id < id_to_token_.size(); ++id) {
    const std::string& t = id_to_token_[id];
    if (t.empty() && !in_model_vocab_[id]) continue;  // an id nobody uses
    if (token_to_id_.at(t) != static_cast<int64_t>(id)) continue;  // shadowed by a later entry
    if (in_model_vocab_[id]) vocab[t] = id;
    else added[t] = id;
  }
  std::string merges = "#version: 0.2\n";
  for (const auto& [l, r] : merges_) {
    if (l.find_first_of(" \n\r") != std::string::npos || r.find_first_of(" \n\r") != std::string::npos)
      throw TokenizerError("cannot save merges to '" + (d / "merges.txt").string() + "': a merge part contains a space or line break");
    merges += l + " " + r + "\n";
  }
  auto special = [&](const std::string& t, bool lstrip) -> json {
    if (!lstrip) return t;
    return json{{"content", t}, {"lstrip", true}, {"normalized", false}, {"rstrip", false}, {"single_word", false}};
  };
  json cfg = {{"tokenizer_class", "RobertaTokenizer"},
              {"add_prefix_space", opt_.add_prefix_space},
              {"trim_offsets", opt_.trim_offsets},
              {"errors", "replace"},
              {"model_max_length", 512},
              {"bos_token", opt_.bos_token},
              {"eos_token", opt_.eos_token},
              {"sep_token", opt_.sep_token},
              {"cls_token", opt_.cls_token},
              {"unk_token", opt_.unk_token},
              {"pad_token", opt_.pad_token}};
  json map = {{"bos_token", opt_.bos_token}, {"eos_token", opt_.eos_token}, {"sep_token", opt_.sep_token},
              {"cls_token", opt_.cls_token}, {"unk_token", opt_.unk_token}, {"pad_token", opt_.pad_token}};
  if (mask_id_ >= 0) {
    // Plain in tokenizer_config.json (RobertaTokenizer itself makes it AddedToken(lstrip=True)); the
    // full AddedToken form in special_tokens_map.json, which transformers reads as such.
    cfg["mask_token"] = opt_.mask_token;
    map["mask_token"] = special(opt_.mask_token, opt_.mask_lstrip);
  }
  detail::write_file_atomically((d / "vocab.json").string(), vocab.dump(2) + "\n", "vocab file");
  detail::write_file_atomically((d / "merges.txt").string(), merges, "merges file");
  detail::write_file_atomically((d / "tokenizer_config.json").string(), cfg.dump(2) + "\n", "tokenizer config");
  detail::write_file_atomically((d / "special_tokens_map.json").string(), map.dump(2) + "\n", "special tokens map");
  const fs::path added_path = d / "added_tokens.json";
  if (!added.empty()) {
    detail::write_file_atomically(added_path.string(), added.dump(2) + "\n", "added tokens file");
  } else {
    fs::remove(added_path, ec);  // a stale one would add tokens on reload
  }
}

}  // namespace lorakit::text
