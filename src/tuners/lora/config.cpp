#include "tuners/lora/config.h"

#include <algorithm>
#include <cmath>
#include <regex>
#include <set>

#include "core/errors.h"

namespace lorakit {

namespace {
// Every regex of an adapter config (target_modules / exclude_modules as a string, rank_pattern and
// alpha_pattern keys) comes from a file. libstdc++'s default executor backtracks, so a pattern like
// "(.+)+x" or "a.+++++b" takes exponential time on a module path (found by fuzz/harnesses/
// adapter_config.cpp: a 28 s timeout); its __polynomial flag selects the breadth-first executor, linear
// in the path for a given pattern, which refuses back-references (PEFT's targets never need them).
// Compiling recurses per nesting level, hence the caps on length and depth.
constexpr size_t kMaxRegexLength = 4096;
constexpr int kMaxRegexDepth = 64;
constexpr int kMaxDigits = 6;
constexpr double kMaxStates = 1e6;

std::regex file_regex(const std::string& re) {
  if (re.size() > kMaxRegexLength)
    throw std::regex_error(std::regex_constants::error_complexity);
  // Numbers in a pattern (a back-reference \N, a repeat {n,m}) are read by libstdc++ into a long without
  // an overflow check: "\518446744073709551615" was undefined behaviour (UBSan, found by fuzz/harnesses/
  // adapter_config.cpp). A repeat also copies its operand n times, so nested repeats multiply the
  // automaton's size: the product of the repeat counts, times the length, is capped too.
  auto digits_at = [&](size_t j) {
    size_t k = j;
    while (k < re.size() && re[k] >= '0' && re[k] <= '9') ++k;
    if (k - j > static_cast<size_t>(kMaxDigits)) throw std::regex_error(std::regex_constants::error_complexity);
    return k;
  };
  int depth = 0, deepest = 0;
  double states = static_cast<double>(re.size());
  for (size_t i = 0; i < re.size(); ++i) {
    if (re[i] == '\\') {
      ++i;
      if (i < re.size() && re[i] >= '0' && re[i] <= '9') i = digits_at(i) - 1;
    } else if (re[i] == '(') {
      deepest = std::max(deepest, ++depth);
    } else if (re[i] == ')') {
      --depth;
    } else if (re[i] == '{') {
      double most = 0;
      for (size_t j = i + 1;;) {
        const size_t k = digits_at(j);
        if (k > j) most = std::max(most, std::stod(re.substr(j, k - j)));
        if (k < re.size() && re[k] == ',') {
          j = k + 1;
          continue;
        }
        break;
      }
      states *= most + 1;
      if (states > kMaxStates) throw std::regex_error(std::regex_constants::error_complexity);
    }
  }
  if (deepest > kMaxRegexDepth) throw std::regex_error(std::regex_constants::error_complexity);
#ifdef __GLIBCXX__
  return std::regex(re, std::regex::ECMAScript | std::regex_constants::__polynomial);
#else
  return std::regex(re, std::regex::ECMAScript);
#endif
}
}  // namespace

bool module_name_matches(const std::string& path, const std::string& name) {
  if (path == name) return true;
  return path.size() > name.size() && path.compare(path.size() - name.size(), name.size(), name) == 0 &&
         path[path.size() - name.size() - 1] == '.';
}

double LoraConfig::scaling() const {
  return use_rslora ? lora_alpha / std::sqrt(static_cast<double>(r)) : lora_alpha / static_cast<double>(r);
}

bool LoraConfig::matches(const std::string& path) const {
  if (!exclude_regex.empty() && std::regex_match(path, file_regex(exclude_regex))) return false;
  for (auto& e : exclude_modules)
    if (module_name_matches(path, e)) return false;
  if (!target_regex.empty()) return std::regex_match(path, file_regex(target_regex));
  for (auto& t : target_modules)
    if (module_name_matches(path, t)) return true;
  return false;
}

namespace {
// PEFT's pattern-key test (peft.utils.other.get_pattern_key, >= 0.14): re.match(rf"(.*\.)?({key})$", path);
// a key equal to the path always matches (0.6-0.13 fall back to the path itself as the key). std::regex_search with a leading
// "^" gives Python's re.match (anchored at the start, `$` at the end).
bool pattern_key_matches(const std::string& key, const std::string& path) {
  if (key == path) return true;
  return std::regex_search(path, file_regex("^(.*\\.)?(" + key + ")$"));
}
}  // namespace

LoraConfig::ModuleRank LoraConfig::resolve(const std::string& path) const {
  // PEFT >= 0.14 (get_pattern_key): r from the first rank_pattern key that matches, alpha from the first
  // alpha_pattern key that matches, each independently.
  ModuleRank m{r, lora_alpha, 0.0};
  for (auto& [k, v] : rank_pattern)
    if (pattern_key_matches(k, path)) {
      m.r = v;
      break;
    }
  for (auto& [k, v] : alpha_pattern)
    if (pattern_key_matches(k, path)) {
      m.alpha = v;
      break;
    }
  m.scaling = use_rslora ? m.alpha / std::sqrt(static_cast<double>(m.r)) : m.alpha / static_cast<double>(m.r);
  return m;
}

LoraConfig LoraConfig::for_module(const std::string& path) const {
  LoraConfig c = *this;
  const ModuleRank m = resolve(path);
  c.r = m.r;
  c.lora_alpha = m.alpha;
  c.rank_pattern.clear();
  c.alpha_pattern.clear();
  return c;
}

void LoraConfig::validate() const {
  if (r <= 0) throw Error("LoRA rank r must be positive, got " + std::to_string(r));
  if (lora_dropout < 0 || lora_dropout >= 1) throw Error("lora_dropout must be in [0, 1)");
  if (init_lora_weights != "kaiming" && init_lora_weights != "gaussian")
    throw Error("init_lora_weights must be 'kaiming' or 'gaussian', got '" + init_lora_weights + "'");
  if (target_regex.empty() && target_modules.empty()) throw Error("LoRA needs target_modules");
  // Each regex as it will be used: the pattern keys inside pattern_key_matches' "^(.*\\.)?(KEY)$".
  auto check_regex = [](const std::string& what, const std::string& re, const std::string& as_used) {
    try {
      (void)file_regex(as_used);
    } catch (const std::regex_error& e) {
      const std::string shown = re.size() > 200 ? re.substr(0, 200) + "..." : re;
      throw Error(what + " regex '" + shown + "' is invalid or too complex (at most " + std::to_string(kMaxRegexLength) +
                  " characters, " + std::to_string(kMaxRegexDepth) + " nested groups, numbers of at most " + std::to_string(kMaxDigits) +
                  " digits, repeats {n,m} whose nested counts multiply to at most a million states, no "
                  "back-references): " + e.what());
    }
  };
  if (!target_regex.empty()) check_regex("target_modules", target_regex, target_regex);
  if (!exclude_regex.empty()) check_regex("exclude_modules", exclude_regex, exclude_regex);
  for (auto& [k, v] : rank_pattern) {
    if (v <= 0) throw Error("rank_pattern['" + k + "'] must be a positive rank, got " + std::to_string(v));
    check_regex("rank_pattern key", k, "^(.*\\.)?(" + k + ")$");
  }
  for (auto& [k, v] : alpha_pattern) {
    if (!std::isfinite(v)) throw Error("alpha_pattern['" + k + "'] must be finite");
    check_regex("alpha_pattern key", k, "^(.*\\.)?(" + k + ")$");
  }
}

nlohmann::ordered_json LoraConfig::to_peft_json(const std::string& base_model,
                                                const std::vector<std::string>& adapted_modules) const {
  // Alphabetical, as PEFT's save_pretrained writes (json.dumps(..., sort_keys=True)).
  nlohmann::json j;
  // Patterns are written resolved: every adapted module whose r or alpha differs from the defaults gets
  // its full path as a key in BOTH patterns. PEFT 0.6-0.13 look up r and alpha with one shared key (the
  // first that matches over rank_pattern then alpha_pattern, or the module path itself) and PEFT >= 0.14
  // look each up on its own; with identical full-path keys every release resolves the same values.
  nlohmann::ordered_json rp = nlohmann::ordered_json::object(), ap = nlohmann::ordered_json::object();
  if (!rank_pattern.empty() || !alpha_pattern.empty()) {
    for (auto& path : adapted_modules) {
      const ModuleRank m = resolve(path);
      if (m.r == r && m.alpha == lora_alpha) continue;
      rp[path] = m.r;
      ap[path] = m.alpha;
    }
  }
  j["alpha_pattern"] = ap;
  j["auto_mapping"] = nullptr;
  j["base_model_name_or_path"] = base_model;
  j["bias"] = "none";
  if (!exclude_regex.empty())
    j["exclude_modules"] = exclude_regex;
  else if (!exclude_modules.empty())
    j["exclude_modules"] = exclude_modules;
  j["fan_in_fan_out"] = false;
  j["inference_mode"] = true;
  j["init_lora_weights"] = init_lora_weights == "gaussian" ? nlohmann::json("gaussian") : nlohmann::json(true);
  j["layers_pattern"] = nullptr;
  j["layers_to_transform"] = nullptr;
  j["lora_alpha"] = lora_alpha;
  j["lora_dropout"] = lora_dropout;
  j["modules_to_save"] = modules_to_save.empty() ? nlohmann::json(nullptr) : nlohmann::json(modules_to_save);
  j["peft_type"] = "LORA";
  j["r"] = r;
  j["rank_pattern"] = rp;
  j["revision"] = nullptr;
  if (!target_regex.empty())
    j["target_modules"] = target_regex;
  else
    j["target_modules"] = target_modules;
  j["task_type"] = task_type;
  if (use_rslora) j["use_rslora"] = true;  // PEFT >= 0.8.0 only; older releases cannot express rsLoRA
  nlohmann::ordered_json out;
  for (auto& [k, v] : j.items()) out[k] = v;
  return out;
}

namespace {

// A value equal to "nothing set": null, false, "", {} or [].
bool is_unset(const nlohmann::ordered_json& v) {
  return v.is_null() || (v.is_boolean() && !v.get<bool>()) || (v.is_string() && v.get<std::string>().empty()) ||
         (v.is_object() && v.empty()) || (v.is_array() && v.empty());
}

void string_or_list(const nlohmann::ordered_json& v, const std::string& key, std::vector<std::string>& list,
                    std::string& regex, const std::string& src) {
  list.clear();
  regex.clear();
  if (v.is_null()) return;
  if (v.is_string()) {
    regex = v.get<std::string>();
  } else if (v.is_array()) {
    for (auto& e : v) {
      if (!e.is_string()) throw Error(src + ": '" + key + "' must be a string or a list of strings");
      list.push_back(e.get<std::string>());
    }
  } else {
    throw Error(src + ": '" + key + "' must be a string or a list of strings, got " + v.dump());
  }
}

}  // namespace

LoraConfig LoraConfig::from_peft_json(const nlohmann::ordered_json& j, const std::string& src,
                                      const std::string& peft_type, const FieldHook& derived) {
  if (!j.is_object()) throw Error(src + ": adapter config must be a JSON object");
  LoraConfig c;
  // Keys that only describe the file or the run time of PEFT: read for nothing, accepted whatever they hold.
  static const std::set<std::string> kDescriptive = {
      "base_model_name_or_path", "revision", "inference_mode", "auto_mapping", "peft_version",
      "runtime_config", "megatron_core", "qalora_group_size",
      "lorakit",  // lorakit < 0.2 kept its settings here (now lorakit_config.json)
  };
  // Fields PEFT has that lorakit does not implement: refused unless they hold PEFT's default.
  static const std::set<std::string> kUnsupported = {
      "layers_to_transform", "layers_pattern", "use_dora", "layer_replication", "loftq_config", "megatron_config",
      "lora_bias", "use_qalora", "eva_config", "corda_config", "trainable_token_indices", "target_parameters",
      "alora_invocation_tokens", "arrow_config", "ensure_weight_tying"};
  auto unsupported = [&](const std::string& key, const nlohmann::ordered_json& v, const std::string& why) {
    return Error(src + ": PEFT field '" + key + "' = " + v.dump() + " is not supported by lorakit" +
                 (why.empty() ? "" : " (" + why + ")"));
  };
  try {
    const std::string pt = j.contains("peft_type") && j["peft_type"].is_string() ? j["peft_type"].get<std::string>() : "";
    if (pt != peft_type)
      throw Error(src + ": peft_type is '" + (j.contains("peft_type") ? j["peft_type"].dump() : std::string("missing")) +
                  "', expected \"" + peft_type + "\"");
    bool have_r = peft_type != "LORA", have_targets = false;
    for (auto it = j.begin(); it != j.end(); ++it) {
      const std::string& key = it.key();
      const auto& v = it.value();
      if (key == "peft_type" || kDescriptive.count(key)) continue;
      if (derived && derived(key, v)) continue;
      if (key == "r") {
        if (!v.is_number_integer()) throw Error(src + ": 'r' must be an integer, got " + v.dump());
        c.r = v.get<int64_t>();
        have_r = true;
      } else if (key == "lora_alpha") {
        if (!v.is_number()) throw Error(src + ": 'lora_alpha' must be a number, got " + v.dump());
        c.lora_alpha = v.get<double>();
      } else if (key == "lora_dropout") {
        if (!v.is_number()) throw Error(src + ": 'lora_dropout' must be a number, got " + v.dump());
        c.lora_dropout = v.get<double>();
      } else if (key == "target_modules") {
        string_or_list(v, key, c.target_modules, c.target_regex, src);
        have_targets = !v.is_null();
      } else if (key == "exclude_modules") {
        string_or_list(v, key, c.exclude_modules, c.exclude_regex, src);
      } else if (key == "modules_to_save") {
        std::string re;
        string_or_list(v, key, c.modules_to_save, re, src);
        if (!re.empty()) throw Error(src + ": 'modules_to_save' must be a list of module names");
      } else if (key == "use_rslora") {
        if (!v.is_boolean()) throw Error(src + ": 'use_rslora' must be true or false");
        c.use_rslora = v.get<bool>();
      } else if (key == "init_lora_weights") {
        // Only the initialisation of new adapters; a saved adapter's weights are what they are. Inits that
        // change the base weights (PiSSA, OLoRA, LoftQ, EVA, CorDA) cannot be rebuilt here.
        if (v.is_boolean()) {
          c.init_lora_weights = "kaiming";
        } else if (v.is_string() && v.get<std::string>() == "gaussian") {
          c.init_lora_weights = "gaussian";
        } else {
          throw unsupported(key, v, "only true, false and \"gaussian\"; other inits change the base weights");
        }
      } else if (key == "bias") {
        if (!(v.is_string() && v.get<std::string>() == "none")) throw unsupported(key, v, "only \"none\"");
      } else if (key == "fan_in_fan_out") {
        if (!is_unset(v)) throw unsupported(key, v, "lorakit's models are nn.Linear, weights stored [out, in]");
      } else if (key == "rank_pattern" || key == "alpha_pattern") {
        if (v.is_null()) continue;
        if (!v.is_object()) throw Error(src + ": '" + key + "' must be an object {module key: value}");
        for (auto e = v.begin(); e != v.end(); ++e) {
          if (key == "rank_pattern") {
            if (!e.value().is_number_integer())
              throw Error(src + ": rank_pattern['" + e.key() + "'] must be an integer, got " + e.value().dump());
            c.rank_pattern.emplace_back(e.key(), e.value().get<int64_t>());
          } else {
            if (!e.value().is_number())
              throw Error(src + ": alpha_pattern['" + e.key() + "'] must be a number, got " + e.value().dump());
            c.alpha_pattern.emplace_back(e.key(), e.value().get<double>());
          }
        }
      } else if (key == "task_type") {
        c.task_type = v.is_string() ? v.get<std::string>() : "";
      } else if (kUnsupported.count(key)) {
        if (key == "megatron_core" || is_unset(v)) continue;
        throw unsupported(key, v, "");
      } else if (!is_unset(v)) {
        throw Error(src + ": unknown adapter config field '" + key + "' = " + v.dump() +
                    " (not a PEFT LoraConfig field lorakit knows; refusing rather than computing something else)");
      }
    }
    if (!have_r) throw Error(src + ": missing key 'r'");
    if (!have_targets) throw Error(src + ": missing key 'target_modules'");
  } catch (const nlohmann::json::exception& e) {
    throw Error(src + ": malformed adapter config: " + e.what());
  }
  try {
    c.validate();
  } catch (const Error& e) {
    throw Error(src + ": " + e.what());
  }
  return c;
}

}  // namespace lorakit
