#include "tuners/lora/model.h"

#include <ATen/ATen.h>

#include <filesystem>

#include "core/errors.h"
#include "core/fileutil.h"
#include "core/safetensors.h"
#include "tuners/lora/diagnostics.h"

namespace lorakit {

namespace {
const std::string kPrefix = kAdapterKeyPrefix;

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

int64_t trainable_outside_adapters(const SequenceClassifier& model) {
  int64_t n = 0;
  for (auto& p : model->named_parameters(true))
    if (p.value().requires_grad() && p.key().find(".lora_") == std::string::npos) n += p.value().numel();
  return n;
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
    auto layer = factory_(*lin, module_config(item.key()));
    if (!layer) continue;  // the method leaves this module alone (e.g. an AdaLoRA module pruned to rank 0)
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
    d.emplace_back(path, lora_module_diagnostics(layer->effective_A().detach(), layer->lora_B->weight.detach(),
                                                 layer->scaling));
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
  std::vector<std::string> paths;
  for (auto& [path, _] : layers_) paths.push_back(path);
  save_adapter_files(
      dir, [&](const std::string& abs_base) { return cfg_.to_peft_json(abs_base, paths); }, out, base.dir,
      sidecar(model));
}

nlohmann::json LoraMethod::sidecar(const SequenceClassifier& model) const {
  nlohmann::json extra = extra_config();
  extra["num_labels"] = model->cfg.num_labels;
  extra["problem_type"] = model->cfg.problem_type;
  extra["model_type"] = model->cfg.model_type;
  extra["head"] = model->cfg.head;
  if (model->cfg.model_type == "use-lite") extra["pair_mode"] = model->cfg.pair_mode;
  return extra;
}

void save_adapter_files(const std::string& dir,
                        const std::function<nlohmann::ordered_json(const std::string& abs_base)>& adapter_config,
                        const st::NamedTensors& tensors, const std::string& base_dir, nlohmann::json sidecar) {
  namespace fs = std::filesystem;
  make_dirs(dir);
  // base_model_name_or_path: absolute, so the adapter works from any directory; the sidecar keeps the
  // base's path relative to the adapter as a fallback for trees moved as a whole.
  const fs::path abs_base = fs::absolute(base_dir).lexically_normal();
  const fs::path abs_dir = fs::absolute(dir).lexically_normal();
  sidecar["format"] = "lorakit-adapter";
  sidecar["format_version"] = 1;
  sidecar["lorakit_version"] = LORAKIT_VERSION;
  sidecar["base_model_relative"] = abs_base.lexically_relative(abs_dir).string();
  std::string base = abs_base.string();
  if (base.size() > 1 && base.back() == '/') base.pop_back();
  st::save_file(join_path(dir, "adapter_model.safetensors"), tensors, {{"format", "pt"}});
  write_text_atomically(join_path(dir, kSidecarFile), sidecar.dump(2) + "\n");
  nlohmann::ordered_json cfg = adapter_config(base);
  // PEFT's SEQ_CLS wrapper feeds input_ids to the base model, which ViTForImageClassification refuses:
  // image adapters carry task_type null, as PEFT's image-classification guide writes them.
  if (sidecar.value("model_type", std::string()) == "vit") cfg["task_type"] = nullptr;
  // Span QA heads: PEFT's QUESTION_ANS wrapper (PeftModelForQuestionAnswering, qa_outputs saved in full).
  if (sidecar.value("head", std::string()) == "question-answering") cfg["task_type"] = "QUESTION_ANS";
  write_text_atomically(join_path(dir, "adapter_config.json"), cfg.dump(2) + "\n");
}

namespace {
nlohmann::ordered_json read_json_file(const std::string& path) {
  try {
    return nlohmann::ordered_json::parse(read_text_file(path));
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ": not valid JSON: " + e.what());
  }
}
}  // namespace

nlohmann::ordered_json read_adapter_config_json(const std::string& dir) {
  const std::string cfg_path = join_path(dir, "adapter_config.json");
  if (!file_exists(cfg_path)) throw Error(dir + ": not an adapter directory (no adapter_config.json)");
  nlohmann::ordered_json j = read_json_file(cfg_path);
  if (!j.is_object()) throw Error(cfg_path + ": must be a JSON object");
  return j;
}

nlohmann::json read_adapter_extra(const std::string& dir) {
  const std::string side = join_path(dir, kSidecarFile);
  if (file_exists(side)) {
    nlohmann::json j = read_json_file(side);
    if (!j.is_object()) throw Error(side + ": must be a JSON object");
    return j;
  }
  // Adapters written before lorakit_config.json kept lorakit's settings under adapter_config.json's "lorakit".
  const std::string path = join_path(dir, "adapter_config.json");
  nlohmann::json j = read_json_file(path);
  return j.is_object() && j.contains("lorakit") && j["lorakit"].is_object() ? j["lorakit"] : nlohmann::json::object();
}

LoraConfig read_adapter_config(const std::string& dir) {
  return LoraConfig::from_peft_json(read_adapter_config_json(dir), join_path(dir, "adapter_config.json"));
}

std::string adapter_base_model(const std::string& dir) {
  namespace fs = std::filesystem;
  const std::string cfg_path = join_path(dir, "adapter_config.json");
  const nlohmann::ordered_json j = read_adapter_config_json(dir);
  std::string named;
  if (j.contains("base_model_name_or_path") && j["base_model_name_or_path"].is_string())
    named = j["base_model_name_or_path"].get<std::string>();
  if (named.empty()) throw Error(cfg_path + ": names no base model (base_model_name_or_path); pass --model");
  if (named == "use-lite" || dir_exists(named)) return named;
  const nlohmann::json extra = read_adapter_extra(dir);
  std::string tried;
  if (extra.contains("base_model_relative") && extra["base_model_relative"].is_string()) {
    const fs::path rel = fs::path(dir) / extra["base_model_relative"].get<std::string>();
    if (dir_exists(rel.string())) return rel.lexically_normal().string();
    tried = ", nor is " + rel.lexically_normal().string() + " (the base's path relative to the adapter, from " + kSidecarFile + ")";
  }
  throw Error(cfg_path + ": base_model_name_or_path '" + named + "' is not a model directory" + tried +
              "; pass --model DIR");
}

void load_adapter_weights(SequenceClassifier& model, const LoraMethod& method, const std::string& wpath,
                          size_t tensors_per_layer, const std::function<std::string(const std::string&)>& rename) {
  st::SafetensorsFile f(wpath);
  auto params = model->named_parameters(true);
  torch::NoGradGuard g;
  size_t loaded_lora = 0;
  for (auto& key : f.keys()) {
    std::string name = key.rfind(kPrefix, 0) == 0 ? key.substr(std::string(kPrefix).size()) : key;
    if (name.find("lora_magnitude_vector") != std::string::npos)
      throw Error(wpath + ": tensor '" + key + "' is a DoRA magnitude vector (PEFT use_dora); DoRA is not supported");
    if (name.find(".lora_embedding_") != std::string::npos)
      throw Error(wpath + ": tensor '" + key + "' is a LoRA embedding adapter; lorakit adapts linear layers only");
    if (rename) {
      name = rename(name);
      if (name.empty()) continue;  // consumed by the method (e.g. AdaLoRA's ranknum)
    }
    if (!params.contains(name)) throw Error(wpath + ": tensor '" + key + "' matches no parameter of the model");
    at::Tensor t = f.load(key);
    if (t.sizes() != params[name].sizes()) {
      std::string hint;
      if (name.find(".lora_") != std::string::npos)
        hint = " (the module's rank from adapter_config.json is " +
               std::to_string(params[name].size(name.find(".lora_B") != std::string::npos ? 1 : 0)) + ")";
      else if (is_head_param(name))
        hint = " (the task head: the adapter was trained for a different number of labels than this task has)";
      throw Error(wpath + ": shape mismatch for '" + key + "': file has " + c10::str(t.sizes()) + ", model expects " +
                  c10::str(params[name].sizes()) + hint);
    }
    params[name].copy_(t);
    if (name.find(".lora_") != std::string::npos) ++loaded_lora;
  }
  if (loaded_lora != tensors_per_layer * method.layers().size())
    throw Error(wpath + ": holds " + std::to_string(loaded_lora) + " adapter tensors, the config's targets need " +
                std::to_string(tensors_per_layer * method.layers().size()));
}

std::unique_ptr<LoraMethod> load_adapter(SequenceClassifier& model, const std::string& dir) {
  LoraConfig cfg = read_adapter_config(dir);
  auto method = std::make_unique<LoraMethod>(cfg);
  method->attach(model);
  load_adapter_weights(model, *method, join_path(dir, "adapter_model.safetensors"), 2, {});
  return method;
}

void merge_and_unload(SequenceClassifier& model) {
  for (auto& item : model->named_modules("", false)) {
    auto* lin = item.value()->as<AdaptableLinearImpl>();
    if (!lin || !lin->adapter) continue;
    lin->merge();
    lin->adapter.reset();
    // Drop the adapter's sub-modules (lora_A, lora_B, AdaLoRA's lora_E, ...) so the parameter list is the
    // base model's again.
    std::vector<std::string> names;
    for (auto& child : lin->named_children())
      if (child.key().rfind("lora_", 0) == 0) names.push_back(child.key());
    for (auto& n : names) lin->unregister_module(n);
  }
}

}  // namespace lorakit
