// Methods by name, for the CLI and the sweep. The trainer itself only sees lorakit::Method.
#pragma once
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tuners/lora/config.h"
#include "tuners/method.h"

namespace CLI {
class App;
}

namespace lorakit {

struct MethodOptions {
  LoraConfig lora;                                   // for every LoRA-family method
  nlohmann::json extra = nlohmann::json::object();   // method-specific settings (from the method's own flags)
};

// Adds a method family's own flags to a CLI command. Parsed values are written into `extra`
// (keys chosen by the method), which the CLI then passes as MethodOptions::extra.
using FlagAdder = std::function<void(CLI::App& cmd, std::shared_ptr<nlohmann::json> extra)>;

struct MethodEntry {
  std::string name;
  std::string help;
  std::function<std::unique_ptr<Method>(const MethodOptions&)> make;
  FlagAdder add_flags;  // may be empty
};

const std::vector<MethodEntry>& method_table();
std::unique_ptr<Method> make_method(const std::string& name, const MethodOptions& opt);
std::vector<std::string> method_names();
// Calls every method's add_flags (each flag is added once even if several methods share an adder).
void add_method_flags(CLI::App& cmd, std::shared_ptr<nlohmann::json> extra);

}  // namespace lorakit
