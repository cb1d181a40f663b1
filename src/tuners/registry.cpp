#include "tuners/registry.h"

#include <set>

#include "core/errors.h"
#include "tuners/full/full.h"
#include "tuners/gr_lora/model.h"
#include "tuners/lora/model.h"
#include "tuners/rm_lora/model.h"

namespace lorakit {

// Every method lorakit ships. A new method adds one entry here (and its folder under tuners/).
const std::vector<MethodEntry>& method_table() {
  static const std::vector<MethodEntry> t = {
      {"full", "full fine-tuning: every parameter trains",
       [](const MethodOptions&) { return std::make_unique<FullFineTuning>(); }, {}},
      {"lora", "LoRA (PEFT semantics)", [](const MethodOptions& o) { return std::make_unique<LoraMethod>(o.lora); },
       {}},
      {"gr-lora", "GR-LoRA: LoRA + inverse-norm gradient scaling + correctness-aware gradient penalty (seed 000)",
       make_gr_lora, &add_gr_lora_flags},
      {"r-lora", "R-LoRA: LoRA + orthogonality regularizer λ_orth·Σ(‖AAᵀ−I‖² + ‖BᵀB−I‖²) (seed 001)",
       [](const MethodOptions& o) {
         return std::make_unique<RmLoraMethod>(o.lora, RmLoraConfig::from_options("r-lora", o.extra));
       },
       &add_rm_lora_flags},
      {"gm-lora", "GM-LoRA: LoRA updating r̂ random directions per module per step (seed 001)",
       [](const MethodOptions& o) {
         return std::make_unique<RmLoraMethod>(o.lora, RmLoraConfig::from_options("gm-lora", o.extra));
       },
       &add_rm_lora_flags},
      {"rm-lora", "RM-LoRA: R-LoRA + GM-LoRA (seed 001)",
       [](const MethodOptions& o) {
         return std::make_unique<RmLoraMethod>(o.lora, RmLoraConfig::from_options("rm-lora", o.extra));
       },
       &add_rm_lora_flags},
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
