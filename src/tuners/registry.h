// Methods by name, for the CLI and the sweep. The trainer itself only sees lorakit::Method.
#pragma once
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tuners/lora/config.h"
#include "tuners/lora/model.h"
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
  // How the method runs at a table rank R of the seeds' tables, as settings in `extra` (may be empty:
  // plain r = R). Keys the user already set are left alone.
  std::function<void(nlohmann::json& extra, int64_t table_rank, const std::string& task)> table_rank = {};
};

const std::vector<MethodEntry>& method_table();
std::unique_ptr<Method> make_method(const std::string& name, const MethodOptions& opt);
std::vector<std::string> method_names();
// The method's settings for table rank R on `task` (seed 001's budgets: AdaLoRA init_r 2R → target_r R),
// merged into `extra` without overriding keys already there.
void apply_table_rank(const std::string& method, int64_t table_rank, const std::string& task, nlohmann::json& extra);
// An adapter directory's PEFT type ("LORA" | "ADALORA"); an error for anything else.
std::string adapter_peft_type(const std::string& dir);
// Parses the adapter's config (errors for PEFT fields lorakit does not implement), loads nothing.
void check_adapter_config(const std::string& dir);
// Loads a LoRA or AdaLoRA adapter onto `model`.
std::unique_ptr<LoraMethod> load_any_adapter(SequenceClassifier& model, const std::string& dir);
// Calls every method's add_flags (each flag is added once even if several methods share an adder).
void add_method_flags(CLI::App& cmd, std::shared_ptr<nlohmann::json> extra);

}  // namespace lorakit
