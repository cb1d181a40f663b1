#include "tuners/registry.h"

#include <set>

#include "core/errors.h"
#include "tuners/adalora/model.h"
#include "core/fileutil.h"
#include "tuners/full/full.h"
#include "tuners/gr_lora/model.h"
#include "tuners/lora/model.h"
#include "tuners/rm_lora/model.h"
#include "tuners/sora/model.h"

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
      {"adalora", "AdaLoRA: SVD-form LoRA whose rank budget is pruned by importance (Zhang et al. 2023, official code)",
       [](const MethodOptions& o) {
         return std::make_unique<AdaLoraMethod>(AdaLoraConfig::from_options(o.lora, o.extra));
       },
       &add_adalora_flags,
       // Seed 001 Table 1: trained at rank 2R, pruned to R ("1.92M / 1.26M").
       [](nlohmann::json& extra, int64_t r, const std::string&) {
         if (!extra.contains("init_r")) extra["init_r"] = 2 * r;
         if (!extra.contains("target_r")) extra["target_r"] = r;
       }},
      {"sora", "SoRA: LoRA with gates between A and B, L1 + proximal threshold, zero gates pruned at export (official code)",
       [](const MethodOptions& o) {
         LoraConfig l = o.lora;
         if (o.extra.contains("sora_r")) {  // the sweep's table rank: start at sora_r, same scaling α/r
           const int64_t r = o.extra["sora_r"].get<int64_t>();
           l.lora_alpha *= static_cast<double>(r) / static_cast<double>(l.r);
           l.r = r;
         }
         return std::make_unique<SoraMethod>(l, SoraConfig::from_options(o.extra));
       },
       &add_sora_flags,
       // Seed 001: SoRA starts at rank 2R with the task's λ from its Table 3.
       [](nlohmann::json& extra, int64_t r, const std::string& task) {
         if (!extra.contains("sora_lambda")) extra["sora_lambda"] = sora_table_lambda(task);
         if (!extra.contains("sora_r")) extra["sora_r"] = 2 * r;
       }},
  };
  return t;
}

void apply_table_rank(const std::string& method, int64_t table_rank, const std::string& task, nlohmann::json& extra) {
  for (auto& e : method_table())
    if (e.name == method && e.table_rank) e.table_rank(extra, table_rank, task);
}

std::string adapter_peft_type(const std::string& dir) {
  const nlohmann::ordered_json j = read_adapter_config_json(dir);
  if (!j.contains("peft_type") || !j["peft_type"].is_string())
    throw Error(join_path(dir, "adapter_config.json") + ": no peft_type (a PEFT adapter has one)");
  const std::string t = j["peft_type"].get<std::string>();
  if (t != "LORA" && t != "ADALORA")
    throw Error(join_path(dir, "adapter_config.json") + ": peft_type '" + t +
                "' is not supported (lorakit reads LORA and ADALORA adapters)");
  return t;
}

void check_adapter_config(const std::string& dir) {
  if (adapter_peft_type(dir) == "ADALORA")
    read_adalora_config(dir, nullptr);
  else
    read_adapter_config(dir);
}

std::unique_ptr<LoraMethod> load_any_adapter(SequenceClassifier& model, const std::string& dir) {
  return adapter_peft_type(dir) == "ADALORA" ? load_adalora_adapter(model, dir) : load_adapter(model, dir);
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
