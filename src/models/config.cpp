#include "models/config.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/errors.h"
#include "core/fileutil.h"

namespace lorakit {
namespace {
using json = nlohmann::json;

// j[key] as T. Integer settings take JSON integers, or floats with an integral value (16.0), inside
// int64's range; anything else (16.5, 2e40, 2^64 - 1, "16") has the wrong type.
template <typename T>
T convert(const json& v) {
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    if (v.is_number_unsigned()) {
      if (v.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<T>::max())) throw std::out_of_range("integer");
    } else if (v.is_number_float()) {
      const double d = v.get<double>();
      // 2^63 is the first double past int64's range; NaN fails both comparisons.
      if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0) || d != std::floor(d))
        throw std::out_of_range("not an integer");
      return static_cast<T>(d);
    }
  }
  return v.get<T>();
}

template <typename T>
void get_required(const json& j, const char* key, T& out, const std::string& src) {
  if (!j.contains(key)) throw Error(src + ": missing required key '" + key + "'");
  try {
    out = convert<T>(j.at(key));
  } catch (const std::exception&) {  // json::type_error, std::out_of_range
    throw Error(src + ": key '" + key + "' has the wrong type (" + j.at(key).dump() + ")");
  }
}
template <typename T>
void get_optional(const json& j, const char* key, T& out, const std::string& src) {
  if (!j.contains(key) || j.at(key).is_null()) return;
  try {
    out = convert<T>(j.at(key));
  } catch (const std::exception&) {  // json::type_error, std::out_of_range
    throw Error(src + ": key '" + key + "' has the wrong type (" + j.at(key).dump() + ")");
  }
}
}  // namespace

namespace {
constexpr int64_t kMaxLabels = int64_t{1} << 20;
const char* kFamilies = "bert, roberta, distilbert, deberta-v2, vit, use-lite";

void read_id2label(const json& j, ModelConfig& c, const std::string& src) {
  if (!j.contains("id2label") || !j["id2label"].is_object()) return;
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

// BERT, RoBERTa, USE-lite: BertConfig's names, the sizes required.
void read_bert_like(const json& j, ModelConfig& c, const std::string& src) {
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
  get_optional(j, "pair_mode", c.pair_mode, src);
  std::string pet = "absolute";
  get_optional(j, "position_embedding_type", pet, src);
  if (pet != "absolute")
    throw Error(src + ": position_embedding_type '" + pet + "' is not supported (absolute)");
}

// DistilBertConfig: dim, n_layers, n_heads, hidden_dim, dropout, attention_dropout, activation.
void read_distilbert(const json& j, ModelConfig& c, const std::string& src) {
  c.layer_norm_eps = 1e-12;  // fixed in modeling_distilbert.py
  c.type_vocab_size = 1;
  c.hidden_act = "gelu";
  get_required(j, "vocab_size", c.vocab_size, src);
  get_required(j, "dim", c.hidden_size, src);
  get_required(j, "n_layers", c.num_hidden_layers, src);
  get_required(j, "n_heads", c.num_attention_heads, src);
  get_required(j, "hidden_dim", c.intermediate_size, src);
  get_optional(j, "max_position_embeddings", c.max_position_embeddings, src);
  get_optional(j, "activation", c.hidden_act, src);
  get_optional(j, "dropout", c.hidden_dropout_prob, src);
  get_optional(j, "attention_dropout", c.attention_probs_dropout_prob, src);
  get_optional(j, "seq_classif_dropout", c.seq_classif_dropout, src);
  get_optional(j, "qa_dropout", c.qa_dropout, src);
  get_optional(j, "sinusoidal_pos_embds", c.sinusoidal_pos_embds, src);
  get_optional(j, "initializer_range", c.initializer_range, src);
  get_optional(j, "pad_token_id", c.pad_token_id, src);

}

// DebertaV2Config plus the settings modeling_deberta_v2.py reads with getattr.
void read_deberta_v2(const json& j, ModelConfig& c, const std::string& src) {
  c.vocab_size = 128100;
  c.type_vocab_size = 0;
  c.layer_norm_eps = 1e-7;
  get_required(j, "vocab_size", c.vocab_size, src);
  get_required(j, "hidden_size", c.hidden_size, src);
  get_required(j, "num_hidden_layers", c.num_hidden_layers, src);
  get_required(j, "num_attention_heads", c.num_attention_heads, src);
  get_required(j, "intermediate_size", c.intermediate_size, src);
  get_optional(j, "hidden_act", c.hidden_act, src);
  get_optional(j, "hidden_dropout_prob", c.hidden_dropout_prob, src);
  get_optional(j, "attention_probs_dropout_prob", c.attention_probs_dropout_prob, src);
  get_optional(j, "max_position_embeddings", c.max_position_embeddings, src);
  get_optional(j, "type_vocab_size", c.type_vocab_size, src);
  get_optional(j, "layer_norm_eps", c.layer_norm_eps, src);
  get_optional(j, "initializer_range", c.initializer_range, src);
  get_optional(j, "pad_token_id", c.pad_token_id, src);
  get_optional(j, "relative_attention", c.relative_attention, src);
  get_optional(j, "max_relative_positions", c.max_relative_positions, src);
  get_optional(j, "position_buckets", c.position_buckets, src);
  get_optional(j, "share_att_key", c.share_att_key, src);
  get_optional(j, "norm_rel_ebd", c.norm_rel_ebd, src);
  get_optional(j, "position_biased_input", c.position_biased_input, src);
  get_optional(j, "embedding_size", c.embedding_size, src);
  get_optional(j, "pooler_hidden_size", c.pooler_hidden_size, src);
  get_optional(j, "pooler_hidden_act", c.pooler_hidden_act, src);
  get_optional(j, "pooler_dropout", c.pooler_dropout, src);
  get_optional(j, "cls_dropout", c.cls_dropout, src);
  // pos_att_type: a list, or a "p2c|c2p" string (DebertaV2Config lower-cases and splits it).
  if (j.contains("pos_att_type") && !j["pos_att_type"].is_null()) {
    const auto& v = j["pos_att_type"];
    std::vector<std::string> parts;
    if (v.is_string()) {
      std::string s = v.get<std::string>(), cur;
      for (char ch : s + "|") {
        if (ch == '|') {
          // DebertaV2Config strips each part: "p2c | c2p" is fine.
          const auto b = cur.find_first_not_of(" \t"), e = cur.find_last_not_of(" \t");
          if (b != std::string::npos) parts.push_back(cur.substr(b, e - b + 1));
          cur.clear();
        } else {
          cur += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        }
      }
    } else if (v.is_array()) {
      for (auto& e : v) {
        if (!e.is_string()) throw Error(src + ": 'pos_att_type' must hold strings, got " + v.dump());
        parts.push_back(e.get<std::string>());
      }
    } else {
      throw Error(src + ": key 'pos_att_type' has the wrong type (" + v.dump() + ")");
    }
    for (auto& p : parts) {
      if (p != "c2p" && p != "p2c")
        throw Error(src + ": pos_att_type '" + p + "' is not supported (c2p, p2c)");
      if (std::find(c.pos_att_type.begin(), c.pos_att_type.end(), p) == c.pos_att_type.end())
        c.pos_att_type.push_back(p);
    }
  }
  int64_t conv = 0;
  get_optional(j, "conv_kernel_size", conv, src);
  if (conv > 0) throw Error(src + ": conv_kernel_size " + std::to_string(conv) + " (DeBERTa's ConvLayer) is not supported");
  if (j.contains("attention_head_size") && !j["attention_head_size"].is_null()) {
    int64_t ahs = 0;
    get_optional(j, "attention_head_size", ahs, src);
    int64_t total = 0;
    if (c.num_attention_heads > 0 && (__builtin_mul_overflow(ahs, c.num_attention_heads, &total) || total != c.hidden_size))
      throw Error(src + ": attention_head_size " + std::to_string(ahs) + " × heads != hidden_size is not supported");
  }
  if (c.norm_rel_ebd != "none" && c.norm_rel_ebd != "layer_norm")
    throw Error(src + ": norm_rel_ebd '" + c.norm_rel_ebd + "' is not supported (none, layer_norm)");
}

// ViTConfig.
void read_vit(const json& j, ModelConfig& c, const std::string& src) {
  c.hidden_dropout_prob = 0.0;
  c.attention_probs_dropout_prob = 0.0;
  c.type_vocab_size = 1;
  c.vocab_size = 1;
  c.pad_token_id = 0;
  get_required(j, "hidden_size", c.hidden_size, src);
  get_required(j, "num_hidden_layers", c.num_hidden_layers, src);
  get_required(j, "num_attention_heads", c.num_attention_heads, src);
  get_required(j, "intermediate_size", c.intermediate_size, src);
  get_optional(j, "hidden_act", c.hidden_act, src);
  get_optional(j, "hidden_dropout_prob", c.hidden_dropout_prob, src);
  get_optional(j, "attention_probs_dropout_prob", c.attention_probs_dropout_prob, src);
  get_optional(j, "layer_norm_eps", c.layer_norm_eps, src);
  get_optional(j, "initializer_range", c.initializer_range, src);
  get_optional(j, "image_size", c.image_size, src);
  get_optional(j, "patch_size", c.patch_size, src);
  get_optional(j, "num_channels", c.num_channels, src);
  get_optional(j, "qkv_bias", c.qkv_bias, src);
  // One position per patch + [CLS]; a side of more than 2^16 patches is no image (and its square would
  // overflow long before 2^32).
  const int64_t side = c.image_size / std::max<int64_t>(c.patch_size, 1);
  if (side > (int64_t{1} << 16) || side < -(int64_t{1} << 16))
    throw Error(src + ": image_size / patch_size = " + std::to_string(side) + " patches per side is out of range");
  c.max_position_embeddings = side * side + 1;  // a non-positive image_size is validate()'s to name
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
  if (c.model_type == "bert" || c.model_type == "roberta" || c.model_type == "use-lite")
    read_bert_like(j, c, src);
  else if (c.model_type == "distilbert")
    read_distilbert(j, c, src);
  else if (c.model_type == "deberta-v2")
    read_deberta_v2(j, c, src);
  else if (c.model_type == "vit")
    read_vit(j, c, src);
  else
    throw Error(src + ": model_type '" + c.model_type + "' is not supported (" + kFamilies + ")");
  get_optional(j, "problem_type", c.problem_type, src);
  get_optional(j, "torch_dtype", c.torch_dtype, src);
  if (j.contains("architectures") && j["architectures"].is_array() && !j["architectures"].empty() &&
      j["architectures"][0].is_string()) {
    const std::string a = j["architectures"][0].get<std::string>();
    const std::string qa = "ForQuestionAnswering";
    if (a.size() > qa.size() && a.compare(a.size() - qa.size(), qa.size(), qa) == 0) c.head = "question-answering";
  }
  read_id2label(j, c, src);
  get_optional(j, "num_labels", c.num_labels, src);
  c.validate(src);
  return c;
}

std::string ModelConfig::base_prefix() const {
  if (model_type == "deberta-v2") return "deberta";
  if (model_type == "use-lite") return "use";
  return model_type;
}

std::vector<std::string> ModelConfig::default_lora_targets() const {
  if (model_type == "distilbert") return {"q_lin", "v_lin"};
  if (model_type == "deberta-v2") return {"query_proj", "value_proj"};
  if (model_type == "use-lite") return {"qkv", "output"};  // its fused attention input and output projections
  return {"query", "value"};
}

std::vector<std::string> ModelConfig::head_modules() const {
  if (is_question_answering()) return {"qa_outputs"};
  if (model_type == "distilbert") return {"pre_classifier", "classifier"};
  if (model_type == "deberta-v2") return {"pooler", "classifier"};
  return {"classifier"};
}

int64_t ModelConfig::relative_span() const {
  return position_buckets > 0 ? position_buckets : effective_max_relative_positions();
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
  if (model_type == "deberta-v2") {
    if (type_vocab_size < 0) throw Error(src + ": 'type_vocab_size' must not be negative");
  } else {
    positive(type_vocab_size, "type_vocab_size");
  }
  positive(num_labels, "num_labels");
  // The head's size and config.json's id2label grow with it; no real label set comes close.
  if (num_labels > kMaxLabels)
    throw Error(src + ": num_labels " + std::to_string(num_labels) + " is implausibly large (at most " +
                std::to_string(kMaxLabels) + ")");
  if (model_type == "vit") {
    positive(image_size, "image_size");
    positive(patch_size, "patch_size");
    positive(num_channels, "num_channels");
    if (patch_size > image_size) throw Error(src + ": patch_size is larger than image_size");
  }
  if (model_type == "deberta-v2") {
    if (embedding_size == 0 || pooler_hidden_size == 0)
      throw Error(src + ": embedding_size / pooler_hidden_size must be positive");
    if (relative_attention && position_buckets > 0 && position_buckets < 2)
      throw Error(src + ": position_buckets must be at least 2");
    // make_log_bucket_position divides by log((max − 1) / mid): max − 1 must exceed mid.
    if (relative_attention && position_buckets > 0 && effective_max_relative_positions() - 1 <= position_buckets / 2)
      throw Error(src + ": max_relative_positions (" + std::to_string(effective_max_relative_positions()) +
                  ") must exceed position_buckets / 2 + 1 for log buckets");
    if (pooler_hidden_act != "gelu" && pooler_hidden_act != "relu" && pooler_hidden_act != "gelu_new" &&
        pooler_hidden_act != "silu" && pooler_hidden_act != "tanh")
      throw Error(src + ": pooler_hidden_act '" + pooler_hidden_act + "' is not supported");
  }
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
  const char* family = model_type == "use-lite"     ? "UseLite"
                       : is_roberta()               ? "Roberta"
                       : model_type == "distilbert" ? "DistilBert"
                       : model_type == "deberta-v2" ? "DebertaV2"
                       : is_vit()                   ? "ViT"
                                                    : "Bert";
  const char* kind = is_question_answering() ? "ForQuestionAnswering"
                     : is_vit()              ? "ForImageClassification"
                                             : "ForSequenceClassification";
  j["architectures"] = {std::string(family) + kind};
  j["model_type"] = model_type;
  if (model_type == "distilbert") {
    j["vocab_size"] = vocab_size;
    j["dim"] = hidden_size;
    j["n_layers"] = num_hidden_layers;
    j["n_heads"] = num_attention_heads;
    j["hidden_dim"] = intermediate_size;
    j["activation"] = hidden_act;
    j["dropout"] = hidden_dropout_prob;
    j["attention_dropout"] = attention_probs_dropout_prob;
    j["seq_classif_dropout"] = seq_classif_dropout;
    j["qa_dropout"] = qa_dropout;
    j["max_position_embeddings"] = max_position_embeddings;
    j["sinusoidal_pos_embds"] = sinusoidal_pos_embds;
    j["initializer_range"] = initializer_range;
    j["pad_token_id"] = pad_token_id;
  } else {
    if (!is_vit()) j["vocab_size"] = vocab_size;
    j["hidden_size"] = hidden_size;
    j["num_hidden_layers"] = num_hidden_layers;
    j["num_attention_heads"] = num_attention_heads;
    j["intermediate_size"] = intermediate_size;
    j["hidden_act"] = hidden_act;
    j["hidden_dropout_prob"] = hidden_dropout_prob;
    j["attention_probs_dropout_prob"] = attention_probs_dropout_prob;
    if (classifier_dropout >= 0 && !is_vit() && model_type != "deberta-v2") j["classifier_dropout"] = classifier_dropout;
    if (!is_vit()) {
      j["max_position_embeddings"] = max_position_embeddings;
      j["type_vocab_size"] = type_vocab_size;
    }
    j["layer_norm_eps"] = layer_norm_eps;
    j["initializer_range"] = initializer_range;
    if (!is_vit()) j["pad_token_id"] = pad_token_id;
    if (is_roberta()) {
      j["bos_token_id"] = 0;
      j["eos_token_id"] = 2;
    }
    if (model_type == "bert" || is_roberta() || model_type == "use-lite") j["position_embedding_type"] = "absolute";
  }
  if (model_type == "deberta-v2") {
    j["relative_attention"] = relative_attention;
    j["max_relative_positions"] = max_relative_positions;
    j["position_buckets"] = position_buckets;
    j["pos_att_type"] = pos_att_type;
    j["share_att_key"] = share_att_key;
    j["norm_rel_ebd"] = norm_rel_ebd;
    j["position_biased_input"] = position_biased_input;
    if (embedding_size > 0) j["embedding_size"] = embedding_size;
    j["pooler_hidden_size"] = pooler_hidden_size > 0 ? pooler_hidden_size : hidden_size;
    j["pooler_hidden_act"] = pooler_hidden_act;
    j["pooler_dropout"] = pooler_dropout;
    if (cls_dropout >= 0) j["cls_dropout"] = cls_dropout;
  }
  if (is_vit()) {
    j["image_size"] = image_size;
    j["patch_size"] = patch_size;
    j["num_channels"] = num_channels;
    j["qkv_bias"] = qkv_bias;
    j["encoder_stride"] = patch_size;
  }
  if (!problem_type.empty()) j["problem_type"] = problem_type;
  // ordered_json's operator[] finds a key by linear search: filling id2label / label2id through it took
  // time quadratic in num_labels (10 s for 111111 labels, found by the model_config fuzz smoke run).
  // The entries go straight into its underlying vector instead, in the same order, the last id of a
  // repeated label name winning as before.
  nlohmann::ordered_json i2l = nlohmann::ordered_json::object(), l2i = nlohmann::ordered_json::object();
  using Entries = std::vector<std::pair<const std::string, nlohmann::ordered_json>>;
  Entries& i2l_entries = i2l.get_ref<nlohmann::ordered_json::object_t&>();
  Entries& l2i_entries = l2i.get_ref<nlohmann::ordered_json::object_t&>();
  std::unordered_map<std::string, size_t> l2i_at;
  for (int64_t i = 0; i < num_labels; ++i) {
    std::string name = i < static_cast<int64_t>(id2label.size()) ? id2label[i] : "LABEL_" + std::to_string(i);
    i2l_entries.emplace_back(std::to_string(i), name);
    auto [it, fresh] = l2i_at.emplace(name, l2i_entries.size());
    if (fresh) l2i_entries.emplace_back(name, i);
    else l2i_entries[it->second].second = i;
  }
  j["id2label"] = i2l;
  j["label2id"] = l2i;
  j["torch_dtype"] = torch_dtype;
  if (model_type == "use-lite") j["pair_mode"] = pair_mode;
  return j.dump(2) + "\n";
}

}  // namespace lorakit
