// The model the trainer fine-tunes: an encoder plus a task head producing logits [B, num_labels]
// (num_labels = 1 for regression). BERT / RoBERTa (models/bert.h), DistilBERT, DeBERTa-v2, ViT and USE-lite
// (models/use_lite_task.h) implement it; methods and the trainer only see this interface.
#pragma once
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <memory>
#include <string>
#include <vector>

#include "models/config.h"

namespace lorakit {

struct TaskModelImpl : torch::nn::Module {
  explicit TaskModelImpl(ModelConfig c) : cfg(std::move(c)) {}
  // input_ids / attention_mask / token_type_ids: [B, T] int64 (token types may be undefined).
  virtual at::Tensor forward(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                             const at::Tensor& token_type_ids) = 0;
  // Image models (ViT): pixel_values [B, C, H, W] floating, already normalised. Text models throw.
  virtual at::Tensor forward_pixels(const at::Tensor& pixel_values);
  virtual bool takes_pixels() const { return false; }
  // Hugging Face-style initialisation of whatever is not loaded from a checkpoint (uses the global
  // generator: seed it first).
  virtual void init_weights() = 0;

  // Frozen-prefix caching (train/prefix_cache.h). A family that supports it lists the stages of its
  // forward in order; "cut k" is the state after stages 0 .. k-1, from which forward_from(k, ...) gives
  // the logits forward() would. Default: no stages (never cached).
  struct Stage {
    std::string name;                             // module path ("bert.encoder.layer.3")
    std::shared_ptr<torch::nn::Module> module;    // what must be frozen and deterministic to cache past it
    bool per_token = true;                        // the state after it is [B, T, W] (else [B, W])
    int64_t width = 0;                            // W (0: cfg.hidden_size)
  };
  virtual std::vector<Stage> prefix_stages() { return {}; }
  // The state at cut k (1 <= k <= prefix_stages().size()); `input` is the token ids, or the pixel values
  // of an image model (mask and token types then undefined).
  virtual at::Tensor forward_to(int64_t k, const at::Tensor& input, const at::Tensor& attention_mask,
                                const at::Tensor& token_type_ids);
  // The logits from the state at cut k; `attention_mask` [B, T] is the batch's (undefined: all attended),
  // `token_type_ids` too (USE-lite's bi-encoder finds a pair's halves by them).
  virtual at::Tensor forward_from(int64_t k, const at::Tensor& state, const at::Tensor& attention_mask,
                                  const at::Tensor& token_type_ids = {});
  // Whether a cached per-token state can also hold the values the model computes at a batch's padded positions
  // (PrefixCache keep_padding, for a method that reads them): false where padding is not a row's own
  // (USE-lite's bi-encoder pads each half to the batch's longest half).
  virtual bool prefix_cache_keeps_padding() const { return true; }
  // The head reads the last encoder layer at the first position only ([CLS]): when true, a family that
  // supports it (BERT, RoBERTa, DistilBERT, ViT) runs that layer's query, attention output and feed-forward for
  // the first position alone (keys and values still for all), the same logits at a fraction of the layer's
  // cost, forward and backward (with dropout active the masks are drawn for fewer positions, so the same
  // computation in distribution, not bit for bit). Off by default (forward() then is transformers' computation step for step);
  // the trainer turns it on (TrainConfig::prune_last_layer) unless the method reads the unread positions.
  bool prune_last_layer = false;
  virtual bool supports_last_layer_pruning() const { return false; }
  ModelConfig cfg;
};

// Holder of any task model. Constructing one from a ModelConfig builds the family its model_type names.
class SequenceClassifier : public torch::nn::ModuleHolder<TaskModelImpl> {
 public:
  SequenceClassifier(std::nullptr_t) : ModuleHolder(nullptr) {}
  SequenceClassifier(std::shared_ptr<TaskModelImpl> p) : ModuleHolder(std::move(p)) {}
  explicit SequenceClassifier(const ModelConfig& c);
};

}  // namespace lorakit
