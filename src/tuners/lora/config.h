// LoRA configuration with Hugging Face PEFT's names and semantics (LoraConfig).
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace lorakit {

struct LoraConfig {
  int64_t r = 8;
  double lora_alpha = 8.0;
  double lora_dropout = 0.0;
  // Module-name suffixes ("query" matches "...self.query"); or, when target_regex is set, a regex that
  // must match the whole module path (PEFT's string form of target_modules).
  std::vector<std::string> target_modules = {"query", "value"};
  std::string target_regex;
  // Modules trained in full and saved with the adapter (task heads). PEFT adds "classifier" for SEQ_CLS.
  std::vector<std::string> modules_to_save = {"classifier"};
  bool use_rslora = false;              // s = α/√r instead of α/r
  std::string init_lora_weights = "kaiming";  // "kaiming" (A ~ Kaiming-uniform a=√5) | "gaussian" (A ~ N(0, 1/r))

  double scaling() const;
  bool matches(const std::string& module_path) const;
  void validate() const;  // throws lorakit::Error
  // adapter_config.json as PEFT writes it; `extra` goes under the "lorakit" key.
  nlohmann::json to_peft_json(const std::string& base_model, const nlohmann::json& extra) const;
  static LoraConfig from_peft_json(const nlohmann::json& j, const std::string& source);
};

// True if `path` is `name` or ends with "." + name (PEFT's list matching).
bool module_name_matches(const std::string& path, const std::string& name);

}  // namespace lorakit
