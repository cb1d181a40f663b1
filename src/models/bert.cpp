#include "models/bert.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/errors.h"

namespace lorakit {
namespace F = torch::nn::functional;

BertEmbeddingsImpl::BertEmbeddingsImpl(const ModelConfig& c) : cfg(c) {
  word_embeddings = register_module(
      "word_embeddings",
      torch::nn::Embedding(torch::nn::EmbeddingOptions(c.vocab_size, c.hidden_size).padding_idx(c.pad_token_id)));
  position_embeddings = register_module(
      "position_embeddings",
      c.is_roberta() ? torch::nn::Embedding(torch::nn::EmbeddingOptions(c.max_position_embeddings, c.hidden_size)
                                                 .padding_idx(c.pad_token_id))
                     : torch::nn::Embedding(c.max_position_embeddings, c.hidden_size));
  token_type_embeddings = register_module("token_type_embeddings", torch::nn::Embedding(c.type_vocab_size, c.hidden_size));
  LayerNorm = register_module(
      "LayerNorm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.hidden_size}).eps(c.layer_norm_eps)));
  dropout = register_module("dropout", torch::nn::Dropout(c.hidden_dropout_prob));
}

at::Tensor BertEmbeddingsImpl::forward(const at::Tensor& input_ids, const at::Tensor& token_type_ids) {
  const int64_t T = input_ids.size(1);
  at::Tensor pos;
  if (cfg.is_roberta()) {
    // RoBERTa numbers real tokens from padding_idx + 1; padding keeps padding_idx.
    at::Tensor m = input_ids.ne(cfg.pad_token_id).to(at::kLong);
    pos = at::cumsum(m, 1) * m + cfg.pad_token_id;
  } else {
    pos = at::arange(T, input_ids.options().dtype(at::kLong)).unsqueeze(0);
  }
  if (pos.max().item<int64_t>() >= cfg.max_position_embeddings) {
    const int64_t limit = cfg.max_tokens();
    int64_t len = T;
    if (cfg.is_roberta()) len = input_ids.ne(cfg.pad_token_id).sum(1).max().item<int64_t>();
    throw Error("sequence of " + std::to_string(len) + " tokens exceeds the model's limit of " + std::to_string(limit) +
                " tokens (max_position_embeddings " + std::to_string(cfg.max_position_embeddings) +
                (cfg.is_roberta() ? ", positions start at pad_token_id + 1 = " + std::to_string(cfg.pad_token_id + 1)
                                  : std::string()) +
                "); use a smaller --max-seq-len");
  }
  // Models with one token type (RoBERTa) ignore segment ids, as their own tokenizers never emit any.
  at::Tensor tt = token_type_ids.defined() && cfg.type_vocab_size > 1 ? token_type_ids : at::zeros_like(input_ids);
  if (input_ids.numel() > 0) {
    const int64_t lo = input_ids.min().item<int64_t>(), hi = input_ids.max().item<int64_t>();
    if (lo < 0 || hi >= cfg.vocab_size)
      throw Error("token id " + std::to_string(lo < 0 ? lo : hi) + " is outside the model's vocabulary (vocab_size " +
                  std::to_string(cfg.vocab_size) + "): tokenizer and model do not match");
    if (tt.max().item<int64_t>() >= cfg.type_vocab_size || tt.min().item<int64_t>() < 0)
      throw Error("token type id outside type_vocab_size " + std::to_string(cfg.type_vocab_size));
  }
  at::Tensor e = word_embeddings(input_ids) + token_type_embeddings(tt) + position_embeddings(pos);
  return dropout(LayerNorm(e));
}

BertSelfAttentionImpl::BertSelfAttentionImpl(const ModelConfig& c)
    : heads(c.num_attention_heads), head_dim(c.hidden_size / c.num_attention_heads) {
  query = register_module("query", AdaptableLinear(c.hidden_size, c.hidden_size, c.qkv_bias));
  key = register_module("key", AdaptableLinear(c.hidden_size, c.hidden_size, c.qkv_bias));
  value = register_module("value", AdaptableLinear(c.hidden_size, c.hidden_size, c.qkv_bias));
  dropout = register_module("dropout", torch::nn::Dropout(c.attention_probs_dropout_prob));
}

at::Tensor BertSelfAttentionImpl::forward(const at::Tensor& x, const at::Tensor& mask_bias, bool first_only) {
  const int64_t B = x.size(0), T = x.size(1), Tq = first_only ? 1 : T;
  auto split = [&](const at::Tensor& t) { return t.view({B, t.size(1), heads, head_dim}).transpose(1, 2); };
  at::Tensor q = split(query(first_only ? x.narrow(1, 0, 1) : x)), k = split(key(x)), v = split(value(x));
  at::Tensor scores = at::matmul(q, k.transpose(-1, -2)) / std::sqrt(static_cast<double>(head_dim));
  if (mask_bias.defined()) scores = scores + mask_bias;
  at::Tensor probs = dropout(at::softmax(scores, -1));
  at::Tensor ctx = at::matmul(probs, v);  // [B, heads, Tq, head_dim]
  return ctx.transpose(1, 2).reshape({B, Tq, heads * head_dim});
}

BertResidualOutputImpl::BertResidualOutputImpl(const ModelConfig& c, int64_t in_features) {
  dense = register_module("dense", AdaptableLinear(in_features, c.hidden_size));
  LayerNorm = register_module(
      "LayerNorm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.hidden_size}).eps(c.layer_norm_eps)));
  dropout = register_module("dropout", torch::nn::Dropout(c.hidden_dropout_prob));
}

at::Tensor BertResidualOutputImpl::forward(const at::Tensor& x, const at::Tensor& residual) {
  return LayerNorm(dropout(dense(x)) + residual);
}

BertAttentionImpl::BertAttentionImpl(const ModelConfig& c) {
  self = register_module("self", BertSelfAttention(c));
  output = register_module("output", BertResidualOutput(c, c.hidden_size));
}

at::Tensor BertAttentionImpl::forward(const at::Tensor& x, const at::Tensor& mask_bias, bool first_only) {
  return output(self(x, mask_bias, first_only), first_only ? x.narrow(1, 0, 1) : x);
}

BertIntermediateImpl::BertIntermediateImpl(const ModelConfig& c) : act(c.hidden_act) {
  dense = register_module("dense", AdaptableLinear(c.hidden_size, c.intermediate_size));
}

at::Tensor BertIntermediateImpl::forward(const at::Tensor& x) {
  return apply_activation(act, dense(x));
}

BertLayerImpl::BertLayerImpl(const ModelConfig& c) {
  attention = register_module("attention", BertAttention(c));
  intermediate = register_module("intermediate", BertIntermediate(c));
  output = register_module("output", BertResidualOutput(c, c.intermediate_size));
}

at::Tensor BertLayerImpl::forward(const at::Tensor& x, const at::Tensor& mask_bias, bool first_only) {
  at::Tensor a = attention(x, mask_bias, first_only);
  return output(intermediate(a), a);
}

BertEncoderImpl::BertEncoderImpl(const ModelConfig& c) {
  layer = register_module("layer", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) layer->push_back(BertLayer(c));
}

at::Tensor BertEncoderImpl::forward(const at::Tensor& x, const at::Tensor& mask_bias, bool prune_last, int64_t from,
                                    int64_t to) {
  at::Tensor h = x;
  const int64_t L = static_cast<int64_t>(layer->size());
  for (int64_t i = from; i < (to < 0 ? L : to); ++i)
    h = layer->ptr(i)->as<BertLayerImpl>()->forward(h, mask_bias, prune_last && i + 1 == L);
  return h;
}

BertPoolerImpl::BertPoolerImpl(const ModelConfig& c) {
  dense = register_module("dense", AdaptableLinear(c.hidden_size, c.hidden_size));
}

at::Tensor BertPoolerImpl::forward(const at::Tensor& hidden) {
  return at::tanh(dense(hidden.select(1, 0)));
}

BertModelImpl::BertModelImpl(const ModelConfig& c, bool add_pooler) : cfg(c) {
  embeddings = register_module("embeddings", BertEmbeddings(c));
  encoder = register_module("encoder", BertEncoder(c));
  if (add_pooler) pooler = register_module("pooler", BertPooler(c));
}

at::Tensor BertModelImpl::forward(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                                  const at::Tensor& token_type_ids, bool prune_last) {
  if (input_ids.dim() != 2) throw Error("input_ids must be [batch, seq], got " + std::to_string(input_ids.dim()) + " dims");
  at::Tensor h = embeddings(input_ids, token_type_ids);
  // Additive mask as Hugging Face builds it: 0 where attended, dtype-min where masked.
  return encoder->forward(h, additive_mask_bias(attention_mask, h), prune_last);
}

BertClassifierImpl::BertClassifierImpl(const ModelConfig& c) : TaskModelImpl(c) {
  base = register_module(c.base_prefix(), BertModel(c, /*add_pooler=*/!c.is_roberta()));
  if (c.is_roberta()) {
    classifier_head = register_module(
        "classifier", ClassificationHead(c.hidden_size, c.hidden_size, c.num_labels,
                                         c.classifier_dropout >= 0 ? c.classifier_dropout : c.hidden_dropout_prob));
  } else {
    dropout = register_module("dropout", torch::nn::Dropout(c.classifier_dropout >= 0 ? c.classifier_dropout
                                                                                       : c.hidden_dropout_prob));
    classifier_linear = register_module("classifier", AdaptableLinear(c.hidden_size, c.num_labels));
  }
}

at::Tensor BertClassifierImpl::forward(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                                           const at::Tensor& token_type_ids) {
  at::Tensor h = base(input_ids, attention_mask, token_type_ids, prune_last_layer);
  if (cfg.is_roberta()) return classifier_head(h.select(1, 0));
  return classifier_linear(dropout(base->pooler(h)));
}

std::vector<TaskModelImpl::Stage> BertClassifierImpl::prefix_stages() {
  std::vector<Stage> st;
  const std::string p = cfg.base_prefix();
  st.push_back({p + ".embeddings", base->embeddings.ptr(), true});
  const int64_t L = static_cast<int64_t>(base->encoder->layer->size());
  for (int64_t i = 0; i < L; ++i)
    st.push_back({p + ".encoder.layer." + std::to_string(i), base->encoder->layer->ptr(i), i + 1 < L});
  if (!cfg.is_roberta()) st.push_back({p + ".pooler", base->pooler.ptr(), false});
  return st;
}

at::Tensor BertClassifierImpl::forward_to(int64_t k, const at::Tensor& input_ids, const at::Tensor& attention_mask,
                                          const at::Tensor& token_type_ids) {
  const int64_t L = static_cast<int64_t>(base->encoder->layer->size());
  const int64_t stages = L + (cfg.is_roberta() ? 1 : 2);
  if (k < 1 || k > stages) throw Error("forward_to: cut " + std::to_string(k) + " is not in 1.." + std::to_string(stages));
  at::Tensor h = base->embeddings(input_ids, token_type_ids);
  if (k == 1) return h;
  h = base->encoder->forward(h, additive_mask_bias(attention_mask, h), prune_last_layer, 0, std::min(k - 1, L));
  if (k - 1 < L) return h;
  at::Tensor first = h.select(1, 0);
  if (k == L + 1) return first;
  return at::tanh(base->pooler->dense(first));  // k == L + 2 (BERT)
}

at::Tensor BertClassifierImpl::forward_from(int64_t k, const at::Tensor& state, const at::Tensor& attention_mask,
                                            const at::Tensor& /*token_type_ids: in the state already*/) {
  const int64_t L = static_cast<int64_t>(base->encoder->layer->size());
  at::Tensor first, pooled;
  if (k <= L) {
    first = base->encoder->forward(state, additive_mask_bias(attention_mask, state), prune_last_layer, k - 1).select(1, 0);
  } else if (k == L + 1) {
    first = state;
  } else {
    pooled = state;
  }
  if (cfg.is_roberta()) return classifier_head(first);
  if (!pooled.defined()) pooled = at::tanh(base->pooler->dense(first));
  return classifier_linear(dropout(pooled));
}

void BertClassifierImpl::init_weights() { init_hf_weights(*this, cfg.initializer_range); }

}  // namespace lorakit
