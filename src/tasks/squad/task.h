// SQuAD v1.1 as a lorakit::Task: the official JSON (tasks/squad/squad.h) → run_qa.py's windows
// (tasks/squad/features.h) → a span head (qa_outputs, models/qa_model.h) with loss = mean of the start
// and end cross-entropies → run_qa.py's post-processing (tasks/squad/decode.h) → the official EM / F1.
//
// Data: --train-file / --eval-file name SQuAD JSON files; otherwise --data (default ../shared/data/squad)
// is a folder with train-v1.1.json and dev-v1.1.json, or — as on this machine — only dev-v1.1.json,
// which is then split by article: the first 38 articles train, the last 10 evaluate (no article's
// paragraphs on both sides; the task says so in its notes). --max-train-samples / --max-eval-samples
// keep the first N questions. A window's "correct" (train accuracy, GR-LoRA's S) is both its start and
// end token predicted exactly.
#pragma once
#include <memory>

#include "tasks/task.h"

namespace lorakit {

constexpr size_t kSquadTrainArticles = 38;

std::unique_ptr<Task> make_squad_task();

}  // namespace lorakit
