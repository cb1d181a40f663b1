// Extractive question answering: *ForQuestionAnswering of transformers for BERT, RoBERTa, DistilBERT and
// DeBERTa-v2/v3 — the family's encoder (under its usual prefix, no pooler) and `qa_outputs`, a Linear
// hidden → 2 on every token (DistilBERT puts dropout(qa_dropout = 0.1) before it, as transformers does) —
// and the same token-level head on USE-lite's last encoder states ("use." + "qa_outputs"; question and
// context as one sequence). forward() returns [B, T, 2]: start logits [..., 0], end logits [..., 1].
// A model is built this way when ModelConfig::head is "question-answering" (config.json's architectures
// "*ForQuestionAnswering").
#pragma once
#include <functional>

#include "models/layers.h"
#include "models/task_model.h"

namespace lorakit {

struct QuestionAnsweringModelImpl : TaskModelImpl {
  explicit QuestionAnsweringModelImpl(const ModelConfig& c);
  at::Tensor forward(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                     const at::Tensor& token_type_ids) override;
  void init_weights() override;
  std::shared_ptr<torch::nn::Module> base;  // the family's encoder, registered under base_prefix()
  std::function<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&)> encode;  // → [B, T, H]
  torch::nn::Dropout dropout{nullptr};
  AdaptableLinear qa_outputs{nullptr};
};

}  // namespace lorakit
