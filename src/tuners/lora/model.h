// LoRA as a method: attaches LoraLayer (or a subclass) to every matched module, trains only the
// adapters and modules_to_save, saves/loads PEFT adapters, merges.
#pragma once
#include <functional>
#include <map>
#include <memory>

#include "tuners/lora/layer.h"
#include "tuners/method.h"

namespace lorakit {

class LoraMethod : public Method {
 public:
  using LayerFactory = std::function<std::shared_ptr<LoraLayer>(AdaptableLinearImpl&, const LoraConfig&)>;
  explicit LoraMethod(LoraConfig cfg, LayerFactory factory = {});
  std::string name() const override { return "lora"; }
  void attach(SequenceClassifier& model) override;
  void save(const SequenceClassifier& model, const LoadedModel& base, const std::string& dir) const override;
  nlohmann::json describe() const override;
  // LoRA-family statistics for the epoch log (diagnostics of ΔW etc.). Subclasses extend, calling this.
  nlohmann::json epoch_stats() override;
  // Settings a subclass records under adapter_config.json's "lorakit" key.
  virtual nlohmann::json extra_config() const { return {{"method", name()}}; }

  const LoraConfig& config() const { return cfg_; }
  // Adapted module paths → their layers, in model order.
  const std::vector<std::pair<std::string, std::shared_ptr<LoraLayer>>>& layers() const { return layers_; }

 protected:
  LoraConfig cfg_;
  LayerFactory factory_;
  std::vector<std::pair<std::string, std::shared_ptr<LoraLayer>>> layers_;
};

// True if `param_name` lies inside one of `modules_to_save` (PEFT name matching on module paths).
bool in_modules_to_save(const std::string& param_name, const std::vector<std::string>& modules_to_save);

// Reads adapter_config.json (+ adapter_model.safetensors) from `dir`, attaches plain LoRA layers to
// `model` and loads adapter and head weights. Returns the method (for inspection / merging).
std::unique_ptr<LoraMethod> load_adapter(SequenceClassifier& model, const std::string& dir);
// The "lorakit" block of an adapter's config (method name and its settings), {} if absent.
nlohmann::json read_adapter_extra(const std::string& dir);

// Adds every adapter's ΔW into its base weight and removes the adapters (PEFT merge_and_unload).
void merge_and_unload(SequenceClassifier& model);

}  // namespace lorakit
