// Frozen-prefix caching (issue 14): when every stage of the model below the lowest trainable module is
// frozen and deterministic, its output for each row never changes during training. It is computed once
// per row (train and eval sets, before the first epoch, in fixed length-ordered batches so that a resumed
// run rebuilds the same values) and every step and evaluation runs only the stages above it.
//
//   --cache-frozen-prefix auto (default): used when the prefix holds at least one encoder layer, has no
//                                          dropout that training would apply, and fits --cache-max-mb
//   --cache-frozen-prefix on:   also accepts dropout in the prefix (run as in eval mode: no dropout there);
//                               an error when there is no frozen prefix or it does not fit
//   --cache-frozen-prefix off
//
// Families opt in through TaskModelImpl::prefix_stages (the sequence classifiers of BERT, RoBERTa, DistilBERT,
// DeBERTa-v2, ViT and USE-lite; not the question-answering heads).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "models/task_model.h"
#include "tasks/task.h"

namespace lorakit {

enum class PrefixCacheMode { Off, Auto, On };
// "off" | "auto" | "on"; anything else: an Error naming --cache-frozen-prefix.
PrefixCacheMode parse_prefix_cache_mode(const std::string& s);

struct PrefixCachePlan {
  int64_t cut = 0;                 // stages below the cut are cached (0: no cache)
  std::string below;               // the stages cached, in words ("bert.embeddings .. bert.encoder.layer.2")
  std::string first_trainable;     // the first stage that is not ("the task head" when every stage is frozen)
  std::string dropout_stage;       // a cached stage with dropout p > 0 (only with mode On)
  std::string why_not;             // when cut == 0 and caching would have applied: why it is not used
};

// The cut for `model` as the method left it (trainable parameters set), under `mode`. Stage k is
// cacheable when it holds no trainable parameter and (mode On, or every dropout in it has p = 0).
PrefixCachePlan plan_prefix_cache(SequenceClassifier& model, PrefixCacheMode mode);

class PrefixCache {
 public:
  // keep_padding: per-token rows keep the positions a batch may pad them to (up to the dataset's longest
  // row), with the values the whole model computes there; else only the real tokens (zeros where padded).
  PrefixCache(SequenceClassifier model, int64_t cut, bool keep_padding = false);
  // Bytes the cache of `ds` would take (fp32 states).
  // A row's padded positions depend only on its own tokens (padding is masked as keys), so a row padded
  // to the dataset's longest length holds every value a training batch can give it.
  uint64_t estimate_bytes(const TaskDataset& ds) const;
  // Runs the prefix on every row of `ds` (eval mode, no grad, batches of `batch_size` in length order).
  void build(const TaskDataset& ds, int64_t batch_size);
  // The logits of `b` (rows b.indices of the dataset built) from the cached states: the stages above
  // the cut, in the model's current mode. Under --bf16, the same autocast as batch_logits.
  at::Tensor logits(const Batch& b) const;
  uint64_t bytes() const { return bytes_; }
  size_t rows() const { return rows_.size(); }

 private:
  mutable SequenceClassifier model_;
  int64_t cut_;
  bool per_token_;
  bool keep_padding_;
  int64_t width_;
  std::vector<at::Tensor> rows_;  // per row: [len, H] (per token; keep_padding: [longest, H]) or [H]
  uint64_t bytes_ = 0;
};

// cache ? cache->logits(b) : batch_logits(model, b).
at::Tensor cached_batch_logits(SequenceClassifier& model, const Batch& b, const PrefixCache* cache);

}  // namespace lorakit
