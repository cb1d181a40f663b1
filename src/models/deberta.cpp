#include "models/deberta.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/errors.h"

namespace lorakit {

at::Tensor make_log_bucket_position(const at::Tensor& rel, int64_t bucket_size, int64_t max_position) {
  const int64_t mid = bucket_size / 2;
  at::Tensor sign = at::sign(rel);
  at::Tensor abs_pos = at::where(rel.lt(mid) & rel.gt(-mid), at::full_like(rel, mid - 1), rel.abs());
  // Float32 throughout, as torch computes `abs_pos / mid` and `torch.tensor((max_position - 1) / mid)`.
  at::Tensor denom = at::log(at::scalar_tensor(static_cast<double>(max_position - 1) / static_cast<double>(mid), at::kFloat));
  at::Tensor log_pos =
      at::ceil(at::log(abs_pos.to(at::kFloat) / static_cast<double>(mid)) / denom * static_cast<double>(mid - 1)) +
      static_cast<double>(mid);
  return at::where(abs_pos.le(mid), rel.to(at::kFloat), log_pos * sign.to(at::kFloat));
}

at::Tensor build_relative_position(int64_t q, int64_t k, int64_t bucket_size, int64_t max_position) {
  at::Tensor rel = at::arange(q, at::kLong).unsqueeze(1) - at::arange(k, at::kLong).unsqueeze(0);
  if (bucket_size > 0 && max_position > 0) rel = make_log_bucket_position(rel, bucket_size, max_position);
  return rel.to(at::kLong);
}

DebertaEmbeddingsImpl::DebertaEmbeddingsImpl(const ModelConfig& c)
    : cfg(c), embedding_size(c.embedding_size > 0 ? c.embedding_size : c.hidden_size) {
  word_embeddings = register_module(
      "word_embeddings",
      torch::nn::Embedding(torch::nn::EmbeddingOptions(c.vocab_size, embedding_size).padding_idx(c.pad_token_id)));
  if (c.position_biased_input)
    position_embeddings =
        register_module("position_embeddings", torch::nn::Embedding(c.max_position_embeddings, embedding_size));
  if (c.type_vocab_size > 0)
    token_type_embeddings = register_module("token_type_embeddings", torch::nn::Embedding(c.type_vocab_size, embedding_size));
  if (embedding_size != c.hidden_size)
    embed_proj = register_module("embed_proj", AdaptableLinear(embedding_size, c.hidden_size, /*with_bias=*/false));
  LayerNorm = register_module(
      "LayerNorm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.hidden_size}).eps(c.layer_norm_eps)));
  dropout = register_module("dropout", torch::nn::Dropout(c.hidden_dropout_prob));
}

at::Tensor DebertaEmbeddingsImpl::forward(const at::Tensor& input_ids, const at::Tensor& token_type_ids,
                                          const at::Tensor& mask) {
  check_token_ids(input_ids, cfg.vocab_size);
  const int64_t T = input_ids.size(1);
  at::Tensor e = word_embeddings(input_ids);
  if (position_embeddings) {
    if (T > cfg.max_position_embeddings)
      throw Error("sequence of " + std::to_string(T) + " tokens exceeds the model's limit of " +
                  std::to_string(cfg.max_position_embeddings) + " tokens; use a smaller --max-seq-len");
    e = e + position_embeddings(at::arange(T, input_ids.options().dtype(at::kLong)).unsqueeze(0));
  }
  if (token_type_embeddings) {
    at::Tensor tt = token_type_ids.defined() ? token_type_ids : at::zeros_like(input_ids);
    if (tt.numel() > 0 && (tt.max().item<int64_t>() >= cfg.type_vocab_size || tt.min().item<int64_t>() < 0))
      throw Error("token type id outside type_vocab_size " + std::to_string(cfg.type_vocab_size));
    e = e + token_type_embeddings(tt);
  }
  if (embed_proj) e = embed_proj(e);
  e = LayerNorm(e) * mask.unsqueeze(2).to(e.scalar_type());
  return dropout(e);
}

DebertaSelfAttentionImpl::DebertaSelfAttentionImpl(const ModelConfig& c)
    : cfg(c), heads(c.num_attention_heads), head_dim(c.hidden_size / c.num_attention_heads) {
  for (auto& t : c.pos_att_type) {
    if (t == "c2p") c2p = true;
    if (t == "p2c") p2c = true;
  }
  query_proj = register_module("query_proj", AdaptableLinear(c.hidden_size, c.hidden_size));
  key_proj = register_module("key_proj", AdaptableLinear(c.hidden_size, c.hidden_size));
  value_proj = register_module("value_proj", AdaptableLinear(c.hidden_size, c.hidden_size));
  if (c.relative_attention && !c.share_att_key) {
    if (c2p) pos_key_proj = register_module("pos_key_proj", AdaptableLinear(c.hidden_size, c.hidden_size));
    if (p2c) pos_query_proj = register_module("pos_query_proj", AdaptableLinear(c.hidden_size, c.hidden_size));
  }
  dropout = register_module("dropout", torch::nn::Dropout(c.attention_probs_dropout_prob));
  pos_dropout = register_module("pos_dropout", torch::nn::Dropout(c.hidden_dropout_prob));
}

at::Tensor DebertaSelfAttentionImpl::forward(const at::Tensor& x, const at::Tensor& mask, const at::Tensor& rel_pos,
                                             const at::Tensor& rel_emb) {
  const int64_t B = x.size(0), T = x.size(1);
  auto split = [&](const at::Tensor& t) { return t.view({t.size(0), t.size(1), heads, head_dim}).transpose(1, 2); };
  at::Tensor q = split(query_proj(x)), k = split(key_proj(x)), v = split(value_proj(x));  // [B, h, T, d]
  const bool rel = cfg.relative_attention && rel_emb.defined();
  // As transformers: the factor counts pos_att_type even when relative_attention is off.
  const double scale_factor = 1.0 + (c2p ? 1 : 0) + (p2c ? 1 : 0);
  const double scale = std::sqrt(static_cast<double>(head_dim) * scale_factor);
  at::Tensor scores = at::matmul(q, k.transpose(-1, -2) / scale);
  if (rel) {
    const int64_t span = cfg.relative_span();
    // Only rows span ± max|rel| of the 2·span relative embeddings are ever gathered: project just those
    // (the same numbers as projecting all, at T / span of the cost when T < span).
    const int64_t rmax = rel_pos.numel() ? rel_pos.abs().max().item<int64_t>() : 0;
    const int64_t lo = std::max<int64_t>(0, span - rmax), hi = std::min<int64_t>(2 * span - 1, span + rmax);
    at::Tensor R = pos_dropout(rel_emb.slice(0, lo, hi + 1)).unsqueeze(0);  // [1, rows, H]
    at::Tensor pos_key, pos_query;
    if (cfg.share_att_key) {
      if (c2p) pos_key = split(key_proj(R));
      if (p2c) pos_query = split(query_proj(R));
    } else {
      if (c2p) pos_key = split(pos_key_proj(R));
      if (p2c) pos_query = split(pos_query_proj(R));
    }
    at::Tensor relp = rel_pos.view({1, 1, T, T});
    if (c2p) {
      // Content-to-position: q_i · k_pos[δ(i, j)], δ = clamp(i − j + span).
      at::Tensor att = at::matmul(q, pos_key.transpose(-1, -2));  // [B, h, T, rows]
      at::Tensor idx = (at::clamp(relp + span, 0, 2 * span - 1) - lo).expand({B, heads, T, T});
      scores = scores + at::gather(att, -1, idx) / scale;
    }
    if (p2c) {
      // Position-to-content: k_j · q_pos[δ(j, i)], δ = clamp(−(i − j) + span), transposed back.
      at::Tensor att = at::matmul(k, pos_query.transpose(-1, -2));  // [B, h, T, rows]
      at::Tensor idx = (at::clamp(-relp + span, 0, 2 * span - 1) - lo).expand({B, heads, T, T});
      scores = scores + at::gather(att, -1, idx).transpose(-1, -2) / scale;
    }
  }
  scores = scores.masked_fill(mask.logical_not(), lowest_value(scores.scalar_type()));
  at::Tensor probs = dropout(at::softmax(scores, -1));
  return at::matmul(probs, v).transpose(1, 2).reshape({B, T, heads * head_dim});
}

DebertaAttentionImpl::DebertaAttentionImpl(const ModelConfig& c) {
  self = register_module("self", DebertaSelfAttention(c));
  output = register_module("output", BertResidualOutput(c, c.hidden_size));
}

at::Tensor DebertaAttentionImpl::forward(const at::Tensor& x, const at::Tensor& mask, const at::Tensor& rel_pos,
                                         const at::Tensor& rel_emb) {
  return output(self(x, mask, rel_pos, rel_emb), x);
}

DebertaLayerImpl::DebertaLayerImpl(const ModelConfig& c) {
  attention = register_module("attention", DebertaAttention(c));
  intermediate = register_module("intermediate", BertIntermediate(c));
  output = register_module("output", BertResidualOutput(c, c.intermediate_size));
}

at::Tensor DebertaLayerImpl::forward(const at::Tensor& x, const at::Tensor& mask, const at::Tensor& rel_pos,
                                     const at::Tensor& rel_emb) {
  at::Tensor a = attention(x, mask, rel_pos, rel_emb);
  return output(intermediate(a), a);
}

DebertaEncoderImpl::DebertaEncoderImpl(const ModelConfig& c) : cfg(c) {
  layer = register_module("layer", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) layer->push_back(DebertaLayer(c));
  if (c.relative_attention) {
    rel_embeddings = register_module("rel_embeddings", torch::nn::Embedding(2 * c.relative_span(), c.hidden_size));
    if (c.norm_rel_ebd == "layer_norm")
      LayerNorm = register_module(
          "LayerNorm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.hidden_size}).eps(c.layer_norm_eps)));
  }
}

at::Tensor DebertaEncoderImpl::forward(const at::Tensor& x, const at::Tensor& attention_mask, int64_t from,
                                       int64_t to) {
  const int64_t T = x.size(1);
  const int64_t L = static_cast<int64_t>(layer->size());
  if (to < 0 || to > L) to = L;
  at::Tensor m = attention_mask.defined() ? attention_mask.to(at::kBool)
                                          : at::ones({x.size(0), T}, x.options().dtype(at::kBool));
  at::Tensor mask = (m.unsqueeze(1).unsqueeze(2) & m.unsqueeze(1).unsqueeze(3));  // [B, 1, T, T]
  at::Tensor rel_pos, rel_emb;
  if (cfg.relative_attention) {
    rel_pos = build_relative_position(T, T, cfg.position_buckets, cfg.effective_max_relative_positions()).to(x.device());
    rel_emb = rel_embeddings->weight;
    if (LayerNorm) rel_emb = LayerNorm(rel_emb);
  }
  at::Tensor h = x;
  for (int64_t i = from; i < to; ++i) h = layer->ptr(i)->as<DebertaLayerImpl>()->forward(h, mask, rel_pos, rel_emb);
  return h;
}

DebertaModelImpl::DebertaModelImpl(const ModelConfig& c) {
  embeddings = register_module("embeddings", DebertaEmbeddings(c));
  encoder = register_module("encoder", DebertaEncoder(c));
}

at::Tensor DebertaModelImpl::forward(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                                     const at::Tensor& token_type_ids) {
  at::Tensor mask = attention_mask.defined() ? attention_mask : at::ones_like(input_ids);
  return encoder(embeddings(input_ids, token_type_ids, mask), mask);
}

DebertaPoolerImpl::DebertaPoolerImpl(const ModelConfig& c) : act(c.pooler_hidden_act) {
  const int64_t out = c.pooler_hidden_size > 0 ? c.pooler_hidden_size : c.hidden_size;
  dense = register_module("dense", AdaptableLinear(c.hidden_size, out));
  dropout = register_module("dropout", torch::nn::Dropout(c.pooler_dropout));
}

at::Tensor DebertaPoolerImpl::forward(const at::Tensor& hidden) { return from_first(hidden.select(1, 0)); }

at::Tensor DebertaPoolerImpl::from_first(const at::Tensor& first) { return apply_activation(act, dense(dropout(first))); }

DebertaClassifierImpl::DebertaClassifierImpl(const ModelConfig& c) : TaskModelImpl(c) {
  base = register_module("deberta", DebertaModel(c));
  pooler = register_module("pooler", DebertaPooler(c));
  const int64_t out = c.pooler_hidden_size > 0 ? c.pooler_hidden_size : c.hidden_size;
  classifier = register_module("classifier", AdaptableLinear(out, c.num_labels));
  dropout = register_module("dropout", torch::nn::Dropout(c.cls_dropout >= 0 ? c.cls_dropout : c.hidden_dropout_prob));
}

at::Tensor DebertaClassifierImpl::forward(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                                          const at::Tensor& token_type_ids) {
  return classifier(dropout(pooler(base(input_ids, attention_mask, token_type_ids))));
}

std::vector<TaskModelImpl::Stage> DebertaClassifierImpl::prefix_stages() {
  std::vector<Stage> st;
  st.push_back({"deberta.embeddings", base->embeddings.ptr(), true});
  const int64_t L = static_cast<int64_t>(base->encoder->layer->size());
  // The relative embeddings (and their LayerNorm) feed every layer: layer 0's stage carries them, so that a
  // cut above it needs them frozen too.
  for (int64_t i = 0; i < L; ++i) {
    std::shared_ptr<torch::nn::Module> mod = base->encoder->layer->ptr(i);
    if (i == 0 && base->encoder->rel_embeddings) {
      auto group = std::make_shared<torch::nn::Module>("DebertaLayerWithRelativeEmbeddings");
      group->register_module("layer", mod);
      group->register_module("rel_embeddings", base->encoder->rel_embeddings.ptr());
      if (base->encoder->LayerNorm) group->register_module("LayerNorm", base->encoder->LayerNorm.ptr());
      mod = group;
    }
    st.push_back({"deberta.encoder.layer." + std::to_string(i), mod, i + 1 < L});
  }
  st.push_back({"pooler", pooler.ptr(), false, cfg.pooler_hidden_size > 0 ? cfg.pooler_hidden_size : cfg.hidden_size});
  return st;
}

at::Tensor DebertaClassifierImpl::forward_to(int64_t k, const at::Tensor& input_ids, const at::Tensor& attention_mask,
                                             const at::Tensor& token_type_ids) {
  const int64_t L = static_cast<int64_t>(base->encoder->layer->size());
  if (k < 1 || k > L + 2) throw Error("forward_to: cut " + std::to_string(k) + " is not in 1.." + std::to_string(L + 2));
  at::Tensor mask = attention_mask.defined() ? attention_mask : at::ones_like(input_ids);
  at::Tensor h = base->embeddings(input_ids, token_type_ids, mask);
  if (k == 1) return h;
  h = base->encoder->forward(h, mask, 0, std::min(k - 1, L));
  if (k - 1 < L) return h;
  at::Tensor first = h.select(1, 0);
  return k == L + 1 ? first : pooler->from_first(first);
}

at::Tensor DebertaClassifierImpl::forward_from(int64_t k, const at::Tensor& state, const at::Tensor& attention_mask,
                                               const at::Tensor& /*token_type_ids: in the state already*/) {
  const int64_t L = static_cast<int64_t>(base->encoder->layer->size());
  at::Tensor pooled;
  if (k <= L)
    pooled = pooler->from_first(base->encoder->forward(state, attention_mask, k - 1).select(1, 0));
  else if (k == L + 1)
    pooled = pooler->from_first(state);
  else
    pooled = state;
  return classifier(dropout(pooled));
}

void DebertaClassifierImpl::init_weights() { init_hf_weights(*this, cfg.initializer_range); }

}  // namespace lorakit
