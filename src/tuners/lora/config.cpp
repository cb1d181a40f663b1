#include "tuners/lora/config.h"

#include <cmath>
#include <regex>

#include "core/errors.h"

namespace lorakit {

bool module_name_matches(const std::string& path, const std::string& name) {
  if (path == name) return true;
  return path.size() > name.size() && path.compare(path.size() - name.size(), name.size(), name) == 0 &&
         path[path.size() - name.size() - 1] == '.';
}

double LoraConfig::scaling() const {
  return use_rslora ? lora_alpha / std::sqrt(static_cast<double>(r)) : lora_alpha / static_cast<double>(r);
}

bool LoraConfig::matches(const std::string& path) const {
  if (!target_regex.empty()) return std::regex_match(path, std::regex(target_regex));
  for (auto& t : target_modules)
    if (module_name_matches(path, t)) return true;
  return false;
}

void LoraConfig::validate() const {
  if (r <= 0) throw Error("LoRA rank r must be positive, got " + std::to_string(r));
  if (lora_dropout < 0 || lora_dropout >= 1) throw Error("lora_dropout must be in [0, 1)");
  if (init_lora_weights != "kaiming" && init_lora_weights != "gaussian")
    throw Error("init_lora_weights must be 'kaiming' or 'gaussian', got '" + init_lora_weights + "'");
  if (target_regex.empty() && target_modules.empty()) throw Error("LoRA needs target_modules");
  if (!target_regex.empty()) {
    try {
      std::regex re(target_regex);
    } catch (const std::regex_error& e) {
      throw Error("target_modules regex '" + target_regex + "' is invalid: " + e.what());
    }
  }
}

nlohmann::json LoraConfig::to_peft_json(const std::string& base_model, const nlohmann::json& extra) const {
  nlohmann::ordered_json j;
  j["peft_type"] = "LORA";
  j["task_type"] = "SEQ_CLS";
  j["base_model_name_or_path"] = base_model;
  j["r"] = r;
  j["lora_alpha"] = lora_alpha;
  j["lora_dropout"] = lora_dropout;
  if (!target_regex.empty())
    j["target_modules"] = target_regex;
  else
    j["target_modules"] = target_modules;
  j["modules_to_save"] = modules_to_save;
  j["bias"] = "none";
  j["fan_in_fan_out"] = false;
  j["use_rslora"] = use_rslora;
  j["init_lora_weights"] = init_lora_weights == "gaussian" ? nlohmann::json("gaussian") : nlohmann::json(true);
  j["inference_mode"] = true;
  j["lorakit"] = extra;
  return j;
}

LoraConfig LoraConfig::from_peft_json(const nlohmann::json& j, const std::string& src) {
  LoraConfig c;
  try {
    if (j.value("peft_type", std::string()) != "LORA")
      throw Error(src + ": peft_type is '" + j.value("peft_type", std::string()) + "', expected 'LORA'");
    if (!j.contains("r")) throw Error(src + ": missing key 'r'");
    c.r = j.at("r").get<int64_t>();
    c.lora_alpha = j.value("lora_alpha", 8.0);
    c.lora_dropout = j.value("lora_dropout", 0.0);
    if (!j.contains("target_modules")) throw Error(src + ": missing key 'target_modules'");
    const auto& t = j.at("target_modules");
    if (t.is_string()) {
      c.target_regex = t.get<std::string>();
      c.target_modules.clear();
    } else {
      c.target_modules = t.get<std::vector<std::string>>();
    }
    c.modules_to_save.clear();
    if (j.contains("modules_to_save") && !j["modules_to_save"].is_null())
      c.modules_to_save = j["modules_to_save"].get<std::vector<std::string>>();
    c.use_rslora = j.value("use_rslora", false);
    if (j.contains("init_lora_weights") && j["init_lora_weights"].is_string())
      c.init_lora_weights = j["init_lora_weights"].get<std::string>() == "gaussian" ? "gaussian" : "kaiming";
    if (j.value("bias", std::string("none")) != "none") throw Error(src + ": only bias='none' is supported");
    if (j.value("fan_in_fan_out", false)) throw Error(src + ": fan_in_fan_out is not supported");
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
