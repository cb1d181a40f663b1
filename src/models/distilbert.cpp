#include "models/distilbert.h"

#include <cmath>

#include "core/errors.h"

namespace lorakit {

DistilBertEmbeddingsImpl::DistilBertEmbeddingsImpl(const ModelConfig& c) : cfg(c) {
  word_embeddings = register_module(
      "word_embeddings",
      torch::nn::Embedding(torch::nn::EmbeddingOptions(c.vocab_size, c.hidden_size).padding_idx(c.pad_token_id)));
  position_embeddings = register_module("position_embeddings", torch::nn::Embedding(c.max_position_embeddings, c.hidden_size));
  // transformers fixes the sinusoidal table (requires_grad False).
  if (c.sinusoidal_pos_embds) position_embeddings->weight.set_requires_grad(false);
  LayerNorm = register_module("LayerNorm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.hidden_size}).eps(1e-12)));
  dropout = register_module("dropout", torch::nn::Dropout(c.hidden_dropout_prob));
}

at::Tensor DistilBertEmbeddingsImpl::forward(const at::Tensor& input_ids) {
  check_token_ids(input_ids, cfg.vocab_size);
  const int64_t T = input_ids.size(1);
  if (T > cfg.max_position_embeddings)
    throw Error("sequence of " + std::to_string(T) + " tokens exceeds the model's limit of " +
                std::to_string(cfg.max_position_embeddings) + " tokens; use a smaller --max-seq-len");
  at::Tensor pos = at::arange(T, input_ids.options().dtype(at::kLong)).unsqueeze(0);
  return dropout(LayerNorm(word_embeddings(input_ids) + position_embeddings(pos)));
}

DistilBertAttentionImpl::DistilBertAttentionImpl(const ModelConfig& c)
    : heads(c.num_attention_heads), head_dim(c.hidden_size / c.num_attention_heads) {
  q_lin = register_module("q_lin", AdaptableLinear(c.hidden_size, c.hidden_size));
  k_lin = register_module("k_lin", AdaptableLinear(c.hidden_size, c.hidden_size));
  v_lin = register_module("v_lin", AdaptableLinear(c.hidden_size, c.hidden_size));
  out_lin = register_module("out_lin", AdaptableLinear(c.hidden_size, c.hidden_size));
  dropout = register_module("dropout", torch::nn::Dropout(c.attention_probs_dropout_prob));
}

at::Tensor DistilBertAttentionImpl::forward(const at::Tensor& x, const at::Tensor& mask_bias, bool first_only) {
  const int64_t B = x.size(0), Tq = first_only ? 1 : x.size(1);
  auto split = [&](const at::Tensor& t) { return t.view({B, t.size(1), heads, head_dim}).transpose(1, 2); };
  // transformers scales q before the product: q / sqrt(dim_per_head).
  at::Tensor q = split(q_lin(first_only ? x.narrow(1, 0, 1) : x)) / std::sqrt(static_cast<double>(head_dim));
  at::Tensor k = split(k_lin(x)), v = split(v_lin(x));
  at::Tensor scores = at::matmul(q, k.transpose(-1, -2)) + mask_bias;
  at::Tensor ctx = at::matmul(dropout(at::softmax(scores, -1)), v);
  return out_lin(ctx.transpose(1, 2).reshape({B, Tq, heads * head_dim}));
}

DistilBertFFNImpl::DistilBertFFNImpl(const ModelConfig& c) : act(c.hidden_act) {
  lin1 = register_module("lin1", AdaptableLinear(c.hidden_size, c.intermediate_size));
  lin2 = register_module("lin2", AdaptableLinear(c.intermediate_size, c.hidden_size));
  dropout = register_module("dropout", torch::nn::Dropout(c.hidden_dropout_prob));
}

at::Tensor DistilBertFFNImpl::forward(const at::Tensor& x) { return dropout(lin2(apply_activation(act, lin1(x)))); }

DistilBertBlockImpl::DistilBertBlockImpl(const ModelConfig& c) {
  attention = register_module("attention", DistilBertAttention(c));
  sa_layer_norm = register_module("sa_layer_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.hidden_size}).eps(1e-12)));
  ffn = register_module("ffn", DistilBertFFN(c));
  output_layer_norm =
      register_module("output_layer_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.hidden_size}).eps(1e-12)));
}

at::Tensor DistilBertBlockImpl::forward(const at::Tensor& x, const at::Tensor& mask_bias, bool first_only) {
  at::Tensor sa = sa_layer_norm(attention(x, mask_bias, first_only) + (first_only ? x.narrow(1, 0, 1) : x));
  return output_layer_norm(ffn(sa) + sa);
}

DistilBertTransformerImpl::DistilBertTransformerImpl(const ModelConfig& c) {
  layer = register_module("layer", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) layer->push_back(DistilBertBlock(c));
}

at::Tensor DistilBertTransformerImpl::forward(const at::Tensor& x, const at::Tensor& mask_bias, bool prune_last,
                                              int64_t from, int64_t to) {
  at::Tensor h = x;
  const int64_t L = static_cast<int64_t>(layer->size());
  for (int64_t i = from; i < (to < 0 ? L : to); ++i)
    h = layer->ptr(i)->as<DistilBertBlockImpl>()->forward(h, mask_bias, prune_last && i + 1 == L);
  return h;
}

DistilBertModelImpl::DistilBertModelImpl(const ModelConfig& c) {
  embeddings = register_module("embeddings", DistilBertEmbeddings(c));
  transformer = register_module("transformer", DistilBertTransformer(c));
}

at::Tensor DistilBertModelImpl::forward(const at::Tensor& input_ids, const at::Tensor& attention_mask, bool prune_last) {
  at::Tensor h = embeddings(input_ids);
  return transformer->forward(h, additive_mask_bias(attention_mask, h), prune_last);
}

DistilBertClassifierImpl::DistilBertClassifierImpl(const ModelConfig& c) : TaskModelImpl(c) {
  base = register_module("distilbert", DistilBertModel(c));
  pre_classifier = register_module("pre_classifier", AdaptableLinear(c.hidden_size, c.hidden_size));
  classifier = register_module("classifier", AdaptableLinear(c.hidden_size, c.num_labels));
  dropout = register_module("dropout", torch::nn::Dropout(c.seq_classif_dropout));
}

at::Tensor DistilBertClassifierImpl::forward(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                                             const at::Tensor& /*token_type_ids: DistilBERT has none*/) {
  at::Tensor h = base(input_ids, attention_mask, prune_last_layer).select(1, 0);
  return classifier(dropout(at::relu(pre_classifier(h))));
}

std::vector<TaskModelImpl::Stage> DistilBertClassifierImpl::prefix_stages() {
  std::vector<Stage> st;
  st.push_back({"distilbert.embeddings", base->embeddings.ptr(), true});
  const int64_t L = static_cast<int64_t>(base->transformer->layer->size());
  for (int64_t i = 0; i < L; ++i)
    st.push_back({"distilbert.transformer.layer." + std::to_string(i), base->transformer->layer->ptr(i), i + 1 < L});
  return st;
}

at::Tensor DistilBertClassifierImpl::forward_to(int64_t k, const at::Tensor& input_ids, const at::Tensor& attention_mask,
                                                const at::Tensor& /*token_type_ids*/) {
  const int64_t L = static_cast<int64_t>(base->transformer->layer->size());
  if (k < 1 || k > L + 1) throw Error("forward_to: cut " + std::to_string(k) + " is not in 1.." + std::to_string(L + 1));
  at::Tensor h = base->embeddings(input_ids);
  if (k == 1) return h;
  h = base->transformer->forward(h, additive_mask_bias(attention_mask, h), prune_last_layer, 0, k - 1);
  return k == L + 1 ? h.select(1, 0) : h;
}

at::Tensor DistilBertClassifierImpl::forward_from(int64_t k, const at::Tensor& state, const at::Tensor& attention_mask,
                                                  const at::Tensor& /*token_type_ids*/) {
  const int64_t L = static_cast<int64_t>(base->transformer->layer->size());
  at::Tensor first = state;
  if (k <= L)
    first = base->transformer->forward(state, additive_mask_bias(attention_mask, state), prune_last_layer, k - 1)
                .select(1, 0);
  return classifier(dropout(at::relu(pre_classifier(first))));
}

at::Tensor sinusoidal_positions(int64_t n_pos, int64_t dim) {
  at::Tensor out = at::zeros({n_pos, dim}, at::kDouble);
  auto a = out.accessor<double, 2>();
  for (int64_t p = 0; p < n_pos; ++p)
    for (int64_t j = 0; j < dim; ++j) {
      const double angle = p / std::pow(10000.0, 2.0 * (j / 2) / static_cast<double>(dim));
      a[p][j] = j % 2 == 0 ? std::sin(angle) : std::cos(angle);
    }
  return out.to(at::kFloat);
}

void DistilBertClassifierImpl::init_weights() {
  init_hf_weights(*this, cfg.initializer_range);
  if (cfg.sinusoidal_pos_embds) {
    torch::NoGradGuard g;
    base->embeddings->position_embeddings->weight.copy_(
        sinusoidal_positions(cfg.max_position_embeddings, cfg.hidden_size));
  }
}

}  // namespace lorakit
