#pragma once
// SentencePiece-unigram tokenizer of USE-lite (vocab.json: a JSON array of [piece, score] pairs; id =
// index), reproducing the JavaScript reference exactly: the Tokenizer of @energetic-ai/embeddings
// 0.2.0 (identical to tfjs-models' universal-sentence-encoder tokenizer). Its algorithm, quirks
// included:
//   * normalise: NFKC; then, if the result is non-empty, prefix U+2581 '▁' and replace every
//     U+0020 space by '▁' (only U+0020: tabs, newlines etc. stay as they are). No lowercasing, no
//     whitespace collapsing ("a  b" -> "▁a▁▁b").
//   * pieces: ids >= 6 are matchable (0 = unknown '�', 1-5 = <s>, </s>, extra_token_id_1..3 are
//     reserved); a piece listed twice matches with its last id. A null score counts as 0.
//   * Viterbi over code points: at each start position, every piece that prefixes the rest is a
//     candidate; if none does, the single code point is a candidate with id 0 and score 0. For each
//     end position, candidates are scanned by ascending start, and one replaces the best so far when
//     `best[end] == 0 || score >= best[end]` (so a later candidate wins ties, and a running best of
//     exactly 0 is always replaced). Positions nobody reaches keep best 0 and id 0.
//   * backtrack from the end, stepping back by the chosen piece's length in UTF-16 code units (for id
//     0 that is the length of piece 0); consecutive unknowns (id 0) are merged into one.
// Invalid UTF-8 never throws: each ill-formed sequence becomes U+FFFD (then unknown).
//
// encode(): no special tokens (the model has none). A single sentence gives its ids; a pair gives
// ids(a) followed by ids(b) — each sentence normalised separately, so b starts with its own '▁'
// piece, which is what encoding "a b" would give up to the piece at the seam — with token_type 0 for
// a and 1 for b. max_length > 0 truncates (single: keep the first max_length ids; pair: HF
// "longest_first", one id at a time off the end of the longer sequence, off b on a tie);
// max_length == 0 means no truncation (USE-lite itself only looks at the first 128 positions).
// pad_id() is 0: the model ignores padded positions through the attention mask.
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "text/tokenizer.h"

namespace lorakit::text {

class UnigramTokenizer : public Tokenizer {
 public:
  struct Piece {
    std::string text;  // UTF-8
    double score = 0;  // null -> 0
  };

  // vocab.json as shipped with USE-lite: [[piece, score|null], ...]. Throws TokenizerError naming the
  // file if it is missing, not JSON, not such an array, or has fewer than reserved_count + 1 entries.
  static UnigramTokenizer from_vocab_json(const std::string& path, size_t reserved_count = 6);
  // From pieces in id order (tests, other sources).
  static UnigramTokenizer from_pieces(std::vector<Piece> pieces, size_t reserved_count = 6,
                                      const std::string& source = "<pieces>");
  // <dir>/vocab.json.
  static UnigramTokenizer from_model_dir(const std::string& dir);
  // True when `path` is a JSON array whose first entry is a [string, number|null] pair (tells a
  // USE-lite vocab.json from a RoBERTa/GPT-2 one, which is an object). Never throws.
  static bool is_unigram_vocab_json(const std::string& path);

  // The normalised code points the Viterbi runs on (NFKC, '▁' prefix and spaces).
  static std::u32string normalize(const std::string& text);

  std::vector<int64_t> tokenize_to_ids(const std::string& text) const;
  // The pieces of tokenize_to_ids (the unknown id gives piece 0's text, '�').
  std::vector<std::string> tokenize(const std::string& text) const;

  // Offsets: code points of `text`; a leading "▁" piece's span starts at the text's first char.
  std::vector<Token> tokenize_with_offsets(const std::string& text) const override;

  Encoding encode(const std::string& a, const std::string* b, size_t max_length) const override;
  Encoding encode_ids(const std::vector<int64_t>& a, const std::vector<int64_t>* b) const override;
  int64_t pad_id() const override { return 0; }
  size_t vocab_size() const override { return pieces_.size(); }
  int64_t unk_id() const { return 0; }
  const Piece& piece(int64_t id) const;  // throws TokenizerError if out of range
  // The id a piece text is matched with (last duplicate), or -1 (reserved pieces are not matched).
  int64_t piece_to_id(const std::string& text) const;

 private:
  UnigramTokenizer() = default;
  void build(const std::string& source);
  struct Located {
    int64_t id;
    size_t start, end;  // chars [start, end) of the normalised text
  };
  std::vector<Located> viterbi(const std::u32string& sym) const;
  static std::vector<std::pair<size_t, size_t>> normalize_spans(const std::string& text, const std::u32string& sym);

  struct Node {
    std::unordered_map<char32_t, int32_t> children;
    int64_t id = -1;  // piece ending here (matchable), -1 if none
  };
  std::vector<Piece> pieces_;
  std::vector<int64_t> utf16_len_;  // per id
  size_t reserved_ = 6;
  std::vector<Node> trie_;          // trie_[0] is the root
};

}  // namespace lorakit::text
