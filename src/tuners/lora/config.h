// LoRA configuration with Hugging Face PEFT's names and semantics (LoraConfig).
//
// adapter_config.json holds only keys PEFT's own LoraConfig has (PEFT 0.6.0's field set, plus
// `use_rslora` (0.8.0) and `exclude_modules` (0.14.0) only when they are set), so every PEFT release
// from 0.6.0 on loads it: PEFT 0.6-0.13 pass the file's keys straight to LoraConfig(**kwargs) and
// refuse any other key. lorakit's own settings live beside it in lorakit_config.json.
#pragma once
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
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
  // PEFT exclude_modules: modules never adapted, same two forms (list of suffixes or a full-match regex).
  std::vector<std::string> exclude_modules;
  std::string exclude_regex;
  // Modules trained in full and saved with the adapter (task heads). PEFT adds "classifier" for SEQ_CLS.
  std::vector<std::string> modules_to_save = {"classifier"};
  bool use_rslora = false;              // s = α/√r instead of α/r
  std::string init_lora_weights = "kaiming";  // "kaiming" (A ~ Kaiming-uniform a=√5) | "gaussian" (A ~ N(0, 1/r))
  // PEFT rank_pattern / alpha_pattern: {key → r} and {key → alpha}, in the file's order. A key names a
  // module by suffix or is a regex matched against the end of the module path (see resolve()).
  std::vector<std::pair<std::string, int64_t>> rank_pattern;
  std::vector<std::pair<std::string, double>> alpha_pattern;
  std::string task_type = "SEQ_CLS";

  // The scaling of a module with the config's own r and alpha.
  double scaling() const;
  bool matches(const std::string& module_path) const;
  // r and alpha of one module, resolved as PEFT >= 0.14 does (peft.utils.other.get_pattern_key): r from
  // the first rank_pattern key for which re.match(rf"(.*\.)?({KEY})$", path) succeeds, alpha likewise from
  // alpha_pattern, each falling back to the config's own value. (PEFT 0.6-0.13 used the first key matching
  // over both patterns for both lookups, a bug fixed in 0.14; lorakit writes patterns on which both agree.)
  struct ModuleRank {
    int64_t r;
    double alpha;
    double scaling;
  };
  ModuleRank resolve(const std::string& module_path) const;
  // This config with r / lora_alpha replaced by the module's resolved values (what its layer is built from).
  LoraConfig for_module(const std::string& module_path) const;
  void validate() const;  // throws lorakit::Error
  // adapter_config.json as PEFT writes it (only PEFT keys); `adapted_modules` are the module paths the
  // adapter holds (rank_pattern / alpha_pattern are written resolved per module).
  nlohmann::ordered_json to_peft_json(const std::string& base_model,
                                      const std::vector<std::string>& adapted_modules = {}) const;
  // Reads a PEFT LoRA adapter_config.json. Keys lorakit does not implement are an error naming the key
  // when they hold anything but PEFT's default; keys that only describe the file (task_type, revision,
  // peft_version, ...) are accepted. `source` names the file in messages.
  //
  // Configs derived from LoraConfig (AdaLoRA) pass their peft_type and a hook that takes their own keys
  // (it returns true for a key it consumed; it is asked before LoraConfig's own handling). `r` is then
  // optional.
  using FieldHook = std::function<bool(const std::string& key, const nlohmann::ordered_json& value)>;
  static LoraConfig from_peft_json(const nlohmann::ordered_json& j, const std::string& source,
                                   const std::string& peft_type = "LORA", const FieldHook& derived = {});
};

// True if `path` is `name` or ends with "." + name (PEFT's list matching).
bool module_name_matches(const std::string& path, const std::string& name);

}  // namespace lorakit
