// DistilBERT (model_type "distilbert") with DistilBertForSequenceClassification's head. Parameter names
// are exactly Hugging Face's: "distilbert.embeddings.word_embeddings.weight",
// "distilbert.transformer.layer.0.attention.q_lin.weight", ".sa_layer_norm", ".ffn.lin1",
// ".output_layer_norm", "pre_classifier.weight", "classifier.weight".
#pragma once
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/normalization.h>

#include "models/config.h"
#include "models/layers.h"
#include "models/task_model.h"

namespace lorakit {

struct DistilBertEmbeddingsImpl : torch::nn::Module {
  explicit DistilBertEmbeddingsImpl(const ModelConfig& c);
  at::Tensor forward(const at::Tensor& input_ids);  // word + position (no token types), LayerNorm, dropout
  ModelConfig cfg;
  torch::nn::Embedding word_embeddings{nullptr}, position_embeddings{nullptr};
  torch::nn::LayerNorm LayerNorm{nullptr};
  torch::nn::Dropout dropout{nullptr};
};
TORCH_MODULE(DistilBertEmbeddings);

struct DistilBertAttentionImpl : torch::nn::Module {
  explicit DistilBertAttentionImpl(const ModelConfig& c);
  // first_only: the first position's query alone, [B, 1, dim] (TaskModelImpl::prune_last_layer).
  at::Tensor forward(const at::Tensor& x, const at::Tensor& mask_bias, bool first_only = false);
  int64_t heads, head_dim;
  AdaptableLinear q_lin{nullptr}, k_lin{nullptr}, v_lin{nullptr}, out_lin{nullptr};
  torch::nn::Dropout dropout{nullptr};
};
TORCH_MODULE(DistilBertAttention);

struct DistilBertFFNImpl : torch::nn::Module {
  explicit DistilBertFFNImpl(const ModelConfig& c);
  at::Tensor forward(const at::Tensor& x);  // dropout(lin2(act(lin1(x))))
  std::string act;
  AdaptableLinear lin1{nullptr}, lin2{nullptr};
  torch::nn::Dropout dropout{nullptr};
};
TORCH_MODULE(DistilBertFFN);

struct DistilBertBlockImpl : torch::nn::Module {
  explicit DistilBertBlockImpl(const ModelConfig& c);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& mask_bias, bool first_only = false);
  DistilBertAttention attention{nullptr};
  torch::nn::LayerNorm sa_layer_norm{nullptr}, output_layer_norm{nullptr};
  DistilBertFFN ffn{nullptr};
};
TORCH_MODULE(DistilBertBlock);

struct DistilBertTransformerImpl : torch::nn::Module {
  explicit DistilBertTransformerImpl(const ModelConfig& c);
  // Blocks [from, to) (to < 0: through the last); prune_last: the last block at the first position alone (its
  // output [B, 1, dim]).
  at::Tensor forward(const at::Tensor& x, const at::Tensor& mask_bias, bool prune_last = false, int64_t from = 0,
                     int64_t to = -1);
  torch::nn::ModuleList layer{nullptr};
};
TORCH_MODULE(DistilBertTransformer);

struct DistilBertModelImpl : torch::nn::Module {
  explicit DistilBertModelImpl(const ModelConfig& c);
  // [B, T, dim] ([B, 1, dim] with prune_last)
  at::Tensor forward(const at::Tensor& input_ids, const at::Tensor& attention_mask, bool prune_last = false);
  DistilBertEmbeddings embeddings{nullptr};
  DistilBertTransformer transformer{nullptr};
};
TORCH_MODULE(DistilBertModel);

// classifier(dropout(relu(pre_classifier(h[:, 0])))); num_labels == 1 is regression.
struct DistilBertClassifierImpl : TaskModelImpl {
  explicit DistilBertClassifierImpl(const ModelConfig& c);
  at::Tensor forward(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                     const at::Tensor& token_type_ids) override;
  void init_weights() override;
  bool supports_last_layer_pruning() const override { return true; }
  // embeddings, transformer.layer.0 .. L-1 (the last one's state: the first position, [B, dim]).
  std::vector<Stage> prefix_stages() override;
  at::Tensor forward_to(int64_t k, const at::Tensor& input_ids, const at::Tensor& attention_mask,
                        const at::Tensor& token_type_ids) override;
  at::Tensor forward_from(int64_t k, const at::Tensor& state, const at::Tensor& attention_mask,
                          const at::Tensor& token_type_ids = {}) override;
  DistilBertModel base{nullptr};
  AdaptableLinear pre_classifier{nullptr}, classifier{nullptr};
  torch::nn::Dropout dropout{nullptr};
};

// The sinusoidal table transformers writes into position_embeddings when sinusoidal_pos_embds is set:
// even columns sin(pos / 10000^(2i/dim)), odd columns cos of the same.
at::Tensor sinusoidal_positions(int64_t n_pos, int64_t dim);

}  // namespace lorakit
