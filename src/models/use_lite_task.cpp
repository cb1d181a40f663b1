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

at::Tensor UseLiteClassifierImpl::forward(const at::Tensor& ids, const at::Tensor& attention_mask,
                                          const at::Tensor& token_type_ids) {
  at::Tensor mask = attention_mask.defined() ? attention_mask.to(at::kLong) : at::ones_like(ids);
  const bool pairs = cfg.pair_mode == "bi-encoder" && token_type_ids.defined() &&
                     (token_type_ids * mask).max().item<int64_t>() > 0;
  if (cfg.pair_mode == "bi-encoder" && !pairs)
    throw Error("use-lite bi-encoder head needs sentence pairs (token type 1 for the second sentence)");
  if (!pairs) return classifier(use(ids, mask));
  // Pairs are laid out [a][b][padding] with token types 0 / 1: cut them apart, left-aligned, and run
  // both halves through the encoder as one batch of 2B.
  const int64_t B = ids.size(0), T = ids.size(1);
  at::Tensor is_b = token_type_ids.to(at::kLong).gt(0).to(at::kLong) * mask;
  at::Tensor lb = is_b.sum(1), la = mask.sum(1) - lb;  // [B]
  const int64_t L = std::max<int64_t>(1, std::max(la.max().item<int64_t>(), lb.max().item<int64_t>()));
  at::Tensor pos = at::arange(L, ids.options().dtype(at::kLong)).unsqueeze(0).expand({B, L});
  at::Tensor mask_a = pos.lt(la.unsqueeze(1)).to(at::kLong);
  at::Tensor mask_b = pos.lt(lb.unsqueeze(1)).to(at::kLong);
  at::Tensor idx_a = pos.clamp_max(T - 1);
  at::Tensor idx_b = (pos + la.unsqueeze(1)).clamp_max(T - 1);
  at::Tensor ids_a = at::gather(ids, 1, idx_a) * mask_a;
  at::Tensor ids_b = at::gather(ids, 1, idx_b) * mask_b;
  at::Tensor emb = use(at::cat({ids_a, ids_b}, 0), at::cat({mask_a, mask_b}, 0));
  at::Tensor u = emb.narrow(0, 0, B), v = emb.narrow(0, B, B);
  return classifier(at::cat({u, v, (u - v).abs(), u * v}, 1));
}

}  // namespace lorakit
