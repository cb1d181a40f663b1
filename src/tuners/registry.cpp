#include "tuners/registry.h"

#include <set>

#include "core/errors.h"
#include "tuners/full/full.h"
#include "tuners/lora/model.h"

namespace lorakit {

// Every method lorakit ships. A new method adds one entry here (and its folder under tuners/).
const std::vector<MethodEntry>& method_table() {
  static const std::vector<MethodEntry> t = {
      {"full", "full fine-tuning: every parameter trains",
       [](const MethodOptions&) { return std::make_unique<FullFineTuning>(); }, {}},
      {"lora", "LoRA (PEFT semantics)", [](const MethodOptions& o) { return std::make_unique<LoraMethod>(o.lora); },
       {}},
  };
  return t;
}

std::unique_ptr<Method> make_method(const std::string& name, const MethodOptions& opt) {
  for (auto& e : method_table())
    if (e.name == name) return e.make(opt);
  std::string known;
  for (auto& e : method_table()) known += (known.empty() ? "" : ", ") + e.name;
  throw Error("unknown method '" + name + "' (known: " + known + ")");
}

std::vector<std::string> method_names() {
  std::vector<std::string> n;
  for (auto& e : method_table()) n.push_back(e.name);
  return n;
}

void add_method_flags(CLI::App& cmd, std::shared_ptr<nlohmann::json> extra) {
  std::set<const void*> seen;
  for (auto& e : method_table()) {
    if (!e.add_flags) continue;
    auto* target = e.add_flags.target<void (*)(CLI::App&, std::shared_ptr<nlohmann::json>)>();
    const void* key = target ? reinterpret_cast<const void*>(*target) : static_cast<const void*>(&e);
    if (!seen.insert(key).second) continue;
    e.add_flags(cmd, extra);
  }
}

}  // namespace lorakit
