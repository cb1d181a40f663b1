// config.json of a Hugging Face encoder (BERT / RoBERTa family).
#pragma once
#include <map>
#include <string>
#include <vector>

namespace lorakit {

struct ModelConfig {
  std::string model_type = "bert";  // "bert" | "roberta" | "use-lite"
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
  // USE-lite only: how sentence pairs reach the head: "bi-encoder", "concat" or "single".
  std::string pair_mode = "bi-encoder";

  // The attribute under which the encoder lives in a task model: "bert" or "roberta".
  std::string base_prefix() const { return model_type; }
  bool is_roberta() const { return model_type == "roberta"; }
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
