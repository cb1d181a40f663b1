#include "train/prefix_cache.h"

#include <ATen/ATen.h>
#include <algorithm>
#include <torch/nn/modules/dropout.h>
#include <torch/torch.h>

#include "core/errors.h"
#include "core/precision.h"
#include "text/batching.h"
#include "train/trainer.h"

namespace lorakit {

PrefixCacheMode parse_prefix_cache_mode(const std::string& s) {
  if (s == "off") return PrefixCacheMode::Off;
  if (s == "auto") return PrefixCacheMode::Auto;
  if (s == "on") return PrefixCacheMode::On;
  throw Error("--cache-frozen-prefix: '" + s + "' is not one of auto, on, off");
}

namespace {

bool has_trainable(torch::nn::Module& m) {
  for (const auto& p : m.parameters(/*recurse=*/true))
    if (p.requires_grad()) return true;
  return false;
}

// p of the first dropout in `m` that training would apply (0: none).
double train_dropout(torch::nn::Module& m) {
  for (const auto& sub : m.modules(/*include_self=*/true)) {
    if (auto* d = sub->as<torch::nn::DropoutImpl>())
      if (d->options.p() > 0) return d->options.p();
  }
  return 0;
}

}  // namespace

PrefixCachePlan plan_prefix_cache(SequenceClassifier& model, PrefixCacheMode mode) {
  PrefixCachePlan plan;
  if (mode == PrefixCacheMode::Off) return plan;
  const auto stages = model->prefix_stages();
  if (stages.empty()) {
    if (mode == PrefixCacheMode::On)
      plan.why_not = (model->cfg.is_question_answering() ? "the question-answering head on model_type '"
                                                          : "model_type '") +
                     model->cfg.model_type +
                     "' has no frozen-prefix stages (the sequence classifiers of BERT, RoBERTa, DistilBERT, "
                     "DeBERTa-v2, ViT and USE-lite do)";
    return plan;
  }
  int64_t cut = 0;
  std::string dropout_stage;
  double dropout_p = 0;
  for (const auto& st : stages) {
    if (has_trainable(*st.module)) {
      plan.first_trainable = st.name;
      break;
    }
    const double p = train_dropout(*st.module);
    if (p > 0 && dropout_stage.empty()) {
      dropout_stage = st.name;
      dropout_p = p;
    }
    ++cut;
  }
  if (plan.first_trainable.empty()) plan.first_trainable = "the task head";
  // The head above the stages is trainable (or nothing would train): the cut never swallows everything.
  if (cut == 0) {
    if (mode == PrefixCacheMode::On)
      plan.why_not = "nothing below the lowest trainable module (" + plan.first_trainable + ") is frozen";
    return plan;
  }
  if (mode == PrefixCacheMode::Auto && cut < 2) return plan;  // the embeddings alone: not worth the memory
  if (!dropout_stage.empty() && mode == PrefixCacheMode::Auto) {
    plan.why_not = stages[static_cast<size_t>(cut - 1)].name + " and below are frozen, but " + dropout_stage +
                   " applies dropout p = " + std::to_string(dropout_p).substr(0, 5) +
                   " in training; --cache-frozen-prefix on caches them as in eval mode (no dropout there)";
    return plan;
  }
  plan.cut = cut;
  plan.dropout_stage = dropout_stage;
  plan.below = stages.front().name + (cut > 1 ? " .. " + stages[static_cast<size_t>(cut - 1)].name : "");
  return plan;
}

PrefixCache::PrefixCache(SequenceClassifier model, int64_t cut, bool keep_padding)
    : model_(std::move(model)), cut_(cut), keep_padding_(keep_padding) {
  const auto stages = model_->prefix_stages();
  if (cut < 1 || cut > static_cast<int64_t>(stages.size()))
    throw Error("prefix cache: cut " + std::to_string(cut) + " is outside the model's " +
                std::to_string(stages.size()) + " stages");
  per_token_ = stages[static_cast<size_t>(cut - 1)].per_token;
  width_ = stages[static_cast<size_t>(cut - 1)].width > 0 ? stages[static_cast<size_t>(cut - 1)].width : model_->cfg.hidden_size;
  if (keep_padding && per_token_ && !model_->prefix_cache_keeps_padding())
    throw Error("prefix cache: model_type '" + model_->cfg.model_type + "' cannot keep a batch's padded positions");
}

uint64_t PrefixCache::estimate_bytes(const TaskDataset& ds) const {
  uint64_t elems = 0;
  if (per_token_ && keep_padding_) {
    size_t longest = 0;
    for (size_t len : ds.lengths()) longest = std::max(longest, len);
    elems = static_cast<uint64_t>(ds.size()) * longest * static_cast<uint64_t>(width_);
  } else if (per_token_) {
    for (size_t len : ds.lengths()) elems += static_cast<uint64_t>(len) * static_cast<uint64_t>(width_);
  } else {
    elems = static_cast<uint64_t>(ds.size()) * static_cast<uint64_t>(width_);
  }
  return elems * sizeof(float);
}

void PrefixCache::build(const TaskDataset& ds, int64_t batch_size) {
  const bool was_training = model_->is_training();
  model_->eval();
  torch::NoGradGuard ng;
  rows_.assign(ds.size(), at::Tensor());
  bytes_ = 0;
  // Length order, fixed: the same batches (and so the same values) whenever the cache is built.
  // keep_padding: every batch also holds the longest row, so that collate pads the others as far as any
  // training batch can (its own output is dropped).
  const auto& lengths = ds.lengths();
  const size_t longest =
      lengths.empty() ? 0 : static_cast<size_t>(std::max_element(lengths.begin(), lengths.end()) - lengths.begin());
  for (auto& idx : data::make_batches(ds.lengths(), static_cast<size_t>(std::max<int64_t>(1, batch_size)), 0,
                                      /*shuffle=*/false, /*group=*/true)) {
    std::vector<size_t> with = idx;
    if (keep_padding_ && per_token_ && std::find(idx.begin(), idx.end(), longest) == idx.end()) with.push_back(longest);
    Batch b = ds.collate(with);
    const bool pixels = b.pixel_values.defined();
    at::Tensor mask = pixels ? at::Tensor() : b.attention_mask.defined() ? b.attention_mask : at::ones_like(b.input_ids);
    at::Tensor state = forward_autocast([&] {
      return model_->forward_to(cut_, pixels ? b.pixel_values : b.input_ids, mask, b.token_type_ids);
    });
    state = state.to(at::kFloat);
    // Per-token rows keep every position for images (all real) and with keep_padding (padded ones
    // included); else a row's real tokens, its first mask-sum positions (right padding).
    at::Tensor lens;
    if (per_token_ && (pixels || keep_padding_)) {
      lens = at::full({state.size(0)}, state.size(1), at::kLong);
    } else if (per_token_) {
      lens = mask.sum(1);
      if (!at::equal(mask.cumprod(1).sum(1), lens))
        throw Error("prefix cache: a batch's attention mask is not right-padded (ones, then zeros)");
    }
    for (size_t j = 0; j < idx.size(); ++j) {
      const int64_t jj = static_cast<int64_t>(j);
      at::Tensor row = per_token_ ? state[jj].narrow(0, 0, lens[jj].item<int64_t>()) : state[jj];
      row = row.clone();
      bytes_ += static_cast<uint64_t>(row.numel()) * sizeof(float);
      rows_[idx[j]] = std::move(row);
    }
  }
  if (was_training) model_->train();
}

at::Tensor PrefixCache::logits(const Batch& b) const {
  const int64_t B = static_cast<int64_t>(b.indices.size());
  if (B == 0) throw Error("prefix cache: an empty batch");
  for (size_t i : b.indices)
    if (i >= rows_.size() || !rows_[i].defined())
      throw Error("prefix cache: row " + std::to_string(i) + " was not cached (a batch of another dataset?)");
  at::Tensor state;
  if (per_token_) {
    int64_t T = 0;
    if (b.input_ids.defined()) {
      T = b.input_ids.size(1);
    } else {
      for (size_t i : b.indices) T = std::max(T, rows_[i].size(0));
    }
    state = at::zeros({B, T, width_}, at::kFloat);
    for (int64_t j = 0; j < B; ++j) {
      const at::Tensor& r = rows_[b.indices[static_cast<size_t>(j)]];
      if (keep_padding_ ? r.size(0) < T : r.size(0) > T)
        throw Error("prefix cache: a cached row of " + std::to_string(r.size(0)) + " positions does not fit a batch of " +
                    std::to_string(T));
      const int64_t n = keep_padding_ ? T : r.size(0);
      state[j].narrow(0, 0, n).copy_(r.narrow(0, 0, n));
    }
  } else {
    std::vector<at::Tensor> rs;
    rs.reserve(static_cast<size_t>(B));
    for (size_t i : b.indices) rs.push_back(rows_[i]);
    state = at::stack(rs);
  }
  at::Tensor mask = b.attention_mask;
  return forward_autocast([&] { return model_->forward_from(cut_, state, mask, b.token_type_ids); });
}

at::Tensor cached_batch_logits(SequenceClassifier& model, const Batch& b, const PrefixCache* cache) {
  return cache ? cache->logits(b) : batch_logits(model, b);
}

}  // namespace lorakit
