// LoRA as a method: attaches LoraLayer (or a subclass) to every matched module, trains only the
// adapters and modules_to_save, saves/loads PEFT adapters, merges.
#pragma once
#include <functional>
#include <map>
#include <memory>

#include "core/errors.h"
#include "tuners/lora/layer.h"
#include "tuners/method.h"

namespace lorakit {

class LoraMethod : public Method {
 public:
  // Builds the layer of one matched module (nullptr: leave the module without an adapter).
  using LayerFactory = std::function<std::shared_ptr<LoraLayer>(AdaptableLinearImpl&, const LoraConfig&)>;
  explicit LoraMethod(LoraConfig cfg, LayerFactory factory = {});
  std::string name() const override { return "lora"; }
  void attach(SequenceClassifier& model) override;
  void save(const SequenceClassifier& model, const LoadedModel& base, const std::string& dir) const override;
  nlohmann::json describe() const override;
  // LoRA-family statistics for the epoch log (diagnostics of ΔW etc.). Subclasses extend, calling this.
  nlohmann::json epoch_stats() override;
  // Settings a subclass records in lorakit_config.json (beside adapter_config.json).
  virtual nlohmann::json extra_config() const { return {{"method", name()}}; }
  // extra_config() + what eval needs to rebuild the model's head (num_labels, problem_type, ...).
  nlohmann::json sidecar(const SequenceClassifier& model) const;

  const LoraConfig& config() const { return cfg_; }
  // Adapted module paths → their layers, in model order.
  const std::vector<std::pair<std::string, std::shared_ptr<LoraLayer>>>& layers() const { return layers_; }
  // The layers as the subclass's own layer type (an Error if one is not).
  template <class L>
  std::vector<L*> layers_as() const {
    std::vector<L*> out;
    out.reserve(layers_.size());
    for (auto& [path, l] : layers_) {
      auto* p = dynamic_cast<L*>(l.get());
      if (!p) throw Error(name() + ": module '" + path + "' has a layer of another method");
      out.push_back(p);
    }
    return out;
  }

 protected:
  // The config one module's layer is built from (default: r / alpha resolved from the patterns).
  virtual LoraConfig module_config(const std::string& path) const { return cfg_.for_module(path); }

  LoraConfig cfg_;
  LayerFactory factory_;
  std::vector<std::pair<std::string, std::shared_ptr<LoraLayer>>> layers_;
};

// Trainable parameters outside every adapter (the task head / modules_to_save): what pruning methods add to
// their kept adapter parameters for "# I-Params".
int64_t trainable_outside_adapters(const SequenceClassifier& model);

// True if `param_name` lies inside one of `modules_to_save` (PEFT name matching on module paths).
bool in_modules_to_save(const std::string& param_name, const std::vector<std::string>& modules_to_save);

// Tensor names in adapter_model.safetensors start with this (PEFT's PeftModel → LoraModel → model).
inline constexpr const char* kAdapterKeyPrefix = "base_model.model.";
// adapter_config.json of `dir` as JSON (errors name the file); see also read_adapter_config.
nlohmann::ordered_json read_adapter_config_json(const std::string& dir);
// lorakit's own settings beside a PEFT adapter (PEFT never reads it).
inline constexpr const char* kSidecarFile = "lorakit_config.json";

// Writes a PEFT adapter: adapter_model.safetensors (`tensors`, keys already "base_model.model."-prefixed),
// lorakit_config.json (`sidecar` + format/version/base_model_relative) and adapter_config.json
// (`adapter_config(absolute base path)`: only PEFT keys), each file atomically, adapter_config.json last.
void save_adapter_files(const std::string& dir,
                        const std::function<nlohmann::ordered_json(const std::string& abs_base)>& adapter_config,
                        const st::NamedTensors& tensors, const std::string& base_dir, nlohmann::json sidecar);

// Reads adapter_config.json (+ adapter_model.safetensors) from `dir`, attaches plain LoRA layers to
// `model` (per-module r / alpha from rank_pattern / alpha_pattern) and loads adapter and head weights.
// Returns the method (for inspection / merging).
std::unique_ptr<LoraMethod> load_adapter(SequenceClassifier& model, const std::string& dir);
// Copies an adapter's tensors (adapter_model.safetensors at `wpath`, "base_model.model."-prefixed) into the
// model `method` is attached to; `rename` (may be empty) maps a file name (prefix removed) to the model's
// parameter name, or to "" for a tensor it consumed itself. Errors name the file and tensor: DoRA vectors,
// unknown tensors, shape mismatches, and a count of adapter tensors other than tensors_per_layer × layers.
void load_adapter_weights(SequenceClassifier& model, const LoraMethod& method, const std::string& wpath,
                          size_t tensors_per_layer, const std::function<std::string(const std::string&)>& rename);
// adapter_config.json of `dir`, checked (PEFT fields lorakit does not implement are errors).
LoraConfig read_adapter_config(const std::string& dir);
// lorakit's settings of an adapter: lorakit_config.json, or the "lorakit" key of an older
// adapter_config.json; {} for a plain PEFT adapter.
nlohmann::json read_adapter_extra(const std::string& dir);
// The base model directory an adapter names: base_model_name_or_path, else the sidecar's path relative
// to the adapter; an error naming adapter_config.json when neither is a directory.
std::string adapter_base_model(const std::string& dir);

// Adds every adapter's ΔW into its base weight and removes the adapters (PEFT merge_and_unload).
void merge_and_unload(SequenceClassifier& model);

}  // namespace lorakit
