// USE-lite with GLUE task heads. Sentence pairs as a bi-encoder (default: USE was trained as a sentence
// encoder): u = USE(a), v = USE(b), features [u, v, |u−v|, u⊙v] → MLP; or as one concatenated
// sequence ("concat": USE([a][b]) → MLP); single sentences: USE(a) → MLP. Regression (STS-B) is
// num_labels = 1. The pair's halves are found by token type (0 = a, 1 = b), which is how the unigram
// tokenizer encodes pairs, so the trainer's batches need nothing special.
//
// Parameter names: "use.<USE-lite module path>" (e.g. use.encoder.layer.0.attention.qkv.weight) and
// "classifier.dense", "classifier.out_proj" for the head.
#pragma once
#include "models/layers.h"
#include "models/task_model.h"
#include "models/use_lite.h"

namespace lorakit {

struct UseLiteClassifierImpl : TaskModelImpl {
  explicit UseLiteClassifierImpl(const ModelConfig& c);
  at::Tensor forward(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                     const at::Tensor& token_type_ids) override;
  void init_weights() override;  // the head only; the encoder comes from the pretrained graph
  UseLiteModel use{nullptr};
  ClassificationHead classifier{nullptr};
};
TORCH_MODULE(UseLiteClassifier);

// config.json values describing USE-lite (model_type "use-lite") for a task with `num_labels`.
ModelConfig use_lite_model_config(int64_t num_labels, const std::string& pair_mode);

}  // namespace lorakit
