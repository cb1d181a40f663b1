#pragma once
// DeBERTa-v2 / v3 tokenizer over libsentencepiece (Debian libsentencepiece-dev), reproducing Hugging
// Face's DebertaV2Tokenizer (split_by_punct false):
//   * added tokens — [CLS] [SEP] [PAD] [UNK] [MASK] (those the vocabulary has) and the tokens of
//     added_tokens.json / tokenizer_config.json "added_tokens_decoder" — written literally in the
//     text stay single tokens (case-sensitive, leftmost then longest, no whitespace stripping);
//   * every other segment goes through SentencePieceProcessor::Encode (the model's own normalizer:
//     deberta-v3's nmt_nfkc, dummy '▁' prefix, whitespace collapsing); a piece's id is the model's id
//     (unknown pieces give the model's unk id). With do_lower_case (false by default, as deberta-v3),
//     segments are lower-cased char by char first (the full Unicode lower-case mapping, no
//     final-sigma rule);
//   * [MASK]: deberta-v3's spm.model has 128000 pieces and no [MASK]; transformers adds it after the
//     vocabulary (id 128000). Here the mask token is the spm piece if the model has it, else the id
//     given by added_tokens.json / added_tokens_decoder, else the first id after the model's pieces
//     and the other added tokens.
// Offsets (tokenize_with_offsets): code points of the original text, as libsentencepiece reports each
// piece's surface (so a '▁'-initial piece covers the whitespace before its word, the way
// DebertaV2TokenizerFast's offsets do). Invalid UTF-8 never throws: ill-formed sequences become U+FFFD.
//
// encode(): single [CLS] a [SEP]; pair [CLS] a [SEP] b [SEP] with token_type_ids 0 for [CLS] a [SEP]
// and 1 for b [SEP] (DeBERTa-v2's create_token_type_ids_from_sequences); truncation "longest_first"
// as the Tokenizer interface documents (max_length below 2 single / 3 pair throws TokenizerError).
//
// Files that are missing, truncated or not a SentencePiece model throw TokenizerError naming the file:
// the model is checked to be a well-formed protobuf message with the pieces, trainer spec and
// normalizer spec libsentencepiece writes, and every util::Status from libsentencepiece is checked
// (it is never asked to abort).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "text/bpe_tokenizer.h"  // AddedToken
#include "text/tokenizer.h"

namespace lorakit::text {

struct SentencePieceTokenizerOptions {
  bool do_lower_case = false;
  std::string cls_token = "[CLS]", sep_token = "[SEP]", pad_token = "[PAD]", unk_token = "[UNK]",
              mask_token = "[MASK]";
  // Tokens beyond the model's pieces (added_tokens.json): content and id (-1: next free id). An entry
  // whose content is a piece of the model with the same id is fine and changes nothing.
  std::vector<AddedToken> added_tokens;
};

class SentencePieceTokenizer : public Tokenizer {
 public:
  using Options = SentencePieceTokenizerOptions;

  // A serialized ModelProto (the bytes of an spm.model); `source` names it in error messages.
  static SentencePieceTokenizer from_serialized_model(const std::string& model_bytes, Options opt = {},
                                                      const std::string& source = "<serialized model>");
  static SentencePieceTokenizer from_model_file(const std::string& spm_model, Options opt = {});
  // <dir>/spm.model, with tokenizer_config.json's do_lower_case, special tokens and
  // added_tokens_decoder, and added_tokens.json, when present.
  static SentencePieceTokenizer from_model_dir(const std::string& dir);

  std::vector<std::string> tokenize(const std::string& text) const;  // piece strings
  std::vector<int64_t> tokenize_to_ids(const std::string& text) const;
  std::vector<Token> tokenize_with_offsets(const std::string& text) const override;
  std::vector<Token> special_prefix() const override { return {Token{cls_id_, opt_.cls_token, 0, 0}}; }
  std::vector<Token> special_suffix() const override { return {Token{sep_id_, opt_.sep_token, 0, 0}}; }

  Encoding encode(const std::string& a, const std::string* b, size_t max_length) const override;
  Encoding encode_ids(const std::vector<int64_t>& a, const std::vector<int64_t>* b) const override;
  int64_t pad_id() const override { return pad_id_; }
  // The model's pieces plus the added tokens after them (deberta-v3: 128001 with [MASK]).
  size_t vocab_size() const override { return vocab_size_; }
  size_t piece_count() const;  // the model's own pieces
  int64_t cls_id() const { return cls_id_; }
  int64_t sep_id() const { return sep_id_; }
  int64_t unk_id() const { return unk_id_; }
  int64_t mask_id() const { return mask_id_; }
  int64_t token_to_id(const std::string& t) const;   // added tokens, then pieces; unk id if absent
  std::string id_to_token(int64_t id) const;         // the unk token for an unknown id
  const Options& options() const { return opt_; }
  const std::string& serialized_model() const;       // the spm.model bytes

  // Writes <dir>/spm.model, tokenizer_config.json (tokenizer_class DebertaV2Tokenizer),
  // special_tokens_map.json and, when some tokens lie beyond the model's pieces (the appended
  // [MASK]), added_tokens.json. Creates <dir>; files are written atomically.
  void save(const std::string& dir) const;

 private:
  SentencePieceTokenizer() = default;
  struct Impl;
  template <class Sink>
  void run(const std::string& text, Sink& sink) const;
  template <class Sink>
  void run_segment(const std::u32string& chars, size_t begin, size_t end, Sink& sink) const;

  std::shared_ptr<const Impl> impl_;
  Options opt_;
  std::vector<AddedToken> added_;          // literal matches, longest first (specials included)
  std::vector<std::u32string> added_cps_;  // their code points
  std::unordered_map<std::string, int64_t> extra_ids_;  // tokens beyond the model's pieces
  std::unordered_map<int64_t, std::string> extra_tokens_;
  size_t vocab_size_ = 0;
  int64_t cls_id_ = -1, sep_id_ = -1, pad_id_ = -1, unk_id_ = -1, mask_id_ = -1;
};

struct SentencePieceTrainOptions {
  size_t vocab_size = 8000;           // pieces in the model, specials included
  double character_coverage = 1.0;    // sentencepiece's default is 0.9995
  std::string normalization_rule_name = "nmt_nfkc";  // deberta-v3's
  // Training is deterministic for the same sentences, options and thread count (libsentencepiece's
  // unigram EM sums per thread, so a different num_threads can give a slightly different model).
  int num_threads = 1;
  size_t max_sentence_length = 4192;  // bytes; longer sentences are skipped (sentencepiece's rule)
  bool hard_vocab_limit = true;       // false: a smaller vocabulary is fine when the text is too small
  bool quiet = true;                  // no training log on stderr
};

// Trains a unigram SentencePiece model on `sentences` (in memory, no files) with deberta-v3's special
// pieces: 0 [PAD], 1 [CLS] (bos), 2 [SEP] (eos), 3 [UNK]; the returned tokenizer appends [MASK] after
// the pieces. Throws TokenizerError when there is nothing to train on or libsentencepiece fails
// (e.g. "Vocabulary size is too high" for the text given).
SentencePieceTokenizer train_sentencepiece(const std::vector<std::string>& sentences,
                                           const SentencePieceTrainOptions& opt = {});

}  // namespace lorakit::text
