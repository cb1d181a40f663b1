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
  // Frozen-prefix stages: use.embeddings, use.encoder.layer.<i> (per token), use.tanh_layer (the state after
  // it is the head's input: [u, v, |u−v|, u⊙v], or u). A pair's per-token state is kept in the row's own
  // layout (a's tokens, then b's, each as its half's encoder computed them), so a row's cached state is
  // the same in every batch; none while the encoder has dropout.
  std::vector<Stage> prefix_stages() override;
  at::Tensor forward_to(int64_t k, const at::Tensor& input_ids, const at::Tensor& attention_mask,
                        const at::Tensor& token_type_ids) override;
  at::Tensor forward_from(int64_t k, const at::Tensor& state, const at::Tensor& attention_mask,
                          const at::Tensor& token_type_ids = {}) override;
  bool prefix_cache_keeps_padding() const override { return cfg.pair_mode != "bi-encoder"; }
  // Whether a batch is pairs for the bi-encoder (an Error when the bi-encoder gets single sentences).
  bool pairs_in(const at::Tensor& mask, const at::Tensor& token_type_ids) const;
  // The head's input from the sentence embeddings ([2B, d] for pairs: [u, v, |u−v|, u⊙v]).
  static at::Tensor features(const at::Tensor& emb, int64_t B, bool pairs);
  UseLiteModel use{nullptr};
  ClassificationHead classifier{nullptr};
};
TORCH_MODULE(UseLiteClassifier);

// config.json values describing USE-lite (model_type "use-lite") for a task with `num_labels`.
ModelConfig use_lite_model_config(int64_t num_labels, const std::string& pair_mode);

}  // namespace lorakit
