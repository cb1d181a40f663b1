// config.json of a Hugging Face encoder: BERT, RoBERTa, DistilBERT, DeBERTa-v2/v3, ViT (and USE-lite).
// One struct for every family: the shared sizes under BERT's names (DistilBERT's dim / n_layers /
// n_heads / hidden_dim / dropout / attention_dropout / activation are read into and written back from
// them), family-only settings below, each with transformers' default for its family.
#pragma once
#include <map>
#include <string>
#include <vector>

namespace lorakit {

struct ModelConfig {
  std::string model_type = "bert";  // "bert" | "roberta" | "distilbert" | "deberta-v2" | "vit" | "use-lite"
  int64_t vocab_size = 30522;
  int64_t hidden_size = 768;
  int64_t num_hidden_layers = 12;
  int64_t num_attention_heads = 12;
  int64_t intermediate_size = 3072;
  std::string hidden_act = "gelu";
  double hidden_dropout_prob = 0.1;
  double attention_probs_dropout_prob = 0.1;
  double classifier_dropout = -1;  // < 0: use hidden_dropout_prob (HF's None)
  int64_t max_position_embeddings = 512;
  int64_t type_vocab_size = 2;
  double layer_norm_eps = 1e-12;
  double initializer_range = 0.02;
  int64_t pad_token_id = 0;
  int64_t num_labels = 2;
  std::string problem_type;                     // "", "regression", "single_label_classification"
  std::vector<std::string> id2label;             // optional
  std::string torch_dtype = "float32";
  // The task head: "sequence-classification" (*ForSequenceClassification / ViTForImageClassification) or
  // "question-answering" (*ForQuestionAnswering: qa_outputs on every token, models/qa_model.h). Read off
  // config.json's architectures.
  std::string head = "sequence-classification";
  bool is_question_answering() const { return head == "question-answering"; }
  // USE-lite only: how sentence pairs reach the head: "bi-encoder", "concat" or "single".
  std::string pair_mode = "bi-encoder";

  // DistilBERT only.
  bool sinusoidal_pos_embds = false;
  double seq_classif_dropout = 0.2;
  double qa_dropout = 0.1;

  // DeBERTa-v2/v3 only (DebertaV2Config and the getattr defaults of modeling_deberta_v2.py).
  bool relative_attention = false;
  int64_t max_relative_positions = -1;  // < 1: max_position_embeddings
  int64_t position_buckets = -1;        // > 0: log-bucketed relative positions
  std::vector<std::string> pos_att_type;  // subset of {"c2p", "p2c"}
  bool share_att_key = false;
  std::string norm_rel_ebd = "none";  // "none" | "layer_norm"
  bool position_biased_input = true;
  int64_t embedding_size = -1;        // < 0: hidden_size
  int64_t pooler_hidden_size = -1;    // < 0: hidden_size
  std::string pooler_hidden_act = "gelu";
  double pooler_dropout = 0.0;
  double cls_dropout = -1;            // < 0: hidden_dropout_prob

  // ViT only.
  int64_t image_size = 224, patch_size = 16, num_channels = 3;
  bool qkv_bias = true;

  // The attribute under which the encoder lives in a task model: "bert", "roberta", "distilbert",
  // "deberta", "vit" (or "use").
  std::string base_prefix() const;
  bool is_roberta() const { return model_type == "roberta"; }
  bool is_vit() const { return model_type == "vit"; }
  // PEFT's default LoRA targets for the family (query,value; q_lin,v_lin; query_proj,value_proj).
  std::vector<std::string> default_lora_targets() const;
  // The task head's modules, trained in full by default (classifier; pre_classifier + classifier for
  // DistilBERT; pooler + classifier for DeBERTa).
  std::vector<std::string> head_modules() const;
  // DeBERTa: the span of relative positions (position_buckets, or max_relative_positions).
  int64_t relative_span() const;
  int64_t effective_max_relative_positions() const {
    return max_relative_positions < 1 ? max_position_embeddings : max_relative_positions;
  }
  // The most tokens one sequence may have: max_position_embeddings, or for RoBERTa (positions start at
  // pad_token_id + 1) max_position_embeddings − pad_token_id − 1 (512 for roberta-base).
  int64_t max_tokens() const { return is_roberta() ? max_position_embeddings - pad_token_id - 1 : max_position_embeddings; }
  bool is_regression() const { return problem_type == "regression" || num_labels == 1; }

  // Parses config.json text; `source` (a path) is named in every error, as is the offending key.
  static ModelConfig from_json_text(const std::string& text, const std::string& source);
  static ModelConfig from_file(const std::string& path);
  std::string to_json_text() const;  // loadable by transformers
  void validate(const std::string& source) const;
};

}  // namespace lorakit
