// Methods by name, for the CLI and the sweep. The trainer itself only sees lorakit::Method.
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tuners/lora/config.h"
#include "tuners/method.h"

namespace lorakit {

struct MethodOptions {
  LoraConfig lora;        // for every LoRA-family method
  nlohmann::json extra = nlohmann::json::object();  // method-specific settings by name
};

std::unique_ptr<Method> make_method(const std::string& name, const MethodOptions& opt);
std::vector<std::string> method_names();

}  // namespace lorakit
