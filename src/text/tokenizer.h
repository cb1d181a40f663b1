#pragma once
// Tokenizers (standard library, nlohmann/json and utf8proc only; no LibTorch in src/text).
//
// BertTokenizer reproduces Hugging Face transformers' python BertTokenizer (BasicTokenizer +
// WordpieceTokenizer) and its encode(..., truncation="longest_first", max_length=N):
//   * special tokens ([CLS], [SEP], [PAD], [MASK], [UNK] and tokenizer.json added tokens) written
//     literally in the text are kept as single tokens (matched case-sensitively on the raw text,
//     leftmost then longest, like HF's added-token trie);
//   * clean text: drop U+0000, U+FFFD and every category C* character except \t \n \r; turn
//     whitespace (\t \n \r, space, category Zs) into ' ';
//   * pad each CJK ideograph (HF's _is_chinese_char ranges) with spaces;
//   * NFC (transformers >= 4.31), split on Python whitespace (str.split());
//   * per word: when lowercasing, lower-case char by char (the full Unicode lower-case mapping of each
//     char, as the `tokenizers` BertNormalizer does: no Python final-sigma rule, so 'Σ' is always 'σ'),
//     then (unless strip_accents == false) NFD and drop Mn; without lowercasing, NFD + drop Mn only if strip_accents == true;
//   * split off every punctuation character (ASCII 33-47, 58-64, 91-96, 123-126, category P*);
//   * WordPiece: greedy longest-match-first with "##" continuations; a word longer than
//     max_input_chars_per_word code points, or with no full segmentation, becomes one [UNK].
//
// Invalid UTF-8 in the text to tokenize never throws: each ill-formed byte sequence is decoded as
// U+FFFD (Python's errors="replace"), which the clean-text step then drops like HF does. Vocabulary
// and JSON files must be valid UTF-8 (TokenizerError otherwise).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/errors.h"  // header-only lorakit::Error (no LibTorch)

namespace lorakit::text {

// Every tokenizer failure (missing/unreadable/empty/invalid file, unsupported tokenizer.json,
// max_length too small, required special token absent). Derives from lorakit::Error, hence from
// std::runtime_error. Messages name the file involved.
struct TokenizerError : lorakit::Error {
  using lorakit::Error::Error;
};

// One token of a text: its id, its text (WordPiece "##" continuations included) and the code-point
// offsets [start, end) of the characters it came from in the original text (as Hugging Face's
// offset_mapping: a Python str index, not bytes). Special tokens added around a text have 0, 0.
struct Token {
  int64_t id = 0;
  std::string text;
  size_t start = 0, end = 0;
};

struct Encoding {
  std::vector<int64_t> input_ids, token_type_ids, attention_mask;  // attention_mask all 1 (no padding here)
  // Pairs: the index in input_ids of b's first token (where b's tokens would start if b is empty);
  // 0 for a single sequence.
  size_t b_begin = 0;
};

class Tokenizer {  // abstract; other tokenizers implement it
 public:
  virtual ~Tokenizer() = default;
  // Single sentence: [CLS] a [SEP]; pair: [CLS] a [SEP] b [SEP], token_type 0 for "[CLS] a [SEP]" and
  // 1 for "b [SEP]". Truncates to max_length tokens in all (specials included) with HF's
  // "longest_first": one token at a time off the end of the longer sequence, off b on a tie.
  // max_length == 0 means no truncation. A max_length smaller than the number of special tokens
  // (2 single, 3 pair; RoBERTa's BpeTokenizer: 2 single, 4 pair) throws TokenizerError.
  // BpeTokenizer (RoBERTa) differs: <s> a </s></s> b </s> with token_type_ids all 0.
  // Every tokenizer's encode() is: tokenize each text (the ids tokenize_with_offsets gives), truncate
  // (detail::truncate_longest_first), then encode_ids — one special-token layout per tokenizer.
  virtual Encoding encode(const std::string& a, const std::string* b, size_t max_length) const = 0;
  // The layout of encode() applied to already-tokenized ids (no truncation): b == nullptr is a
  // single sequence; sets b_begin for a pair.
  virtual Encoding encode_ids(const std::vector<int64_t>& a, const std::vector<int64_t>* b) const = 0;
  virtual int64_t pad_id() const = 0;
  virtual size_t vocab_size() const = 0;
  // The tokens of one text, without special tokens, with their offsets.
  virtual std::vector<Token> tokenize_with_offsets(const std::string& text) const = 0;
  // The special tokens encode() puts around a single text (BERT: [CLS] and [SEP]; none for USE-lite).
  virtual std::vector<Token> special_prefix() const { return {}; }
  virtual std::vector<Token> special_suffix() const { return {}; }
};

// BertTokenizer::Options (defined at namespace scope so it can be a default argument).
struct BertTokenizerOptions {
  bool do_lower_case = true;
  // HF's tri-state: unset (None) follows do_lower_case; true/false force accent stripping on/off.
  std::optional<bool> strip_accents;
  bool tokenize_chinese_chars = true;
  std::string unk_token = "[UNK]", cls_token = "[CLS]", sep_token = "[SEP]", pad_token = "[PAD]",
              mask_token = "[MASK]";
  size_t max_input_chars_per_word = 100;
  // Additions beyond HF's BertTokenizer arguments (defaults = HF behaviour):
  bool clean_text = true;       // tokenizers' BertNormalizer clean_text
  bool nfc = true;              // python BasicTokenizer's NFC step (tokenizer.json loads set false)
  bool split_on_punc = true;    // HF do_split_on_punc
  std::string continuing_subword_prefix = "##";
};

class BertTokenizer : public Tokenizer {
 public:
  using Options = BertTokenizerOptions;

  // vocab.txt: one token per line, id = line index. Lines end at \n, \r\n or \r (Python universal
  // newlines); a leading UTF-8 BOM is ignored. A token listed twice maps to its LAST line's id, as
  // in HF's load_vocab (a dict overwritten line by line).
  static BertTokenizer from_vocab_file(const std::string& path, Options opt = {});
  // HF tokenizer.json with model.type "WordPiece" and a BertNormalizer (or null) normalizer.
  static BertTokenizer from_tokenizer_json(const std::string& path);
  // Same, with tokenizer_config.json-style settings overriding the normalizer's (set ones only).
  struct NormalizerOverrides {
    std::optional<bool> do_lower_case;
    std::optional<std::optional<bool>> strip_accents;  // set to nullopt-inside = "None"
    std::optional<bool> tokenize_chinese_chars;
  };
  static BertTokenizer from_tokenizer_json(const std::string& path, const NormalizerOverrides& overrides);

  std::vector<std::string> tokenize(const std::string& text) const;
  std::vector<Token> tokenize_with_offsets(const std::string& text) const override;
  std::vector<Token> special_prefix() const override { return {Token{cls_id(), opt_.cls_token, 0, 0}}; }
  std::vector<Token> special_suffix() const override { return {Token{sep_id(), opt_.sep_token, 0, 0}}; }
  // Same tokenization, straight to ids.
  std::vector<int64_t> tokenize_to_ids(const std::string& text) const;
  std::vector<int64_t> convert_tokens_to_ids(const std::vector<std::string>& toks) const;
  int64_t token_to_id(const std::string& t) const;  // unk id if absent
  // Token text of `id`; the unk token for an id outside [0, vocab_size()).
  const std::string& id_to_token(int64_t id) const;
  std::vector<std::string> convert_ids_to_tokens(const std::vector<int64_t>& ids) const;
  // True when `t` is in the vocabulary (or an added token).
  bool has_token(const std::string& t) const;

  Encoding encode(const std::string& a, const std::string* b, size_t max_length) const override;
  Encoding encode_ids(const std::vector<int64_t>& a, const std::vector<int64_t>* b) const override;
  int64_t pad_id() const override;  // throws TokenizerError if the pad token is not in the vocab
  // Number of ids: the vocab file's line count (HF's len(vocab) would not count shadowed duplicates)
  // or, for tokenizer.json, max id + 1 over the vocab and added tokens.
  size_t vocab_size() const override;
  int64_t unk_id() const { return unk_id_; }
  int64_t cls_id() const;   // throws TokenizerError if absent
  int64_t sep_id() const;   // throws TokenizerError if absent
  int64_t mask_id() const;  // throws TokenizerError if absent
  const Options& options() const { return opt_; }

  // vocab.txt, one token per line in id order (ids without a token, possible only from a
  // tokenizer.json with gaps, are written as empty lines so every id keeps its line).
  void save_vocab(const std::string& path) const;

 private:
  BertTokenizer() = default;
  void finalize(const std::string& source);  // resolves special ids, checks unk, builds lookup tables
  void insert_token(const std::string& tok, int64_t id);  // later insertions override earlier ones
  void add_never_split(const std::string& tok);

  using Span = std::pair<size_t, size_t>;  // code-point offsets in the text being tokenized
  template <class Sink>
  void run(const std::string& text, Sink& sink) const;
  // `char_base`: code points of the text before `segment` (for offsets).
  template <class Sink>
  void basic_and_wordpiece(const std::string& segment, size_t char_base, Sink& sink) const;
  // `spans` (null unless the sink wants offsets): one per char of [begin, end).
  template <class Sink>
  void wordpiece(const char32_t* begin, const char32_t* end, const Span* spans, Sink& sink) const;
  int64_t find_id(const std::string& t) const;  // -1 if absent

  Options opt_;
  bool strip_accents_ = true;  // resolved from opt_
  std::vector<std::string> id_to_token_;
  std::unordered_map<std::string, int64_t> token_to_id_;
  std::vector<std::string> never_split_;  // matched literally in raw text
  bool never_split_first_byte_[256] = {};
  int64_t unk_id_ = -1, cls_id_ = -1, sep_id_ = -1, pad_id_ = -1, mask_id_ = -1;
  std::string source_;  // the file the vocabulary came from, for errors
};

// Picks the tokenizer of a model directory, in this order:
//   * tokenizer.json, by its model.type: "WordPiece" (or none) -> BertTokenizer (settings
//     "do_lower_case", "strip_accents", "tokenize_chinese_chars" present in tokenizer_config.json
//     override its normalizer, as BertTokenizerFast does); "BPE" -> BpeTokenizer (text/bpe_tokenizer.h);
//     "Unigram" -> SentencePieceTokenizer from spm.model next to it (text/sentencepiece_tokenizer.h);
//   * USE-lite's vocab.json (a JSON array of [piece, score] pairs, no vocab.txt) -> UnigramTokenizer;
//   * vocab.json + merges.txt -> BpeTokenizer (RoBERTa);
//   * spm.model -> SentencePieceTokenizer (DeBERTa-v2/v3; tokenizer_config.json, added_tokens.json);
//   * vocab.txt -> BertTokenizer with tokenizer_config.json's do_lower_case, strip_accents,
//     tokenize_chinese_chars and special tokens if that file exists.
// Throws TokenizerError when none of these exists or the tokenizer type is unsupported.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& model_dir);

}  // namespace lorakit::text
