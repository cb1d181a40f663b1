#include "models/config.h"

#include <nlohmann/json.hpp>

#include "core/errors.h"
#include "core/fileutil.h"

namespace lorakit {
namespace {
using json = nlohmann::json;

template <typename T>
void get_required(const json& j, const char* key, T& out, const std::string& src) {
  if (!j.contains(key)) throw Error(src + ": missing required key '" + key + "'");
  try {
    out = j.at(key).get<T>();
  } catch (const json::exception&) {
    throw Error(src + ": key '" + key + "' has the wrong type (" + j.at(key).dump() + ")");
  }
}
template <typename T>
void get_optional(const json& j, const char* key, T& out, const std::string& src) {
  if (!j.contains(key) || j.at(key).is_null()) return;
  try {
    out = j.at(key).get<T>();
  } catch (const json::exception&) {
    throw Error(src + ": key '" + key + "' has the wrong type (" + j.at(key).dump() + ")");
  }
}
}  // namespace

ModelConfig ModelConfig::from_json_text(const std::string& text, const std::string& src) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw Error(src + ": not valid JSON: " + e.what());
  }
  if (!j.is_object()) throw Error(src + ": expected a JSON object");
  ModelConfig c;
  get_required(j, "model_type", c.model_type, src);
  if (c.model_type != "bert" && c.model_type != "roberta" && c.model_type != "use-lite")
    throw Error(src + ": model_type '" + c.model_type + "' is not supported (bert, roberta, use-lite)");
  if (c.is_roberta()) {  // RoBERTa's defaults differ from BERT's
    c.vocab_size = 50265;
    c.type_vocab_size = 1;
    c.pad_token_id = 1;
    c.max_position_embeddings = 514;
    c.layer_norm_eps = 1e-5;
  }
  get_required(j, "vocab_size", c.vocab_size, src);
  get_required(j, "hidden_size", c.hidden_size, src);
  get_required(j, "num_hidden_layers", c.num_hidden_layers, src);
  get_required(j, "num_attention_heads", c.num_attention_heads, src);
  get_required(j, "intermediate_size", c.intermediate_size, src);
  get_optional(j, "hidden_act", c.hidden_act, src);
  get_optional(j, "hidden_dropout_prob", c.hidden_dropout_prob, src);
  get_optional(j, "attention_probs_dropout_prob", c.attention_probs_dropout_prob, src);
  get_optional(j, "classifier_dropout", c.classifier_dropout, src);
  get_required(j, "max_position_embeddings", c.max_position_embeddings, src);
  get_optional(j, "type_vocab_size", c.type_vocab_size, src);
  get_optional(j, "layer_norm_eps", c.layer_norm_eps, src);
  get_optional(j, "initializer_range", c.initializer_range, src);
  get_optional(j, "pad_token_id", c.pad_token_id, src);
  get_optional(j, "problem_type", c.problem_type, src);
  get_optional(j, "torch_dtype", c.torch_dtype, src);
  get_optional(j, "pair_mode", c.pair_mode, src);
  if (j.contains("id2label") && j["id2label"].is_object()) {
    const auto& m = j["id2label"];
    c.id2label.assign(m.size(), "");
    for (auto& [k, v] : m.items()) {
      size_t idx = 0;
      try {
        idx = std::stoul(k);
      } catch (...) {
        throw Error(src + ": id2label key '" + k + "' is not an integer");
      }
      if (idx >= m.size() || !v.is_string()) throw Error(src + ": id2label is not a dense 0..n-1 map");
      c.id2label[idx] = v.get<std::string>();
    }
    c.num_labels = static_cast<int64_t>(c.id2label.size());
  }
  get_optional(j, "num_labels", c.num_labels, src);
  c.validate(src);
  return c;
}

void ModelConfig::validate(const std::string& src) const {
  auto positive = [&](int64_t v, const char* k) {
    if (v <= 0) throw Error(src + ": '" + std::string(k) + "' must be positive, got " + std::to_string(v));
  };
  positive(vocab_size, "vocab_size");
  positive(hidden_size, "hidden_size");
  positive(num_hidden_layers, "num_hidden_layers");
  positive(num_attention_heads, "num_attention_heads");
  positive(intermediate_size, "intermediate_size");
  positive(max_position_embeddings, "max_position_embeddings");
  positive(type_vocab_size, "type_vocab_size");
  positive(num_labels, "num_labels");
  if (hidden_size % num_attention_heads != 0)
    throw Error(src + ": hidden_size " + std::to_string(hidden_size) + " is not a multiple of num_attention_heads " +
                std::to_string(num_attention_heads));
  if (hidden_act != "gelu" && hidden_act != "relu" && hidden_act != "gelu_new" && hidden_act != "silu" &&
      hidden_act != "tanh")
    throw Error(src + ": hidden_act '" + hidden_act + "' is not supported (gelu, gelu_new, relu, silu, tanh)");
  if (pad_token_id < 0 || pad_token_id >= vocab_size) throw Error(src + ": pad_token_id out of range");
}

ModelConfig ModelConfig::from_file(const std::string& path) { return from_json_text(read_text_file(path), path); }

std::string ModelConfig::to_json_text() const {
  nlohmann::ordered_json j;
  j["architectures"] = {model_type == "use-lite" ? "UseLiteForSequenceClassification"
                        : is_roberta()          ? "RobertaForSequenceClassification"
                                                : "BertForSequenceClassification"};
  j["model_type"] = model_type;
  j["vocab_size"] = vocab_size;
  j["hidden_size"] = hidden_size;
  j["num_hidden_layers"] = num_hidden_layers;
  j["num_attention_heads"] = num_attention_heads;
  j["intermediate_size"] = intermediate_size;
  j["hidden_act"] = hidden_act;
  j["hidden_dropout_prob"] = hidden_dropout_prob;
  j["attention_probs_dropout_prob"] = attention_probs_dropout_prob;
  if (classifier_dropout >= 0) j["classifier_dropout"] = classifier_dropout;
  j["max_position_embeddings"] = max_position_embeddings;
  j["type_vocab_size"] = type_vocab_size;
  j["layer_norm_eps"] = layer_norm_eps;
  j["initializer_range"] = initializer_range;
  j["pad_token_id"] = pad_token_id;
  if (is_roberta()) {
    j["bos_token_id"] = 0;
    j["eos_token_id"] = 2;
  }
  j["position_embedding_type"] = "absolute";
  if (!problem_type.empty()) j["problem_type"] = problem_type;
  nlohmann::ordered_json i2l = nlohmann::ordered_json::object(), l2i = nlohmann::ordered_json::object();
  for (int64_t i = 0; i < num_labels; ++i) {
    std::string name = i < static_cast<int64_t>(id2label.size()) ? id2label[i] : "LABEL_" + std::to_string(i);
    i2l[std::to_string(i)] = name;
    l2i[name] = i;
  }
  j["id2label"] = i2l;
  j["label2id"] = l2i;
  j["torch_dtype"] = torch_dtype;
  if (model_type == "use-lite") j["pair_mode"] = pair_mode;
  return j.dump(2) + "\n";
}

}  // namespace lorakit
