// SQuAD v1.1 features: question + context windows with document stride and start/end labels, as
// transformers' examples/pytorch/question-answering/run_qa.py (prepare_train_features and
// prepare_validation_features: tokenizer(question, context, truncation="only_second",
// max_length=max_seq_len, stride=doc_stride, return_overflowing_tokens=True,
// return_offsets_mapping=True), no padding). Standard library + text::Tokenizer only (no LibTorch).
#pragma once
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "tasks/squad/squad.h"
#include "text/tokenizer.h"

namespace lorakit::data {

struct SquadFeatureOptions {
  size_t max_seq_len = 384;   // tokens per feature, special tokens included
  size_t doc_stride = 128;    // context tokens shared by consecutive windows
  size_t max_query_len = 64;  // question tokens kept (0: all)
};

// One window of one question's context.
struct SquadFeature {
  size_t example = 0;  // index into squad_examples(dataset)
  std::vector<int64_t> input_ids, token_type_ids;  // the tokenizer's pair layout (encode_ids)
  // Per token: the code-point span [start, end) in the paragraph's context, or {-1, -1} for question
  // and special tokens (HF sets offset_mapping to None outside the context).
  std::vector<std::pair<int64_t, int64_t>> offsets;
  // The first gold answer's first and last token; 0 and 0 (the first token, HF's cls_index) when the
  // window does not hold all of the answer's characters.
  int64_t start_position = 0, end_position = 0;
};

// Questions in file order: articles, then their paragraphs, then their qas.
struct SquadExampleRef {
  size_t article = 0, paragraph = 0, question = 0;
};
std::vector<SquadExampleRef> squad_examples(const SquadDataset& d);

// Every question's features, in squad_examples order (an example's features are consecutive, each
// example has at least one).
//   * The question is left-stripped of whitespace (Python str.isspace, as run_qa.py's q.lstrip()),
//     tokenized, and cut to its first max_query_len tokens (as the original run_squad.py; HF's
//     tokenizer would fail on a question that leaves no room for the context instead).
//   * The context is tokenized once per paragraph (tokenize_with_offsets). Each window holds
//     W = max_seq_len - question tokens - special tokens context tokens, laid out by encode_ids
//     (question first); windows start at 0, W - doc_stride, 2 (W - doc_stride), ... (the tokenizers
//     library's stride), the last one ends at the context's end, so consecutive windows share exactly
//     doc_stride tokens and a context of at most W tokens gives one window. An empty context gives
//     one window without context tokens.
//   * Labels as run_qa.py with the first answer (answer_start, code-point length of its text, end
//     char = start + length): when the window's context characters [first token's start, last
//     token's end] hold [start char, end char), start_position is the last context token whose span
//     starts at or before the start char, end_position the first context token from which every
//     following context token's span ends at or after the end char; otherwise both are 0. (HF's
//     loop could walk past the context into the [SEP]; here both stay inside the context.)
// Throws lorakit::Error naming --doc-stride and --max-seq-len when doc_stride >= W for a question
// (W = 0 included), whether or not its context needs more than one window.
std::vector<SquadFeature> make_squad_features(const SquadDataset& d, const text::Tokenizer& tok,
                                              const SquadFeatureOptions& opt);

}  // namespace lorakit::data
