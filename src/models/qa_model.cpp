#include "models/qa_model.h"

#include <ATen/ATen.h>

#include "core/errors.h"
#include "models/bert.h"
#include "models/deberta.h"
#include "models/distilbert.h"
#include "models/use_lite.h"

namespace lorakit {

QuestionAnsweringModelImpl::QuestionAnsweringModelImpl(const ModelConfig& c) : TaskModelImpl(c) {
  double p = 0.0;
  if (c.model_type == "bert" || c.model_type == "roberta") {
    auto m = register_module(c.base_prefix(), BertModel(c, /*add_pooler=*/false));
    base = m;
    encode = [m](const at::Tensor& ids, const at::Tensor& mask, const at::Tensor& tt) { return m->forward(ids, mask, tt); };
  } else if (c.model_type == "distilbert") {
    auto m = register_module(c.base_prefix(), DistilBertModel(c));
    base = m;
    encode = [m](const at::Tensor& ids, const at::Tensor& mask, const at::Tensor&) { return m->forward(ids, mask); };
    p = c.qa_dropout;
  } else if (c.model_type == "deberta-v2") {
    auto m = register_module(c.base_prefix(), DebertaModel(c));
    base = m;
    encode = [m](const at::Tensor& ids, const at::Tensor& mask, const at::Tensor& tt) { return m->forward(ids, mask, tt); };
  } else if (c.model_type == "use-lite") {
    auto m = register_module("use", UseLiteModel(UseLiteConfig{}));
    base = m;
    encode = [m](const at::Tensor& ids, const at::Tensor& mask, const at::Tensor&) {
      return m->encode(ids, mask.defined() ? mask : at::ones_like(ids));
    };
  } else {
    throw Error("model_type '" + c.model_type + "' has no question-answering head (bert, roberta, distilbert, "
                "deberta-v2 and use-lite have)");
  }
  dropout = register_module("dropout", torch::nn::Dropout(p));
  qa_outputs = register_module("qa_outputs", AdaptableLinear(c.hidden_size, 2));
}

at::Tensor QuestionAnsweringModelImpl::forward(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                                               const at::Tensor& token_type_ids) {
  at::Tensor h = encode(input_ids, attention_mask, token_type_ids);
  at::Tensor logits = qa_outputs(dropout(h));
  // USE-lite clips inputs to its 128 positions; pad the logits back to T (those positions never win:
  // the features never put context there).
  const int64_t T = input_ids.size(1);
  if (logits.size(1) < T)
    logits = at::constant_pad_nd(logits, {0, 0, 0, T - logits.size(1)}, -1e4);
  return logits;
}

void QuestionAnsweringModelImpl::init_weights() {
  if (cfg.model_type == "use-lite") {
    qa_outputs->reset_parameters(cfg.initializer_range);
    return;
  }
  init_hf_weights(*this, cfg.initializer_range);
}

}  // namespace lorakit
