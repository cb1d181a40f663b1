#pragma once
// Byte-level BPE tokenizer of RoBERTa / GPT-2 (standard library, nlohmann/json and utf8proc only).
//
// BpeTokenizer reproduces Hugging Face's RobertaTokenizer / RobertaTokenizerFast (roberta-base
// settings: add_prefix_space false, trim_offsets true):
//   * added tokens (<s>, </s>, <pad>, <unk>, <mask> and tokenizer.json / added_tokens.json ones)
//     written literally in the text are kept as single tokens (matched case-sensitively on the raw
//     text, leftmost then longest). A token with lstrip (RoBERTa's <mask>) also takes the whitespace
//     (Python str.isspace) right before it, one with rstrip the whitespace right after it;
//   * each remaining segment is split with GPT-2's pre-tokenization regex
//       's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//     (evaluated by hand over code points: \p{L} / \p{N} are the utf8proc categories L* / N*, \s is
//     Unicode White_Space, as in the `regex` module and Oniguruma);
//   * every piece's UTF-8 bytes are mapped through GPT-2's bytes_to_unicode table and merged by
//     GPT-2's BPE: repeatedly, the adjacent pair with the lowest merge rank is merged at all of its
//     (non-overlapping, left to right) occurrences, until no adjacent pair has a rank. Pieces are
//     cached. A symbol missing from the vocabulary (impossible with roberta-base) gives the unk id.
//   * add_prefix_space (false by default) prepends ' ' to every segment that does not start with
//     one, as RobertaTokenizerFast's ByteLevel pre-tokenizer does.
// Invalid UTF-8 in the text to tokenize never throws: each ill-formed sequence becomes U+FFFD.
//
// encode(): single <s> a </s>; pair <s> a </s></s> b </s>; token_type_ids all 0 (RoBERTa has a single
// token type). Truncation as the Tokenizer interface documents ("longest_first"), except that a pair
// carries 4 special tokens: max_length below 2 (single) or 4 (pair) throws TokenizerError.
//
// Offsets (tokenize_with_offsets): code points of the original text, as RobertaTokenizerFast's
// offset_mapping with trim_offsets=true: a token covers the characters its bytes came from (a token
// holding part of a multi-byte character covers that whole character), minus its leading and
// trailing 'Ġ' (space) bytes — start = min(start + leading, end), end = max(end - trailing, start) —
// except a single leading space on a sequence's first token when add_prefix_space is on. An added
// token with lstrip/rstrip covers the whitespace it took.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "text/tokenizer.h"

namespace lorakit::text {

// An added token: matched literally in the raw text, never split, with its own id.
struct AddedToken {
  std::string content;
  int64_t id = -1;
  bool lstrip = false, rstrip = false;
};

struct BpeTokenizerOptions {
  bool add_prefix_space = false;
  bool trim_offsets = true;
  std::string bos_token = "<s>", eos_token = "</s>", cls_token = "<s>", sep_token = "</s>", unk_token = "<unk>",
              pad_token = "<pad>", mask_token = "<mask>";
  bool mask_lstrip = true;  // RoBERTa's <mask> is AddedToken(lstrip=True)
  // Tokens beyond the vocabulary (added_tokens.json / tokenizer.json "added_tokens"); one whose id
  // is -1 gets the next free id.
  std::vector<AddedToken> added_tokens;
};

class BpeTokenizer : public Tokenizer {
 public:
  using Options = BpeTokenizerOptions;

  // vocab.json (a JSON object token -> id) and merges.txt (a "#version" header line, then one merge
  // "left right" per line in rank order; blank lines are skipped). Throws TokenizerError naming the
  // file when a file is missing or unreadable, vocab.json is not valid JSON or not an object of
  // string -> non-negative integer, merges.txt lacks the header or has a line that is not two
  // space-separated parts, a merge's parts or result are not in the vocabulary, or one of the
  // required special tokens (bos/cls, eos/sep, pad, unk) is absent.
  static BpeTokenizer from_files(const std::string& vocab_json, const std::string& merges_txt, Options opt = {});
  // HF tokenizer.json with model.type "BPE" (no dropout, no subword prefix/suffix), a null
  // normalizer, a ByteLevel pre-tokenizer and RobertaProcessing / ByteLevel / TemplateProcessing
  // post-processor. Its merges may be "a b" strings or [a, b] pairs; no "#version" header there.
  // add_prefix_space / trim_offsets, when set, override the file's (tokenizer_config.json settings).
  static BpeTokenizer from_tokenizer_json(const std::string& path, std::optional<bool> add_prefix_space = std::nullopt,
                                          std::optional<bool> trim_offsets = std::nullopt);
  // <dir>/tokenizer.json (BPE), else <dir>/vocab.json + <dir>/merges.txt; tokenizer_config.json's
  // add_prefix_space, trim_offsets and special tokens and added_tokens.json are honoured.
  static BpeTokenizer from_model_dir(const std::string& dir);

  std::vector<std::string> tokenize(const std::string& text) const;  // byte-level token strings
  std::vector<int64_t> tokenize_to_ids(const std::string& text) const;
  std::vector<Token> tokenize_with_offsets(const std::string& text) const override;
  std::vector<Token> special_prefix() const override { return {Token{cls_id_, opt_.cls_token, 0, 0}}; }
  std::vector<Token> special_suffix() const override { return {Token{sep_id_, opt_.sep_token, 0, 0}}; }

  Encoding encode(const std::string& a, const std::string* b, size_t max_length) const override;
  Encoding encode_ids(const std::vector<int64_t>& a, const std::vector<int64_t>* b) const override;
  int64_t pad_id() const override { return pad_id_; }
  // Max id + 1 over the vocabulary and the added tokens (50265 for roberta-base).
  size_t vocab_size() const override { return id_to_token_.size(); }
  int64_t unk_id() const { return unk_id_; }
  int64_t cls_id() const { return cls_id_; }
  int64_t sep_id() const { return sep_id_; }
  int64_t bos_id() const { return bos_id_; }
  int64_t eos_id() const { return eos_id_; }
  int64_t mask_id() const;  // throws TokenizerError if there is no mask token
  int64_t token_to_id(const std::string& t) const;  // unk id if absent
  const std::string& id_to_token(int64_t id) const;  // the unk token for an unknown id
  bool has_token(const std::string& t) const;
  size_t num_merges() const { return merges_.size(); }
  const Options& options() const { return opt_; }

  // Writes <dir>/vocab.json (sorted keys, as HF's save_vocabulary), merges.txt ("#version: 0.2"
  // header), tokenizer_config.json (tokenizer_class RobertaTokenizer), special_tokens_map.json and,
  // when some added tokens lie outside vocab.json, added_tokens.json. Creates <dir>. Files are
  // written atomically (temp file + rename). Throws TokenizerError on failure.
  void save(const std::string& dir) const;

  // Segments GPT-2's pre-tokenization regex gives for `text` (no added-token handling), as [begin,
  // end) code-point ranges. Exposed for tests.
  static std::vector<std::pair<size_t, size_t>> pretokenize(const std::u32string& text);

 private:
  BpeTokenizer() = default;
  void set_token(const std::string& tok, int64_t id);
  void add_merge(const std::string& left, const std::string& right, const std::string& source, size_t line);
  void finalize(const std::string& source);

  struct Piece {  // one BPE token of a pre-token
    int64_t id;
    uint32_t nbytes;
  };
  // BPE of one pre-token's bytes (cached).
  std::vector<Piece> bpe(const std::string& bytes) const;
  std::vector<Piece> bpe_uncached(const std::string& bytes) const;
  template <class Sink>
  void run(const std::string& text, Sink& sink) const;
  template <class Sink>
  void run_segment(const std::u32string& chars, size_t begin, size_t end, size_t& token_index, Sink& sink) const;
  int64_t find_id(const std::string& t) const;  // -1 if absent

  Options opt_;
  std::vector<std::string> id_to_token_;
  std::unordered_map<std::string, int64_t> token_to_id_;
  std::vector<bool> in_model_vocab_;  // per id: from vocab.json / model.vocab (not an added token)
  int64_t byte_id_[256] = {};         // vocab id of each byte's symbol, -1 if absent
  struct MergeInfo {
    uint32_t rank;
    int64_t result;
  };
  std::unordered_map<uint64_t, MergeInfo> merge_map_;  // (left id << 32 | right id) -> rank, result
  std::vector<std::pair<std::string, std::string>> merges_;  // rank order (for save)
  std::vector<AddedToken> added_;  // literal matches, longest first
  std::vector<std::u32string> added_cps_;  // their code points
  bool added_first_byte_[256] = {};
  int64_t unk_id_ = -1, cls_id_ = -1, sep_id_ = -1, bos_id_ = -1, eos_id_ = -1, pad_id_ = -1, mask_id_ = -1;
  struct Cache;
  std::shared_ptr<Cache> cache_;
};

}  // namespace lorakit::text
