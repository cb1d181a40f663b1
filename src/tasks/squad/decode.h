// SQuAD v1.1 span decoding: start/end logits of every feature → one answer text per question, as
// transformers' examples/pytorch/question-answering/utils_qa.py postprocess_qa_predictions with
// version_2_with_negative=False. Standard library only (no LibTorch).
#pragma once
#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include "tasks/squad/features.h"
#include "tasks/squad/squad.h"

namespace lorakit::data {

struct SquadDecodeOptions {
  size_t n_best = 20;          // start and end indexes tried per feature (utils_qa.py n_best_size)
  size_t max_answer_len = 30;  // tokens, end - start + 1
};

// `features` = make_squad_features(d, ...); start_logits[i] / end_logits[i] belong to features[i] and
// have one value per token of it. Per feature, the n_best highest start indexes × the n_best highest
// end indexes (equal logits: the lower index first) are candidate spans; a span is skipped when either
// index is outside the context (offset {-1, -1}), end < start, or end - start + 1 > max_answer_len.
// Score = start logit + end logit (float); an example's answer is its best-scoring span over all its
// features (equal scores: the first found, by feature, then start, then end rank), cut from the
// paragraph's context as code points [offsets[start].first, offsets[end].second).
// Returns question id → text for every question of `d`; a question without any valid span gets ""
// (utils_qa.py would write the string "empty").
// Throws lorakit::Error when the logits' count differs from the features', a logits vector's length
// differs from its feature's tokens, or a feature's example index is not one of `d`'s questions.
std::map<std::string, std::string> decode_squad_predictions(const SquadDataset& d,
                                                            const std::vector<SquadFeature>& features,
                                                            const std::vector<std::vector<float>>& start_logits,
                                                            const std::vector<std::vector<float>>& end_logits,
                                                            const SquadDecodeOptions& opt);

}  // namespace lorakit::data
