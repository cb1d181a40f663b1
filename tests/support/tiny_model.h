// A tiny random BERT built in memory (no files), and random batches for it: for unit tests of methods;
// tiny checkpoints of every family and padded inputs for the oracle tests.
#pragma once
#include <cstdint>
#include <string>

#include "core/safetensors.h"
#include "models/bert.h"
#include "tasks/task.h"

namespace lorakit::testing {

// vocab 60, max positions 32, no dropout, 2 labels.
ModelConfig tiny_bert_config(int64_t hidden = 16, int64_t layers = 1, int64_t intermediate = 24);
SequenceClassifier tiny_bert(const ModelConfig& c, uint64_t seed = 5);
// B × T random ids in [5, 60), full attention mask, labels in {0, 1}.
Batch random_batch(uint64_t seed, int64_t batch = 6, int64_t len = 9);

// Oracle-test size for any model_type (vocab 101, hidden 32, 2 layers, 4 heads, intermediate 48, 40
// positions, 3 labels) with the family's own fixed settings (RoBERTa's pad id / eps, DistilBERT's single
// token type, DeBERTa's eps and no token types).
ModelConfig oracle_config(const std::string& model_type);
// oracle_config("vit") on 16×16 RGB images in 4×4 patches (16 patches + [CLS]).
ModelConfig small_vit_config();
// A random checkpoint of `c` in `dir` (config.json + model.safetensors), with norms, biases, relative
// and position embeddings and ViT's cls_token moved off their init values, so that an oracle compares
// more than the init pattern.
void write_perturbed_model(const ModelConfig& c, const std::string& dir, uint64_t seed = 3);

struct PaddedInputs {
  at::Tensor ids, mask, tt;
};
// 3 rows of T random ids; row 1 loses its last 3 tokens to padding, row 2 its last T/2; token type 1
// from T/3 on when the model has token types.
PaddedInputs padded_inputs(const ModelConfig& c, int64_t T);

// Runs tests/oracle/<script> MODEL_DIR INPUTS OUT on `inputs` (saved under `tmp_dir`) and returns its logits.
at::Tensor oracle_logits(const std::string& script, const std::string& model_dir, const st::NamedTensors& inputs,
                         const std::string& tmp_dir);

// Loads the adapter in `dir` onto a fresh copy of `trained`'s base weights (the parameters the two
// share; nothing else comes along) and returns the largest |logit difference| to `trained` on a random
// batch (both in eval mode). `method_name` gets the loaded method's name.
double reload_logit_difference(SequenceClassifier& trained, const std::string& dir, std::string* method_name);

}  // namespace lorakit::testing
