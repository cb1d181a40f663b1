// BERT and RoBERTa encoders (one implementation) with their sequence-classification / regression
// heads. Parameter names are exactly Hugging Face's: "bert.encoder.layer.0.attention.self.query.weight",
// "roberta.embeddings.word_embeddings.weight", "classifier.weight" (BERT),
// "classifier.dense.weight" / "classifier.out_proj.weight" (RoBERTa).
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

struct BertEmbeddingsImpl : torch::nn::Module {
  explicit BertEmbeddingsImpl(const ModelConfig& c);
  at::Tensor forward(const at::Tensor& input_ids, const at::Tensor& token_type_ids);
  ModelConfig cfg;
  torch::nn::Embedding word_embeddings{nullptr}, position_embeddings{nullptr}, token_type_embeddings{nullptr};
  torch::nn::LayerNorm LayerNorm{nullptr};
  torch::nn::Dropout dropout{nullptr};
};
TORCH_MODULE(BertEmbeddings);

struct BertSelfAttentionImpl : torch::nn::Module {
  explicit BertSelfAttentionImpl(const ModelConfig& c);
  // first_only: the query (and so the output) at the first position alone, [B, 1, H]; keys and values
  // from every position (TaskModelImpl::prune_last_layer).
  at::Tensor forward(const at::Tensor& x, const at::Tensor& mask_bias, bool first_only = false);
  int64_t heads, head_dim;
  AdaptableLinear query{nullptr}, key{nullptr}, value{nullptr};
  torch::nn::Dropout dropout{nullptr};
};
TORCH_MODULE(BertSelfAttention);

// "attention.output" and "output" share this shape: dense → dropout → LayerNorm(x + residual).
struct BertResidualOutputImpl : torch::nn::Module {
  BertResidualOutputImpl(const ModelConfig& c, int64_t in_features);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& residual);
  AdaptableLinear dense{nullptr};
  torch::nn::LayerNorm LayerNorm{nullptr};
  torch::nn::Dropout dropout{nullptr};
};
TORCH_MODULE(BertResidualOutput);

struct BertAttentionImpl : torch::nn::Module {
  explicit BertAttentionImpl(const ModelConfig& c);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& mask_bias, bool first_only = false);
  BertSelfAttention self{nullptr};
  BertResidualOutput output{nullptr};
};
TORCH_MODULE(BertAttention);

struct BertIntermediateImpl : torch::nn::Module {
  explicit BertIntermediateImpl(const ModelConfig& c);
  at::Tensor forward(const at::Tensor& x);
  std::string act;
  AdaptableLinear dense{nullptr};
};
TORCH_MODULE(BertIntermediate);

struct BertLayerImpl : torch::nn::Module {
  explicit BertLayerImpl(const ModelConfig& c);
  // first_only: the layer's output at the first position alone, [B, 1, H].
  at::Tensor forward(const at::Tensor& x, const at::Tensor& mask_bias, bool first_only = false);
  BertAttention attention{nullptr};
  BertIntermediate intermediate{nullptr};
  BertResidualOutput output{nullptr};
};
TORCH_MODULE(BertLayer);

struct BertEncoderImpl : torch::nn::Module {
  explicit BertEncoderImpl(const ModelConfig& c);
  // Layers [from, to) (to < 0: through the last); prune_last: the last layer at the first position alone (its
  // output [B, 1, H]).
  at::Tensor forward(const at::Tensor& x, const at::Tensor& mask_bias, bool prune_last = false, int64_t from = 0,
                     int64_t to = -1);
  torch::nn::ModuleList layer{nullptr};
};
TORCH_MODULE(BertEncoder);

struct BertPoolerImpl : torch::nn::Module {
  explicit BertPoolerImpl(const ModelConfig& c);
  at::Tensor forward(const at::Tensor& hidden);  // tanh(dense(hidden[:, 0]))
  AdaptableLinear dense{nullptr};
};
TORCH_MODULE(BertPooler);

struct BertModelImpl : torch::nn::Module {
  BertModelImpl(const ModelConfig& c, bool add_pooler);
  // Returns the last hidden state [B, T, H] ([B, 1, H] with prune_last: BertEncoderImpl::forward).
  at::Tensor forward(const at::Tensor& input_ids, const at::Tensor& attention_mask, const at::Tensor& token_type_ids,
                     bool prune_last = false);
  ModelConfig cfg;
  BertEmbeddings embeddings{nullptr};
  BertEncoder encoder{nullptr};
  BertPooler pooler{nullptr};
};
TORCH_MODULE(BertModel);

// BertForSequenceClassification / RobertaForSequenceClassification. num_labels == 1 is regression.
struct BertClassifierImpl : TaskModelImpl {
  explicit BertClassifierImpl(const ModelConfig& c);
  at::Tensor forward(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                     const at::Tensor& token_type_ids) override;
  // Hugging Face's _init_weights: N(0, initializer_range) for linear and embedding weights (padding
  // row zero), zero biases, LayerNorm (1, 0). Uses the global generator: seed it first.
  void init_weights() override;
  // Stages: embeddings, every encoder layer (the last one's state is its first token, all the heads
  // read), BERT's pooler.
  std::vector<Stage> prefix_stages() override;
  at::Tensor forward_to(int64_t k, const at::Tensor& input_ids, const at::Tensor& attention_mask,
                        const at::Tensor& token_type_ids) override;
  at::Tensor forward_from(int64_t k, const at::Tensor& state, const at::Tensor& attention_mask,
                          const at::Tensor& token_type_ids = {}) override;
  bool supports_last_layer_pruning() const override { return true; }
  BertModel base{nullptr};
  torch::nn::Dropout dropout{nullptr};                // BERT head
  AdaptableLinear classifier_linear{nullptr};         // BERT head, registered as "classifier"
  ClassificationHead classifier_head{nullptr};        // RoBERTa head (on the first token), "classifier"
};
TORCH_MODULE(BertClassifier);

}  // namespace lorakit
