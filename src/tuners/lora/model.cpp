#include "tuners/lora/model.h"

#include <ATen/ATen.h>

#include "core/errors.h"
#include "core/fileutil.h"
#include "core/safetensors.h"
#include "tuners/lora/diagnostics.h"

namespace lorakit {

namespace {
const char* kPrefix = "base_model.model.";

std::string module_path_of(const std::string& param_name) {
  auto dot = param_name.rfind('.');
  return dot == std::string::npos ? "" : param_name.substr(0, dot);
}
}  // namespace

bool in_modules_to_save(const std::string& param_name, const std::vector<std::string>& mts) {
  // Any prefix of the parameter's module path that matches a modules_to_save entry.
  std::string path = module_path_of(param_name);
  while (!path.empty()) {
    for (auto& m : mts)
      if (module_name_matches(path, m)) return true;
    path = module_path_of(path);
  }
  return false;
}

LoraMethod::LoraMethod(LoraConfig cfg, LayerFactory factory) : cfg_(std::move(cfg)), factory_(std::move(factory)) {
  cfg_.validate();
  if (!factory_)
    factory_ = [](AdaptableLinearImpl& h, const LoraConfig& c) { return std::make_shared<LoraLayer>(h, c); };
}

void LoraMethod::attach(SequenceClassifier& model) {
  layers_.clear();
  std::vector<std::string> linear_paths;
  for (auto& item : model->named_modules("", /*include_self=*/false)) {
    auto* lin = item.value()->as<AdaptableLinearImpl>();
    if (!lin) continue;
    linear_paths.push_back(item.key());
    if (!cfg_.matches(item.key())) continue;
    if (in_modules_to_save(item.key() + ".weight", cfg_.modules_to_save)) continue;
    if (lin->adapter) throw Error("module '" + item.key() + "' already has an adapter");
    auto layer = factory_(*lin, cfg_);
    lin->adapter = layer;
    layers_.emplace_back(item.key(), layer);
  }
  if (layers_.empty()) {
    std::string avail;
    for (size_t i = 0; i < linear_paths.size() && i < 12; ++i) avail += (i ? ", " : "") + linear_paths[i];
    throw Error("target modules matched no linear layer of the model (e.g. " + avail + ")");
  }
  for (auto& p : model->named_parameters(true)) {
    const bool train = p.key().find(".lora_") != std::string::npos || in_modules_to_save(p.key(), cfg_.modules_to_save);
    p.value().set_requires_grad(train);
  }
}

// Seed 001 Table 4 / SPEC section 4 diagnostics of every adapted module's ΔW = s·B·A, computed through
// the thin factors (tuners/lora/diagnostics.h): aggregates as flat keys, per-module under "lora_modules".
nlohmann::json LoraMethod::epoch_stats() {
  std::vector<std::pair<std::string, LoraModuleDiagnostics>> d;
  d.reserve(layers_.size());
  for (auto& [path, layer] : layers_)
    d.emplace_back(path, lora_module_diagnostics(layer->lora_A->weight, layer->lora_B->weight, layer->scaling));
  return diagnostics_json(d, /*per_module=*/true);
}

nlohmann::json LoraMethod::describe() const {
  nlohmann::json j = extra_config();
  j["r"] = cfg_.r;
  j["lora_alpha"] = cfg_.lora_alpha;
  j["scaling"] = cfg_.scaling();
  j["adapted_modules"] = layers_.size();
  return j;
}

void LoraMethod::save(const SequenceClassifier& model, const LoadedModel& base, const std::string& dir) const {
  make_dirs(dir);
  st::NamedTensors out;
  for (auto& p : model->named_parameters(true)) {
    const bool lora = p.key().find(".lora_A.") != std::string::npos || p.key().find(".lora_B.") != std::string::npos;
    if (lora || in_modules_to_save(p.key(), cfg_.modules_to_save))
      out.emplace_back(kPrefix + p.key(), p.value().detach().contiguous());
  }
  st::save_file(join_path(dir, "adapter_model.safetensors"), out, {{"format", "pt"}});
  nlohmann::json extra = extra_config();
  extra["num_labels"] = model->cfg.num_labels;
  extra["problem_type"] = model->cfg.problem_type;
  if (model->cfg.model_type == "use-lite") extra["pair_mode"] = model->cfg.pair_mode;
  write_text_atomically(join_path(dir, "adapter_config.json"), cfg_.to_peft_json(base.dir, extra).dump(2) + "\n");
}

nlohmann::json read_adapter_extra(const std::string& dir) {
  const std::string path = join_path(dir, "adapter_config.json");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_text_file(path));
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ": not valid JSON: " + e.what());
  }
  return j.contains("lorakit") ? j["lorakit"] : nlohmann::json::object();
}

std::unique_ptr<LoraMethod> load_adapter(SequenceClassifier& model, const std::string& dir) {
  const std::string cfg_path = join_path(dir, "adapter_config.json");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_text_file(cfg_path));
  } catch (const nlohmann::json::exception& e) {
    throw Error(cfg_path + ": not valid JSON: " + e.what());
  }
  LoraConfig cfg = LoraConfig::from_peft_json(j, cfg_path);
  auto method = std::make_unique<LoraMethod>(cfg);
  method->attach(model);
  const std::string wpath = join_path(dir, "adapter_model.safetensors");
  st::SafetensorsFile f(wpath);
  auto params = model->named_parameters(true);
  torch::NoGradGuard g;
  size_t loaded_lora = 0;
  for (auto& key : f.keys()) {
    std::string name = key.rfind(kPrefix, 0) == 0 ? key.substr(std::string(kPrefix).size()) : key;
    if (!params.contains(name)) throw Error(wpath + ": tensor '" + key + "' matches no parameter of the model");
    at::Tensor t = f.load(key);
    if (t.sizes() != params[name].sizes())
      throw Error(wpath + ": shape mismatch for '" + key + "': file has " + c10::str(t.sizes()) + ", model expects " +
                  c10::str(params[name].sizes()));
    params[name].copy_(t);
    if (name.find(".lora_") != std::string::npos) ++loaded_lora;
  }
  if (loaded_lora != 2 * method->layers().size())
    throw Error(wpath + ": holds " + std::to_string(loaded_lora) + " LoRA tensors, the config's targets need " +
                std::to_string(2 * method->layers().size()));
  return method;
}

void merge_and_unload(SequenceClassifier& model) {
  for (auto& item : model->named_modules("", false)) {
    auto* lin = item.value()->as<AdaptableLinearImpl>();
    if (!lin || !lin->adapter) continue;
    lin->merge();
    lin->adapter.reset();
    // Drop the adapter's sub-modules so the parameter list is the base model's again.
    lin->unregister_module("lora_A");
    lin->unregister_module("lora_B");
  }
}

}  // namespace lorakit
