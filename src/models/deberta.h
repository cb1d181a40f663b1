// DeBERTa-v2/v3 (model_type "deberta-v2") with DebertaV2ForSequenceClassification's head: disentangled
// attention over relative positions exactly as transformers' modeling_deberta_v2.py computes it
// (log-bucketed relative positions, c2p / p2c terms, shared or separate position projections,
// LayerNorm'd relative embeddings, the √(d·scale_factor) scaling). Parameter names are Hugging
// Face's: "deberta.embeddings.word_embeddings.weight",
// "deberta.encoder.layer.0.attention.self.query_proj.weight", "deberta.encoder.rel_embeddings.weight",
// "deberta.encoder.LayerNorm.weight", "pooler.dense.weight", "classifier.weight".
#pragma once
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/normalization.h>

#include "models/bert.h"
#include "models/config.h"
#include "models/layers.h"
#include "models/task_model.h"

namespace lorakit {

// transformers' make_log_bucket_position (computed in float32, as torch does there).
at::Tensor make_log_bucket_position(const at::Tensor& relative_pos, int64_t bucket_size, int64_t max_position);
// build_relative_position: [q, k] int64, query index minus key index, log-bucketed when bucket_size > 0.
at::Tensor build_relative_position(int64_t query_size, int64_t key_size, int64_t bucket_size, int64_t max_position);

struct DebertaEmbeddingsImpl : torch::nn::Module {
  explicit DebertaEmbeddingsImpl(const ModelConfig& c);
  at::Tensor forward(const at::Tensor& input_ids, const at::Tensor& token_type_ids, const at::Tensor& mask);
  ModelConfig cfg;
  int64_t embedding_size;
  torch::nn::Embedding word_embeddings{nullptr}, position_embeddings{nullptr}, token_type_embeddings{nullptr};
  AdaptableLinear embed_proj{nullptr};
  torch::nn::LayerNorm LayerNorm{nullptr};
  torch::nn::Dropout dropout{nullptr};
};
TORCH_MODULE(DebertaEmbeddings);

struct DebertaSelfAttentionImpl : torch::nn::Module {
  explicit DebertaSelfAttentionImpl(const ModelConfig& c);
  // mask: [B, 1, T, T] bool (query and key both real); rel_pos [T, T] int64 and rel_emb [2·span, H]
  // (undefined without relative attention).
  at::Tensor forward(const at::Tensor& x, const at::Tensor& mask, const at::Tensor& rel_pos, const at::Tensor& rel_emb);
  ModelConfig cfg;
  int64_t heads, head_dim;
  bool c2p = false, p2c = false;
  AdaptableLinear query_proj{nullptr}, key_proj{nullptr}, value_proj{nullptr};
  AdaptableLinear pos_key_proj{nullptr}, pos_query_proj{nullptr};  // without share_att_key
  torch::nn::Dropout dropout{nullptr}, pos_dropout{nullptr};
};
TORCH_MODULE(DebertaSelfAttention);

struct DebertaAttentionImpl : torch::nn::Module {
  explicit DebertaAttentionImpl(const ModelConfig& c);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& mask, const at::Tensor& rel_pos, const at::Tensor& rel_emb);
  DebertaSelfAttention self{nullptr};
  BertResidualOutput output{nullptr};
};
TORCH_MODULE(DebertaAttention);

struct DebertaLayerImpl : torch::nn::Module {
  explicit DebertaLayerImpl(const ModelConfig& c);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& mask, const at::Tensor& rel_pos, const at::Tensor& rel_emb);
  DebertaAttention attention{nullptr};
  BertIntermediate intermediate{nullptr};
  BertResidualOutput output{nullptr};
};
TORCH_MODULE(DebertaLayer);

struct DebertaEncoderImpl : torch::nn::Module {
  explicit DebertaEncoderImpl(const ModelConfig& c);
  // Layers [from, to) (to < 0: to the end); `attention_mask` [B, T] (undefined: every position attended).
  at::Tensor forward(const at::Tensor& x, const at::Tensor& attention_mask, int64_t from = 0, int64_t to = -1);
  ModelConfig cfg;
  torch::nn::ModuleList layer{nullptr};
  torch::nn::Embedding rel_embeddings{nullptr};
  torch::nn::LayerNorm LayerNorm{nullptr};  // norm_rel_ebd = layer_norm
};
TORCH_MODULE(DebertaEncoder);

struct DebertaModelImpl : torch::nn::Module {
  explicit DebertaModelImpl(const ModelConfig& c);
  at::Tensor forward(const at::Tensor& input_ids, const at::Tensor& attention_mask, const at::Tensor& token_type_ids);
  DebertaEmbeddings embeddings{nullptr};
  DebertaEncoder encoder{nullptr};
};
TORCH_MODULE(DebertaModel);

// ContextPooler: act(dense(dropout(h[:, 0]))).
struct DebertaPoolerImpl : torch::nn::Module {
  explicit DebertaPoolerImpl(const ModelConfig& c);
  at::Tensor forward(const at::Tensor& hidden);
  at::Tensor from_first(const at::Tensor& first);  // [B, H] = hidden[:, 0]
  std::string act;
  AdaptableLinear dense{nullptr};
  torch::nn::Dropout dropout{nullptr};
};
TORCH_MODULE(DebertaPooler);

struct DebertaClassifierImpl : TaskModelImpl {
  explicit DebertaClassifierImpl(const ModelConfig& c);
  at::Tensor forward(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                     const at::Tensor& token_type_ids) override;
  void init_weights() override;
  // Stages: embeddings, every encoder layer (the last one's state is its first token, all the pooler reads),
  // the pooler.
  std::vector<Stage> prefix_stages() override;
  at::Tensor forward_to(int64_t k, const at::Tensor& input_ids, const at::Tensor& attention_mask,
                        const at::Tensor& token_type_ids) override;
  at::Tensor forward_from(int64_t k, const at::Tensor& state, const at::Tensor& attention_mask,
                          const at::Tensor& token_type_ids) override;
  // DeBERTa masks padded positions as queries too: a padded row's scores are all masked, its softmax is uniform
  // over the batch's padded length, so from layer 0 on its values depend on the batch, not on the row alone.
  bool prefix_cache_keeps_padding() const override { return false; }
  DebertaModel base{nullptr};
  DebertaPooler pooler{nullptr};
  AdaptableLinear classifier{nullptr};
  torch::nn::Dropout dropout{nullptr};
};

}  // namespace lorakit
