// A tiny random BERT built in memory (no files), and random batches for it: for unit tests of methods.
#pragma once
#include <cstdint>
#include <string>

#include "models/bert.h"
#include "train/data.h"

namespace lorakit::testing {

// vocab 60, max positions 32, no dropout, 2 labels.
ModelConfig tiny_bert_config(int64_t hidden = 16, int64_t layers = 1, int64_t intermediate = 24);
SequenceClassifier tiny_bert(const ModelConfig& c, uint64_t seed = 5);
// B × T random ids in [5, 60), full attention mask, labels in {0, 1}.
Batch random_batch(uint64_t seed, int64_t batch = 6, int64_t len = 9);

// Loads the adapter in `dir` onto a fresh copy of `trained`'s base weights (the parameters the two
// share; nothing else comes along) and returns the largest |logit difference| to `trained` on a random
// batch (both in eval mode). `method_name` gets the loaded method's name.
double reload_logit_difference(SequenceClassifier& trained, const std::string& dir, std::string* method_name);

}  // namespace lorakit::testing
