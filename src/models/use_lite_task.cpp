#include "models/use_lite_task.h"

#include <ATen/ATen.h>

#include "core/errors.h"

namespace lorakit {

ModelConfig use_lite_model_config(int64_t num_labels, const std::string& pair_mode) {
  UseLiteConfig u;
  ModelConfig c;
  c.model_type = "use-lite";
  c.vocab_size = u.vocab_size;
  c.hidden_size = u.output_dim;
  c.num_hidden_layers = u.num_layers();
  c.num_attention_heads = u.num_heads.at(0);
  c.intermediate_size = u.ffn_size;
  c.max_position_embeddings = u.max_length;
  c.type_vocab_size = 2;
  c.pad_token_id = 0;
  c.hidden_dropout_prob = 0.1;  // the head's dropout; the pretrained encoder has none
  c.num_labels = num_labels;
  c.pair_mode = pair_mode;
  return c;
}

UseLiteClassifierImpl::UseLiteClassifierImpl(const ModelConfig& c) : TaskModelImpl(c) {
  if (c.pair_mode != "bi-encoder" && c.pair_mode != "concat" && c.pair_mode != "single")
    throw Error("use-lite: pair_mode must be bi-encoder, concat or single, got '" + c.pair_mode + "'");
  use = register_module("use", UseLiteModel(UseLiteConfig{}));
  const int64_t d = use->cfg.output_dim;
  const int64_t in = c.pair_mode == "bi-encoder" ? 4 * d : d;
  const double p = c.classifier_dropout >= 0 ? c.classifier_dropout : c.hidden_dropout_prob;
  classifier = register_module("classifier", ClassificationHead(in, d, c.num_labels, p));
}

void UseLiteClassifierImpl::init_weights() {
  classifier->dense->reset_parameters(cfg.initializer_range);
  classifier->out_proj->reset_parameters(cfg.initializer_range);
}

namespace {

// A batch of pairs laid out [a][b][padding] (token types 0 / 1) as two left-aligned halves of L positions.
struct Halves {
  int64_t B = 0, T = 0, L = 0;
  at::Tensor la, lb;              // [B] the halves' lengths
  at::Tensor idx_a, idx_b;        // [B, L] row positions of each half's tokens (clamped)
  at::Tensor mask_a, mask_b;      // [B, L] 1 on a half's tokens
  at::Tensor mask() const { return at::cat({mask_a, mask_b}, 0); }
  // x [B, T, ...] → [2B, L, ...]: a's positions then b's, zero where a half pads.
  at::Tensor split(const at::Tensor& x) const {
    auto take = [&](const at::Tensor& idx, const at::Tensor& m) {
      if (x.dim() == 2) return at::gather(x, 1, idx) * m.to(x.scalar_type());
      at::Tensor i3 = idx.unsqueeze(-1).expand({B, L, x.size(2)});
      return at::gather(x, 1, i3) * m.unsqueeze(-1).to(x.scalar_type());
    };
    return at::cat({take(idx_a, mask_a), take(idx_b, mask_b)}, 0);
  }
  // h [2B, L', W] (L' ≤ L: the encoder's clip) → [B, T, W] in the row's layout, zero where the row pads (or
  // where a half's token was clipped).
  at::Tensor join(const at::Tensor& h) const {
    const int64_t Lc = h.size(1), W = h.size(2);
    at::Tensor t = at::arange(T, la.options()).unsqueeze(0).expand({B, T});
    at::Tensor in_a = t.lt(la.unsqueeze(1)).logical_and(t.lt(Lc));
    at::Tensor pb = t - la.unsqueeze(1);
    at::Tensor in_b = t.ge(la.unsqueeze(1)).logical_and(pb.lt(lb.unsqueeze(1))).logical_and(pb.lt(Lc));
    auto take = [&](const at::Tensor& half, const at::Tensor& pos) {
      return at::gather(half, 1, pos.clamp(0, Lc - 1).unsqueeze(-1).expand({B, T, W}));
    };
    at::Tensor a = take(h.narrow(0, 0, B), t), b = take(h.narrow(0, B, B), pb);
    const auto dt = h.scalar_type();
    return a * in_a.unsqueeze(-1).to(dt) + b * in_b.unsqueeze(-1).to(dt);
  }
};

Halves halves_of(const at::Tensor& mask, const at::Tensor& token_type_ids) {
  Halves h;
  h.B = mask.size(0);
  h.T = mask.size(1);
  at::Tensor is_b = token_type_ids.to(at::kLong).gt(0).to(at::kLong) * mask;
  h.lb = is_b.sum(1);
  h.la = mask.sum(1) - h.lb;
  h.L = std::max<int64_t>(1, std::max(h.la.max().item<int64_t>(), h.lb.max().item<int64_t>()));
  at::Tensor pos = at::arange(h.L, mask.options().dtype(at::kLong)).unsqueeze(0).expand({h.B, h.L});
  h.mask_a = pos.lt(h.la.unsqueeze(1)).to(at::kLong);
  h.mask_b = pos.lt(h.lb.unsqueeze(1)).to(at::kLong);
  h.idx_a = pos.clamp_max(h.T - 1);
  h.idx_b = (pos + h.la.unsqueeze(1)).clamp_max(h.T - 1);
  return h;
}

}  // namespace

bool UseLiteClassifierImpl::pairs_in(const at::Tensor& mask, const at::Tensor& token_type_ids) const {
  const bool pairs = cfg.pair_mode == "bi-encoder" && token_type_ids.defined() &&
                     (token_type_ids * mask).max().item<int64_t>() > 0;
  if (cfg.pair_mode == "bi-encoder" && !pairs)
    throw Error("use-lite bi-encoder head needs sentence pairs (token type 1 for the second sentence)");
  return pairs;
}

at::Tensor UseLiteClassifierImpl::features(const at::Tensor& emb, int64_t B, bool pairs) {
  if (!pairs) return emb;
  at::Tensor u = emb.narrow(0, 0, B), v = emb.narrow(0, B, B);
  return at::cat({u, v, (u - v).abs(), u * v}, 1);
}

at::Tensor UseLiteClassifierImpl::forward(const at::Tensor& ids, const at::Tensor& attention_mask,
                                          const at::Tensor& token_type_ids) {
  at::Tensor mask = attention_mask.defined() ? attention_mask.to(at::kLong) : at::ones_like(ids);
  if (!pairs_in(mask, token_type_ids)) return classifier(use(ids, mask));
  // Both halves through the encoder as one batch of 2B.
  const Halves h = halves_of(mask, token_type_ids);
  return classifier(features(use(h.split(ids), h.mask()), h.B, true));
}

std::vector<TaskModelImpl::Stage> UseLiteClassifierImpl::prefix_stages() {
  if (use->cfg.dropout > 0 || use->cfg.attention_dropout > 0) return {};  // functional dropout: not a module to see
  std::vector<Stage> st;
  st.push_back({"use.embeddings", use->embeddings.ptr(), true, use->cfg.embed_dim});
  for (int64_t i = 0; i < use->cfg.num_layers(); ++i)
    st.push_back({"use.encoder.layer." + std::to_string(i), use->encoder->layer->ptr(i), true, use->cfg.hidden_size});
  const int64_t d = use->cfg.output_dim;
  st.push_back({"use.tanh_layer", use->tanh_layer.ptr(), false, cfg.pair_mode == "bi-encoder" ? 4 * d : d});
  return st;
}

at::Tensor UseLiteClassifierImpl::forward_to(int64_t k, const at::Tensor& ids, const at::Tensor& attention_mask,
                                             const at::Tensor& token_type_ids) {
  const int64_t L = use->cfg.num_layers();
  if (k < 1 || k > L + 2) throw Error("forward_to: cut " + std::to_string(k) + " is not in 1.." + std::to_string(L + 2));
  at::Tensor mask = attention_mask.defined() ? attention_mask.to(at::kLong) : at::ones_like(ids);
  const bool pairs = pairs_in(mask, token_type_ids);
  Halves h;
  at::Tensor in_ids = ids, in_mask = mask;
  if (pairs) {
    h = halves_of(mask, token_type_ids);
    in_ids = h.split(ids);
    in_mask = h.mask();
  }
  at::Tensor x = use->run_layers(use->embed(in_ids, in_mask), in_mask, 0, std::min(k - 1, L));
  if (k == L + 2) return features(use->head(x, in_mask), ids.size(0), pairs);
  if (pairs) return h.join(x);
  // The row's positions past the encoder's clip (max_length) hold zeros.
  return x.size(1) < ids.size(1) ? at::constant_pad_nd(x, {0, 0, 0, ids.size(1) - x.size(1)}) : x;
}

at::Tensor UseLiteClassifierImpl::forward_from(int64_t k, const at::Tensor& state, const at::Tensor& attention_mask,
                                               const at::Tensor& token_type_ids) {
  const int64_t L = use->cfg.num_layers();
  if (k == L + 2) return classifier(state);
  at::Tensor mask = attention_mask.defined()
                        ? attention_mask.to(at::kLong)
                        : at::ones({state.size(0), state.size(1)}, at::TensorOptions().dtype(at::kLong));
  const bool pairs = pairs_in(mask, token_type_ids);
  at::Tensor x = state, in_mask = mask;
  if (pairs) {
    const Halves h = halves_of(mask, token_type_ids);
    x = h.split(state);
    in_mask = h.mask();
  }
  x = x.narrow(1, 0, std::min<int64_t>(x.size(1), use->cfg.max_length));
  x = use->run_layers(x, in_mask, k - 1, L);
  return classifier(features(use->head(x, in_mask), state.size(0), pairs));
}

}  // namespace lorakit
