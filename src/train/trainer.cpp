#include "train/trainer.h"

#include <signal.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <random>
#include <set>
#include <sstream>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <fmt/core.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>

#include "core/errors.h"
#include "core/fileutil.h"
#include "core/json_bits.h"
#include "core/precision.h"
#include "core/runtime.h"
#include "models/layers.h"
#include "text/batching.h"
#include "train/dist.h"
#include "train/interrupt.h"
#include "train/prefix_cache.h"
#include "train/train_checkpoint.h"

namespace lorakit {
namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::string hms(double s) {
  if (!std::isfinite(s) || s < 0) s = 0;
  int64_t x = static_cast<int64_t>(s + 0.5);
  return fmt::format("{}:{:02d}:{:02d}", x / 3600, (x / 60) % 60, x % 60);
}

class Progress {
 public:
  Progress(bool on, int64_t total) : on_(on), total_(total), tty_(isatty(2)), start_(Clock::now()) {}
  void update(int64_t step, int64_t epoch, double loss, double samples_per_s) {
    if (!on_) return;
    const double el = since(start_);
    const double eta = step > 0 ? el / step * (total_ - step) : 0;
    const int width = 24;
    const int fill = total_ > 0 ? static_cast<int>(width * step / total_) : 0;
    std::string bar = std::string(fill, '#') + std::string(width - fill, '.');
    std::string line = fmt::format("epoch {} [{}] step {}/{} loss {:.4f} {:.1f} samples/s ETA {}", epoch, bar, step,
                                   total_, loss, samples_per_s, hms(eta));
    if (tty_) {
      fmt::print(stderr, "\r{}\x1b[K", line);
    } else if (step == total_ || step % std::max<int64_t>(1, total_ / 20) == 0) {
      fmt::print(stderr, "{}\n", line);
    }
    std::fflush(stderr);
  }
  void message(const std::string& m) {
    if (!on_) return;
    if (tty_) fmt::print(stderr, "\r\x1b[K");
    fmt::print(stderr, "{}\n", m);
  }

 private:
  bool on_;
  int64_t total_;
  bool tty_;
  Clock::time_point start_;
};

void save_dir_atomically(const std::string& dir, const std::function<void(const std::string&)>& write) {
  namespace fs = std::filesystem;
  const std::string tmp = dir + ".tmp";
  std::error_code ec;
  fs::remove_all(tmp, ec);
  try {
    write(tmp);
  } catch (...) {
    fs::remove_all(tmp, ec);  // a failed write (disk full) leaves the previous directory as it was
    throw;
  }
  const std::string old = dir + ".old";
  fs::remove_all(old, ec);
  if (fs::exists(dir)) fs::rename(dir, old);
  fs::rename(tmp, dir);
  fs::remove_all(old, ec);
}

// The first trained parameter holding NaN or inf, or "" (nothing non-finite is ever saved).
std::string first_non_finite(const SequenceClassifier& model) {
  torch::NoGradGuard ng;
  for (auto& p : model->named_parameters(true))
    if (p.value().requires_grad() && !p.value().isfinite().all().item<bool>()) return p.key();
  return "";
}

}  // namespace

at::Tensor batch_logits(SequenceClassifier& model, const Batch& b) {
  return forward_autocast([&] {
    if (b.pixel_values.defined()) return model->forward_pixels(b.pixel_values);
    return model->forward(b.input_ids, b.attention_mask, b.token_type_ids);
  });
}

EvalResult evaluate(SequenceClassifier& model, const Task& task, const TaskDataset& ds, int64_t batch_size,
                    double tau, Dist* dist, const PrefixCache* cache) {
  auto t0 = Clock::now();
  EvalResult r;
  const bool was_training = model->is_training();
  model->eval();
  torch::NoGradGuard ng;
  auto collector = task.collector(ds);
  double loss_sum = 0, correct = 0;
  auto batches = data::make_batches(ds.lengths(), batch_size, 0, /*shuffle=*/false, /*group=*/true);
  auto score = [&](const at::Tensor& out, const Batch& b) {
    loss_sum += task.per_sample_loss(out, b.labels).sum().item<double>();
    correct += task.correct(out, b.labels, tau).sum().item<double>();
    collector->add(out, b);
  };
  if (dist && dist->world_size() > 1) {
    // Sharded: this rank's batches forward; every output is then summed into place over ranks (the other
    // ranks' slots hold zeros), and every rank scores all of them in order, as one process would.
    const int64_t w = dist->world_size(), rank = dist->rank();
    std::vector<at::Tensor> outs(batches.size());
    std::vector<at::Tensor> meta(1, at::zeros({static_cast<int64_t>(batches.size()), 4}, at::kLong));
    for (size_t i = 0; i < batches.size(); ++i) {
      if (static_cast<int64_t>(i) % w != rank) continue;
      outs[i] = cached_batch_logits(model, ds.collate(batches[i]), cache).to(at::kFloat).contiguous();
      auto m = meta[0][static_cast<int64_t>(i)];
      m.fill_(1);
      for (int64_t d = 0; d < outs[i].dim() && d < 3; ++d) m[d + 1] = outs[i].size(d);
      m[0] = outs[i].dim();
    }
    dist->all_reduce_sum(meta);  // every batch's output shape
    std::vector<at::Tensor> flat;
    for (size_t i = 0; i < batches.size(); ++i) {
      auto m = meta[0][static_cast<int64_t>(i)];
      std::vector<int64_t> shape;
      for (int64_t d = 0; d < m[0].item<int64_t>(); ++d) shape.push_back(m[d + 1].item<int64_t>());
      if (!outs[i].defined()) outs[i] = at::zeros(shape, at::kFloat);
      flat.push_back(outs[i]);
    }
    dist->all_reduce_sum(flat);
    for (size_t i = 0; i < batches.size(); ++i) score(flat[i], ds.collate(batches[i]));
  } else {
    for (auto& idx : batches) {
      Batch b = ds.collate(idx);
      score(cached_batch_logits(model, b, cache), b);
    }
  }
  const double n = std::max<double>(1, ds.size());
  r.loss = loss_sum / n;
  r.accuracy = correct / n;
  r.metrics = collector->finish();
  r.seconds = since(t0);
  if (was_training) model->train();
  return r;
}

at::Tensor predict_logits(SequenceClassifier& model, const TaskDataset& ds, int64_t batch_size) {
  const bool was_training = model->is_training();
  model->eval();
  torch::NoGradGuard ng;
  at::Tensor out = at::zeros({static_cast<int64_t>(ds.size()), model->cfg.num_labels}, at::kFloat);
  for (auto& idx : data::make_batches(ds.lengths(), batch_size, 0, /*shuffle=*/false, /*group=*/true)) {
    Batch b = ds.collate(idx);
    at::Tensor logits = batch_logits(model, b).to(at::kFloat);
    std::vector<int64_t> rows(idx.begin(), idx.end());
    out.index_copy_(0, at::tensor(rows, at::kLong), logits);
  }
  if (was_training) model->train();
  return out;
}

struct StepRunner::Impl {
  SequenceClassifier model;
  Method& method;
  const Task& task;
  TrainConfig cfg;
  int64_t total, warmup;
  std::vector<double> group_lr;
  std::vector<at::Tensor> trainable;
  std::unique_ptr<torch::optim::AdamW> opt;
  std::mt19937_64 rng;
  const PrefixCache* cache = nullptr;
  Impl(SequenceClassifier m, Method& me, const Task& ta, const TrainConfig& c, int64_t t, int64_t w)
      : model(std::move(m)), method(me), task(ta), cfg(c), total(t), warmup(w), rng(c.seed) {}
};

StepRunner::StepRunner(SequenceClassifier& model, Method& method, const Task& task, const TrainConfig& cfg,
                       int64_t total_steps, int64_t warmup_steps)
    : impl_(std::make_unique<Impl>(model, method, task, cfg, total_steps, warmup_steps)) {
  model->prune_last_layer =
      cfg.prune_last_layer && model->supports_last_layer_pruning() && !method.reads_every_position();
  if (cfg.bf16) store_frozen_weights_bf16(*model);
  // Optimizer groups come from the method (biases / LayerNorm without decay by default).
  std::vector<ParamGroup> groups = method.param_groups(model, cfg.weight_decay);
  std::vector<torch::optim::OptimizerParamGroup> og;
  for (auto& g : groups) {
    const double group_lr = g.lr > 0 ? g.lr : cfg.lr * g.lr_scale;
    auto o = std::make_unique<torch::optim::AdamWOptions>(group_lr);
    o->betas({0.9, 0.999}).eps(1e-8).weight_decay(g.weight_decay);
    og.emplace_back(g.params, std::move(o));
    impl_->group_lr.push_back(group_lr);
    impl_->trainable.insert(impl_->trainable.end(), g.params.begin(), g.params.end());
  }
  if (impl_->trainable.empty()) throw Error("the method left no trainable parameters");
  impl_->opt = std::make_unique<torch::optim::AdamW>(og, torch::optim::AdamWOptions(cfg.lr));
}

StepRunner::~StepRunner() = default;

torch::optim::Optimizer& StepRunner::optimizer() { return *impl_->opt; }

void StepRunner::set_prefix_cache(const PrefixCache* cache) { impl_->cache = cache; }

double StepRunner::current_lr() const {
  return static_cast<torch::optim::AdamWOptions&>(impl_->opt->param_groups()[0].options()).lr();
}

StepRunner::Out StepRunner::step(const Batch& b, int64_t epoch) { return step(b, epoch, -1); }

StepRunner::Out StepRunner::step(const Batch& b, int64_t epoch, int64_t global_rows) {
  Impl& m = *impl_;
  Dist* dist = m.cfg.dist && m.cfg.dist->world_size() > 1 ? m.cfg.dist : nullptr;
  if (dist && global_rows <= 0) throw Error("StepRunner: a data-parallel step needs the global batch's row count");
  m.model->train();
  at::Tensor logits = cached_batch_logits(m.model, b, m.cache);
  StepInfo info;
  info.step = step_;
  info.total_steps = m.total;
  info.epoch = epoch;
  info.rng = &m.rng;
  info.logits = logits;
  info.labels = b.labels;
  info.task = &m.task;
  info.per_sample_loss = m.task.per_sample_loss(logits, b.labels);
  if (dist) {
    // This rank's share of the global mean; the methods' terms likewise (StepInfo::param_share / global_count).
    info.task_loss = info.per_sample_loss.sum() / static_cast<double>(global_rows);
    info.sample_weight = 1.0 / static_cast<double>(global_rows);
    info.param_share = 1.0 / dist->world_size();
    info.global_count = [dist](int64_t n) { return dist->sum(n); };
  } else {
    info.task_loss = info.per_sample_loss.mean();  // sample_weight left 0: StepInfo::task_weight() reads it as 1/B
  }
  at::Tensor extra = m.method.extra_loss(info);
  at::Tensor loss = extra.defined() ? info.task_loss + extra : info.task_loss;
  m.opt->zero_grad();
  const double loss_value = loss.item<double>();
  bool finite = std::isfinite(loss_value);
  // Every rank skips or none: the verdict on the loss is shared.
  if (dist) finite = dist->sum(static_cast<int64_t>(finite ? 0 : 1)) == 0;
  const double task_loss_value =
      dist ? dist->sum(info.per_sample_loss.sum().item<double>()) / static_cast<double>(global_rows)
           : info.task_loss.item<double>();
  if (finite) {
    loss.backward();
    m.method.after_backward(info);
    if (dist) {
      std::vector<at::Tensor> grads;
      for (auto& p : m.trainable)
        if (p.grad().defined()) grads.push_back(p.mutable_grad());
      dist->all_reduce_sum(grads);
    }
    // clip_grad_norm_ returns the total norm (before clipping); with clipping off it is measured alone.
    const double norm = m.cfg.max_grad_norm > 0
                            ? torch::nn::utils::clip_grad_norm_(m.trainable, m.cfg.max_grad_norm)
                            : torch::nn::utils::clip_grad_norm_(m.trainable, std::numeric_limits<double>::infinity());
    finite = std::isfinite(norm);
  }
  if (!finite) {
    m.opt->zero_grad();
    ++step_;
    return {logits, task_loss_value, /*skipped=*/true};
  }
  m.method.before_optimizer_step(info, *m.opt);
  const double factor = step_ < m.warmup ? static_cast<double>(step_ + 1) / std::max<int64_t>(1, m.warmup)
                                         : std::max(0.0, static_cast<double>(m.total - step_) /
                                                             std::max<int64_t>(1, m.total - m.warmup));
  for (size_t gi = 0; gi < m.opt->param_groups().size(); ++gi)
    static_cast<torch::optim::AdamWOptions&>(m.opt->param_groups()[gi].options()).lr(m.group_lr[gi] * factor);
  m.opt->step();
  m.method.after_optimizer_step(info, *m.opt);
  ++step_;
  return {logits, task_loss_value};
}

namespace {

std::string adamw_key(size_t g, size_t i) { return "adamw." + std::to_string(g) + "." + std::to_string(i) + "."; }

}  // namespace

void StepRunner::save_state(nlohmann::json& state, std::map<std::string, at::Tensor>& tensors) const {
  const Impl& m = *impl_;
  torch::NoGradGuard ng;
  state["runner_step"] = step_;
  std::ostringstream rng;
  rng << m.rng;
  state["runner_rng"] = rng.str();
  for (auto& p : m.model->named_parameters(true))
    if (p.value().requires_grad()) tensors["param." + p.key()] = p.value().detach().clone();
  nlohmann::json steps = nlohmann::json::object(), lrs = nlohmann::json::array();
  auto& groups = m.opt->param_groups();
  for (size_t g = 0; g < groups.size(); ++g) {
    lrs.push_back(f64_bits(static_cast<torch::optim::AdamWOptions&>(groups[g].options()).lr()));
    for (size_t i = 0; i < groups[g].params().size(); ++i) {
      const at::Tensor& p = groups[g].params()[i];
      auto it = m.opt->state().find(c10::guts::to_string(p.unsafeGetTensorImpl()));
      if (it == m.opt->state().end()) continue;
      auto& s = static_cast<torch::optim::AdamWParamState&>(*it->second);
      const std::string k = adamw_key(g, i);
      steps[k] = s.step();
      tensors[k + "exp_avg"] = s.exp_avg().clone();
      tensors[k + "exp_avg_sq"] = s.exp_avg_sq().clone();
      if (s.max_exp_avg_sq().defined()) tensors[k + "max_exp_avg_sq"] = s.max_exp_avg_sq().clone();
    }
  }
  state["adamw_steps"] = steps;
  state["adamw_lr"] = lrs;
  MethodState ms;
  m.method.save_state(ms);
  state["method_state"] = ms.json;
  for (auto& [k, t] : ms.tensors) tensors["method." + k] = t;
  {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    tensors["rng.torch"] = gen.get_state();
  }
}

void StepRunner::load_state(const nlohmann::json& state, const std::map<std::string, at::Tensor>& tensors) {
  Impl& m = *impl_;
  torch::NoGradGuard ng;
  auto tensor = [&](const std::string& k) -> const at::Tensor& {
    auto it = tensors.find(k);
    if (it == tensors.end()) throw Error("training checkpoint: tensor '" + k + "' is missing");
    return it->second;
  };
  auto fits = [&](const std::string& what, const at::Tensor& have, const at::Tensor& saved) {
    if (have.sizes() != saved.sizes() || have.scalar_type() != saved.scalar_type())
      throw Error("training checkpoint: '" + what + "' has shape " + c10::str(saved.sizes()) + " " +
                  std::string(c10::toString(saved.scalar_type())) + ", the model's is " + c10::str(have.sizes()) +
                  " " + std::string(c10::toString(have.scalar_type())));
  };
  try {
    step_ = state.at("runner_step").get<int64_t>();
    std::istringstream rng(state.at("runner_rng").get<std::string>());
    rng >> m.rng;
    if (!rng) throw Error("training checkpoint: the run's generator state does not parse");
    for (auto& p : m.model->named_parameters(true)) {
      if (!p.value().requires_grad()) continue;
      const at::Tensor& t = tensor("param." + p.key());
      fits("param." + p.key(), p.value(), t);
      p.value().copy_(t);
    }
    m.opt->state().clear();
    const auto& steps = state.at("adamw_steps");
    const auto& lrs = state.at("adamw_lr");
    auto& groups = m.opt->param_groups();
    if (!lrs.is_array() || lrs.size() != groups.size())
      throw Error("training checkpoint: " + std::to_string(lrs.size()) + " optimizer groups, the run has " +
                  std::to_string(groups.size()));
    for (size_t g = 0; g < groups.size(); ++g) {
      static_cast<torch::optim::AdamWOptions&>(groups[g].options()).lr(f64_from_bits(lrs[g], "adamw_lr"));
      for (size_t i = 0; i < groups[g].params().size(); ++i) {
        const std::string k = adamw_key(g, i);
        if (!steps.contains(k)) continue;
        const at::Tensor& p = groups[g].params()[i];
        auto s = std::make_unique<torch::optim::AdamWParamState>();
        s->step(steps[k].get<int64_t>());
        fits(k + "exp_avg", p, tensor(k + "exp_avg"));
        fits(k + "exp_avg_sq", p, tensor(k + "exp_avg_sq"));
        s->exp_avg(tensor(k + "exp_avg").clone());
        s->exp_avg_sq(tensor(k + "exp_avg_sq").clone());
        if (tensors.count(k + "max_exp_avg_sq")) s->max_exp_avg_sq(tensor(k + "max_exp_avg_sq").clone());
        m.opt->state()[c10::guts::to_string(p.unsafeGetTensorImpl())] = std::move(s);
      }
    }
    MethodState ms;
    ms.json = state.at("method_state");
    for (auto& [k, t] : tensors)
      if (k.rfind("method.", 0) == 0) ms.tensors[k.substr(7)] = t;
    m.method.load_state(ms);
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(tensor("rng.torch"));
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("training checkpoint: trainer_state.json: ") + e.what());
  } catch (const c10::Error& e) {
    throw Error(std::string("training checkpoint: ") + e.what_without_backtrace());
  }
}

void TrainConfig::validate() const {
  if (batch_size <= 0) throw Error("--batch-size must be positive, got " + std::to_string(batch_size));
  if (eval_batch_size <= 0) throw Error("--eval-batch-size must be positive, got " + std::to_string(eval_batch_size));
  if (epochs <= 0 && max_steps <= 0) throw Error("need --epochs > 0 or --max-steps > 0");
  if (!(lr > 0) || !std::isfinite(lr)) throw Error("--lr must be a positive number, got " + std::to_string(lr));
  if (!(weight_decay >= 0)) throw Error("--weight-decay must be >= 0");
  if (!(warmup_ratio >= 0 && warmup_ratio <= 1)) throw Error("--warmup-ratio must be in [0, 1]");
  if (!std::isfinite(max_grad_norm)) throw Error("--max-grad-norm must be finite");
  if (max_bad_steps < 0) throw Error("--max-bad-steps must be >= 0, got " + std::to_string(max_bad_steps));
  if (save_steps < 0) throw Error("--save-steps must be >= 0, got " + std::to_string(save_steps));
  if (logging_steps < 0) throw Error("--logging-steps must be >= 0, got " + std::to_string(logging_steps));
  if (bf16) require_bf16_cpu("--precision bf16 (--bf16)");
  parse_prefix_cache_mode(cache_frozen_prefix);
  if (cache_max_mb < 0) throw Error("--cache-max-mb must be >= 0, got " + std::to_string(cache_max_mb));
  if (out_dir.empty()) throw Error("--out is required");
}

namespace {

// Flag values compare as JSON, or as numbers where both are words that read as one ("5e-4" = "0.0005").
bool same_value(const nlohmann::json& a, const nlohmann::json& b) {
  if (a == b) return true;
  if (!a.is_string() || !b.is_string()) return false;
  auto number = [](const std::string& s, double& v) {
    if (s.empty()) return false;
    char* end = nullptr;
    v = std::strtod(s.c_str(), &end);
    return end && *end == '\0';
  };
  double x = 0, y = 0;
  return number(a.get<std::string>(), x) && number(b.get<std::string>(), y) && x == y;
}

std::string show(const nlohmann::json& v) {
  if (v.is_null()) return "(not set)";
  return v.is_string() ? "'" + v.get<std::string>() + "'" : v.dump();
}

// What a resumed run must share with the checkpoint's: the caller's flags, and the trainer's own settings
// where the caller gave none, the method, the task and the data's size.
nlohmann::json resume_spec(const TrainConfig& cfg, const Method& method, const Task& task, const TaskDataset& train,
                           const TaskDataset& eval, const LoadedModel& base) {
  nlohmann::json j = cfg.run_flags.is_object() ? cfg.run_flags : nlohmann::json::object();
  auto put = [&](const char* k, nlohmann::json v) {
    if (!j.contains(k)) j[k] = std::move(v);
  };
  put("--epochs", cfg.epochs);
  put("--max-steps", cfg.max_steps);
  put("--batch-size", cfg.batch_size);
  put("--eval-batch-size", cfg.eval_batch_size);
  put("--lr", cfg.lr);
  put("--weight-decay", cfg.weight_decay);
  put("--warmup-ratio", cfg.warmup_ratio);
  put("--warmup-steps", cfg.warmup_steps);
  put("--max-grad-norm", cfg.max_grad_norm);
  put("--seed", cfg.seed);
  put("--no-group-by-length", !cfg.group_by_length);
  put("--max-bad-steps", cfg.max_bad_steps);
  put("--model", base.dir);
  // The precision the run computes in, as resolved (auto is bf16 on one CPU and fp32 on another), not as spelt.
  j["precision"] = cfg.bf16 ? "bf16" : "fp32";
  j["method"] = method.describe();
  j["task"] = task.name();
  j["training rows"] = train.size();
  j["evaluation rows"] = eval.size();
  return j;
}

void check_same_run(const std::string& where, const nlohmann::json& saved, const nlohmann::json& now,
                    const nlohmann::json& defaults) {
  std::vector<std::string> diffs;
  std::set<std::string> keys;
  for (auto& [k, v] : saved.items()) keys.insert(k);
  for (auto& [k, v] : now.items()) keys.insert(k);
  // How the precision was spelt (checkpoints written before it was recorded resolved kept these); the
  // resolved "precision" is what is compared.
  keys.erase("--precision");
  keys.erase("--bf16");
  for (auto& k : keys) {
    const nlohmann::json a = saved.contains(k) ? saved[k] : nlohmann::json();
    const nlohmann::json b = now.contains(k) ? now[k] : nlohmann::json();
    // A flag newer than the checkpoint: the same run when this one leaves it at its default.
    if (!saved.contains(k) && defaults.contains(k) && same_value(defaults[k], b)) continue;
    if (!same_value(a, b)) diffs.push_back(fmt::format("{} {} (the checkpoint's run: {})", k, show(b), show(a)));
  }
  if (diffs.empty()) return;
  std::string list;
  for (auto& d : diffs) list += (list.empty() ? "" : "; ") + d;
  throw Error("--resume: " + where + " was written by a run with other settings: " + list +
              ". Resume with the checkpoint's settings, or train into a new --out");
}

// --out must be writable and have room for what the run writes, checked before training starts: at the
// peak a checkpoint and its successor (parameters + AdamW's two moments each), best/ and last/.
void check_out_dir(const std::string& out, const SequenceClassifier& model) {
  make_dirs(out);
  const std::string probe = join_path(out, ".lorakit-write-test");
  try {
    write_text_atomically(probe, "lorakit\n");
  } catch (const Error& e) {
    throw Error("--out " + out + ": not writable (" + e.what() + ")");
  }
  std::remove(probe.c_str());
  uint64_t bytes = 0;
  for (auto& p : model->parameters(true))
    if (p.requires_grad()) bytes += static_cast<uint64_t>(p.numel()) * p.element_size();
  const uint64_t need = 8 * bytes + (1u << 20);
  struct rlimit fsize {};
  if (::getrlimit(RLIMIT_FSIZE, &fsize) == 0 && fsize.rlim_cur != RLIM_INFINITY &&
      static_cast<uint64_t>(fsize.rlim_cur) < 3 * bytes + (1u << 16))
    throw Error(fmt::format("--out {}: files may not grow past {:.1f} MB here (ulimit -f), but a training checkpoint "
                            "of this run (parameters and AdamW's two moments) is about {:.1f} MB",
                            out, fsize.rlim_cur / 1e6, 3 * bytes / 1e6));
  struct statvfs fsinfo {};
  if (::statvfs(out.c_str(), &fsinfo) != 0) return;
  const uint64_t free_bytes = static_cast<uint64_t>(fsinfo.f_bavail) * fsinfo.f_frsize;
  if (free_bytes < need)
    throw Error(fmt::format("--out {}: {:.1f} MB free on its filesystem, but this run writes up to about {:.1f} MB "
                            "(two training checkpoints with AdamW's state, best/ and last/); free some space or "
                            "choose another --out",
                            out, free_bytes / 1e6, need / 1e6));
}

// Rows [begin, end) of a collated batch (the global batch's padding kept, so every rank sees the shapes
// and padded positions of the one-process run).
Batch slice_rows(const Batch& b, int64_t begin, int64_t end) {
  Batch s;
  auto cut = [&](const at::Tensor& t) { return t.defined() ? t.slice(0, begin, end) : t; };
  s.input_ids = cut(b.input_ids);
  s.attention_mask = cut(b.attention_mask);
  s.token_type_ids = cut(b.token_type_ids);
  s.pixel_values = cut(b.pixel_values);
  s.labels = cut(b.labels);
  s.indices.assign(b.indices.begin() + begin, b.indices.begin() + end);
  return s;
}

struct EpochAccum {
  double loss_sum = 0, correct = 0, n_seen = 0, seconds = 0;
  int64_t skipped = 0;
};

}  // namespace

TrainResult train(LoadedModel& base, Method& method, const Task& task, const TaskDataset& train_ds,
                  const TaskDataset& eval_ds, const TrainConfig& cfg) {
  cfg.validate();
  if (train_ds.size() == 0) throw Error("training set is empty");
  const Bf16Scope precision(cfg.bf16);  // training and evaluation forwards alike
  SequenceClassifier& model = base.model;
  Dist* dist = cfg.dist && cfg.dist->world_size() > 1 ? cfg.dist : nullptr;
  const bool writer = !dist || dist->rank() == 0;  // only rank 0 writes files
  if (writer) check_out_dir(cfg.out_dir, model);
  if (dist) {
    dist->barrier();  // --out exists before any rank looks into it
    method.set_rank_sum([dist](double v) { return dist->sum(v); });
  }
  install_stop_handlers();
  const int64_t per_epoch = (static_cast<int64_t>(train_ds.size()) + cfg.batch_size - 1) / cfg.batch_size;
  int64_t total = cfg.max_steps > 0 ? cfg.max_steps : per_epoch * cfg.epochs;
  const int64_t epochs = cfg.max_steps > 0 ? (cfg.max_steps + per_epoch - 1) / per_epoch : cfg.epochs;
  const int64_t warmup =
      cfg.warmup_steps >= 0 ? cfg.warmup_steps : static_cast<int64_t>(std::ceil(cfg.warmup_ratio * total));

  StepRunner runner(model, method, task, cfg, total, warmup);
  const int64_t n_trainable = count_trainable(*model);
  int64_t n_inference = method.inference_params(model);
  const nlohmann::json spec = resume_spec(cfg, method, task, train_ds, eval_ds, base);
  nlohmann::json run_cfg = {{"method", method.describe()}, {"task", task.name()}, {"epochs", epochs},
                            {"total_steps", total}, {"warmup_steps", warmup}, {"batch_size", cfg.batch_size},
                            {"lr", cfg.lr}, {"weight_decay", cfg.weight_decay}, {"max_grad_norm", cfg.max_grad_norm},
                            {"seed", cfg.seed}, {"train_examples", train_ds.size()},
                            {"eval_examples", eval_ds.size()}, {"trainable_params", n_trainable},
                            {"inference_params", n_inference}, {"model", base.dir},
                            {"prune_last_layer", model->prune_last_layer},
                            {"precision", cfg.bf16 ? "bf16" : "fp32"}};

  Progress progress(cfg.progress && writer, total);
  TrainResult result;
  const std::string main_metric = task.main_metric();
  std::string jsonl;
  std::string steps_jsonl;  // cfg.logging_steps lines so far (<out>/steps.jsonl)
  double best = -std::numeric_limits<double>::infinity();
  int64_t best_epoch = -1;
  int64_t step = 0;
  int64_t bad_in_a_row = 0;
  auto run_start = Clock::now();
  double train_seconds = 0;
  double samples_seen = 0;
  int64_t start_epoch = 1, start_position = 0;
  EpochAccum acc;
  std::string data_rng;

  if (cfg.resume) {
    auto ck = read_train_checkpoint(cfg.out_dir);
    if (!ck)
      throw Error("--resume: " + join_path(cfg.out_dir, "checkpoint") +
                  " holds no training checkpoint (none was written yet, or --out is another run's); run without "
                  "--resume to start");
    const nlohmann::json& st = ck->state;
    check_same_run(ck->dir, st.value("flags", nlohmann::json::object()), spec, cfg.run_flag_defaults);
    try {
      step = st.at("step").get<int64_t>();
      start_epoch = st.at("epoch").get<int64_t>();
      start_position = st.at("position").get<int64_t>();
      const auto& a = st.at("epoch_accum");
      acc.loss_sum = f64_from_bits(a.at("loss_sum"), "loss_sum");
      acc.correct = f64_from_bits(a.at("correct"), "correct");
      acc.n_seen = f64_from_bits(a.at("n_seen"), "n_seen");
      acc.seconds = f64_from_bits(a.at("seconds"), "seconds");
      acc.skipped = a.at("skipped").get<int64_t>();
      bad_in_a_row = st.at("bad_in_a_row").get<int64_t>();
      best = f64_from_bits(st.at("best"), "best");
      best_epoch = st.at("best_epoch").get<int64_t>();
      samples_seen = f64_from_bits(st.at("samples_seen"), "samples_seen");
      train_seconds = f64_from_bits(st.at("train_seconds"), "train_seconds");
      jsonl = st.at("jsonl").get<std::string>();
      steps_jsonl = st.value("steps_jsonl", std::string());
      data_rng = st.at("data_rng").get<std::string>();
      n_inference = st.at("inference_params").get<int64_t>();
    } catch (const nlohmann::json::exception& e) {
      throw Error(ck->dir + "/trainer_state.json: " + e.what());
    }
    if (step < 0 || step > total || start_epoch < 1 || start_position < 0 || start_position > per_epoch)
      throw Error(ck->dir + "/trainer_state.json: step " + std::to_string(step) + ", epoch " +
                  std::to_string(start_epoch) + ", position " + std::to_string(start_position) +
                  " do not fit this run (" + std::to_string(total) + " steps)");
    runner.load_state(st, ck->tensors);
    std::istringstream lines(jsonl);
    for (std::string l; std::getline(lines, l);)
      if (!l.empty()) result.epochs.push_back(nlohmann::json::parse(l));
    if (writer) write_text_atomically(join_path(cfg.out_dir, "metrics.jsonl"), jsonl);
    if (writer && cfg.logging_steps > 0) write_text_atomically(join_path(cfg.out_dir, "steps.jsonl"), steps_jsonl);
    if (writer) fmt::print(stderr, "lorakit: resuming from {} at step {} of {} (epoch {}, batch {} of {})\n", ck->dir, step, total,
               start_epoch, start_position, per_epoch);
  } else {
    if (writer && has_train_checkpoint(cfg.out_dir))
      fmt::print(stderr,
                 "lorakit: note: {} holds an earlier run's checkpoint; this run starts over and replaces it "
                 "(--resume continues it instead)\n",
                 join_path(cfg.out_dir, "checkpoint"));
  }

  // Frozen-prefix cache of both sets (train/prefix_cache.h), built before the first step.
  std::unique_ptr<PrefixCache> train_cache, eval_cache;
  {
    const PrefixCacheMode mode = parse_prefix_cache_mode(cfg.cache_frozen_prefix);
    PrefixCachePlan plan = plan_prefix_cache(model, mode);
    if (plan.cut > 0 && train_ds.random_rows()) {
      plan.cut = 0;
      plan.why_not = "the training rows are augmented (drawn anew every epoch)";
    }
    if (plan.cut > 0 && method.reads_padded_positions() && !model->prefix_cache_keeps_padding() &&
        model->prefix_stages()[static_cast<size_t>(plan.cut - 1)].per_token) {
      plan.cut = 0;
      plan.why_not = method.name() + " reads padded positions, whose values " + model->cfg.model_type +
                     " makes depend on the batch (not on the row alone), so its states cannot be cached per row";
    }
    if (plan.cut == 0 && !plan.why_not.empty()) {
      if (mode == PrefixCacheMode::On) throw Error("--cache-frozen-prefix on: " + plan.why_not);
      if (writer) fmt::print(stderr, "lorakit: frozen-prefix cache not used: {}\n", plan.why_not);
    }
    if (plan.cut > 0) {
      // A method that reads padded positions (GR-LoRA's norms) gets them as the whole model computes them.
      const bool keep_padding = method.reads_padded_positions();
      auto tc = std::make_unique<PrefixCache>(model, plan.cut, keep_padding);
      auto ec = std::make_unique<PrefixCache>(model, plan.cut, keep_padding);
      const uint64_t need = tc->estimate_bytes(train_ds) + ec->estimate_bytes(eval_ds);
      const uint64_t bound = static_cast<uint64_t>(cfg.cache_max_mb) << 20;
      if (need > bound) {
        const std::string msg = fmt::format(
            "the states below {} of {} + {} rows take {:.0f} MiB, over --cache-max-mb {}", plan.first_trainable,
            train_ds.size(), eval_ds.size(), need / 1048576.0, cfg.cache_max_mb);
        if (mode == PrefixCacheMode::On) throw Error("--cache-frozen-prefix on: " + msg);
        if (writer) fmt::print(stderr, "lorakit: frozen-prefix cache not used: {}\n", msg);
      } else {
        const auto t0 = Clock::now();
        tc->build(train_ds, cfg.eval_batch_size);
        ec->build(eval_ds, cfg.eval_batch_size);
        train_cache = std::move(tc);
        eval_cache = std::move(ec);
        run_cfg["frozen_prefix_cache"] = {{"cached", plan.below}, {"mib", (train_cache->bytes() + eval_cache->bytes()) / 1048576.0}};
        if (writer)
          fmt::print(stderr, "lorakit: frozen-prefix cache: {} ({}{}), {:.1f} MiB for {} + {} rows, built in {:.1f} s\n",
                     plan.below, "below " + plan.first_trainable,
                     plan.dropout_stage.empty() ? "" : "; dropout off in " + plan.dropout_stage + " and below",
                     (train_cache->bytes() + eval_cache->bytes()) / 1048576.0, train_ds.size(), eval_ds.size(),
                     since(t0));
        runner.set_prefix_cache(train_cache.get());
      }
    }
  }
  if (writer) write_text_atomically(join_path(cfg.out_dir, "train_config.json"), run_cfg.dump(2) + "\n");

  // `epoch` / `position`: where the run goes on from (position = batches of `epoch` already taken).
  auto checkpoint = [&](int64_t epoch, int64_t position, const TaskDataset& ds) {
    // A NaN / inf parameter is never checkpointed over a good checkpoint (the epoch's end stops the run).
    const std::string bad = first_non_finite(model);
    if (!bad.empty()) {
      progress.message("step " + std::to_string(step) + ": parameter '" + bad +
                       "' holds NaN or inf; no checkpoint written");
      return;
    }
    if (!writer) return;
    TrainCheckpoint c;
    nlohmann::json& st = c.state;
    st["flags"] = spec;
    st["step"] = step;
    st["total_steps"] = total;
    st["epoch"] = epoch;
    st["position"] = position;
    st["epoch_accum"] = {{"loss_sum", f64_bits(acc.loss_sum)}, {"correct", f64_bits(acc.correct)},
                         {"n_seen", f64_bits(acc.n_seen)}, {"seconds", f64_bits(acc.seconds)},
                         {"skipped", acc.skipped}};
    st["bad_in_a_row"] = bad_in_a_row;
    st["best"] = f64_bits(best);
    st["best_epoch"] = best_epoch;
    st["samples_seen"] = f64_bits(samples_seen);
    st["train_seconds"] = f64_bits(train_seconds);
    st["jsonl"] = jsonl;
    st["steps_jsonl"] = steps_jsonl;
    // The step log as far as this checkpoint: a run killed later and resumed rewrites it from here.
    if (writer && cfg.logging_steps > 0) write_text_atomically(join_path(cfg.out_dir, "steps.jsonl"), steps_jsonl);
    st["data_rng"] = position > 0 ? ds.rng_state() : std::string();
    st["inference_params"] = n_inference;
    runner.save_state(st, c.tensors);
    write_train_checkpoint(cfg.out_dir, c);
  };
  // Every rank stops at the same step: a signal to any of them counts for all.
  auto stop_signal = [&]() -> int {
    int sig = stop_requested();
    if (dist && dist->sum(static_cast<int64_t>(sig != 0)) > 0 && sig == 0) sig = SIGTERM;
    return sig;
  };
  auto stop_if_asked = [&](int sig) {
    if (sig)
      throw Interrupted(fmt::format("{} received: stopped after step {} of {} with a checkpoint in {}; continue with "
                                    "the same command and --resume",
                                    signal_name(sig), step, total, join_path(cfg.out_dir, "checkpoint")),
                        sig);
  };

  model->train();
  for (int64_t epoch = start_epoch; epoch <= epochs && step < total; ++epoch) {
    const bool resumed_here = epoch == start_epoch && start_position > 0;
    if (!resumed_here) acc = EpochAccum{};
    auto ep_start = Clock::now();
    const double ep_seconds_before = acc.seconds;
    auto batches = data::make_batches(train_ds.lengths(), cfg.batch_size, cfg.seed + epoch, /*shuffle=*/true,
                                      cfg.group_by_length);
    train_ds.set_epoch(cfg.seed * 1000003ULL + static_cast<uint64_t>(epoch));
    if (resumed_here) train_ds.set_rng_state(data_rng);
    const int64_t n_batches = static_cast<int64_t>(batches.size());
    for (int64_t bi = resumed_here ? start_position : 0; bi < n_batches; ++bi) {
      if (step >= total) break;
      const auto& idx = batches[bi];
      Batch b = train_ds.collate(idx);
      const int64_t rows = static_cast<int64_t>(idx.size());
      if (dist) {
        const int64_t w = dist->world_size(), r = dist->rank();
        b = slice_rows(b, r * rows / w, (r + 1) * rows / w);
      }
      StepRunner::Out so = dist ? runner.step(b, epoch, rows) : runner.step(b, epoch);
      at::Tensor logits = so.logits;
      ++step;
      if (so.skipped) {
        ++acc.skipped;
        ++bad_in_a_row;
        progress.message(fmt::format("step {}: non-finite loss or gradient (loss {}): step skipped, no update", step,
                                     so.loss));
        if (bad_in_a_row > cfg.max_bad_steps)
          throw Error(fmt::format("training stopped at step {}: {} step(s) in a row had a non-finite loss or gradient "
                                  "(--max-bad-steps {}); nothing was saved after the last good epoch. Lower --lr, "
                                  "check the data and the model's weights for NaN/inf",
                                  step, bad_in_a_row, cfg.max_bad_steps));
      } else {
        bad_in_a_row = 0;
        const double bl = so.loss;
        acc.loss_sum += bl * rows;
        const double correct_here = task.correct(logits, b.labels, cfg.regression_tau).sum().item<double>();
        acc.correct += dist ? dist->sum(correct_here) : correct_here;
        acc.n_seen += rows;
        samples_seen += rows;
      }
      if (cfg.logging_steps > 0 && step % cfg.logging_steps == 0) {
        nlohmann::ordered_json sl;
        sl["step"] = step;
        sl["epoch"] = epoch;
        if (so.skipped)
          sl["loss"] = nullptr;  // not finite: JSON has no NaN
        else
          sl["loss"] = so.loss;
        sl["lr"] = runner.current_lr();
        sl["skipped"] = so.skipped;
        steps_jsonl += sl.dump() + "\n";
      }
      acc.seconds = ep_seconds_before + since(ep_start);
      progress.update(step, epoch, acc.loss_sum / std::max(1.0, acc.n_seen),
                      samples_seen / std::max(1e-9, train_seconds + acc.seconds));
      fault_point("step", step);
      const bool epoch_goes_on = bi + 1 < n_batches && step < total;
      const int sig = epoch_goes_on ? stop_signal() : 0;
      if (epoch_goes_on && (sig || (cfg.save_steps > 0 && step % cfg.save_steps == 0)))
        checkpoint(epoch, bi + 1, train_ds);
      if (epoch_goes_on) stop_if_asked(sig);
    }
    const double ep_train_seconds = acc.seconds;
    train_seconds += ep_train_seconds;
    EvalResult ev = evaluate(model, task, eval_ds, cfg.eval_batch_size, cfg.regression_tau, dist, eval_cache.get());
    const double n_seen = acc.n_seen, correct = acc.correct;
    nlohmann::ordered_json line;
    line["epoch"] = epoch;
    line["step"] = step;
    line["train_loss"] = acc.loss_sum / std::max(1.0, n_seen);
    line["train_accuracy"] = correct / std::max(1.0, n_seen);
    line["eval_loss"] = ev.loss;
    line["eval_accuracy"] = ev.accuracy;
    for (auto& [k, v] : ev.metrics) line["eval_" + k] = v;
    line["generalization_gap"] = correct / std::max(1.0, n_seen) - ev.accuracy;
    line["skipped_steps"] = acc.skipped;
    line["train_seconds"] = ep_train_seconds;
    line["eval_seconds"] = ev.seconds;
    line["train_samples_per_second"] = n_seen / std::max(1e-9, ep_train_seconds);
    line["lr"] = runner.current_lr();
    line["trainable_params"] = n_trainable;
    // Methods that prune (AdaLoRA, SoRA) need fewer parameters at inference as training goes on.
    n_inference = method.inference_params(model);
    line["inference_params"] = n_inference;
    nlohmann::json ms = method.epoch_stats();
    for (auto& [k, v] : ms.items()) line[k] = v;
    result.epochs.push_back(line);
    jsonl += line.dump() + "\n";
    if (writer) write_text_atomically(join_path(cfg.out_dir, "metrics.jsonl"), jsonl);
    if (writer && cfg.logging_steps > 0) write_text_atomically(join_path(cfg.out_dir, "steps.jsonl"), steps_jsonl);
    const double main = ev.metrics.count(main_metric) ? ev.metrics.at(main_metric) : ev.accuracy;
    progress.message(fmt::format("epoch {}: train loss {:.4f} acc {:.4f} | eval loss {:.4f} {} {:.4f} | {:.1f}s", epoch,
                                 line["train_loss"].get<double>(), line["train_accuracy"].get<double>(), ev.loss,
                                 main_metric, main, ep_train_seconds + ev.seconds));
    const std::string bad = first_non_finite(model);
    if (!bad.empty())
      throw Error("training stopped after epoch " + std::to_string(epoch) + ": parameter '" + bad +
                  "' holds NaN or inf; nothing was written over the last good best/ (lower --lr)");
    if (cfg.keep_best && main > best) {
      best = main;
      best_epoch = epoch;
      if (writer)
        save_dir_atomically(join_path(cfg.out_dir, "best"), [&](const std::string& d) { method.save(model, base, d); });
    }
    fault_point("epoch-end", step);
    acc = EpochAccum{};
    checkpoint(epoch + 1, 0, train_ds);
    if (epoch < epochs && step < total) stop_if_asked(stop_signal());
  }
  if (writer)
    save_dir_atomically(join_path(cfg.out_dir, "last"), [&](const std::string& d) { method.save(model, base, d); });
  nlohmann::ordered_json s;
  s["task"] = task.name();
  s["method"] = method.name();
  s["main_metric"] = main_metric;
  s["best_epoch"] = best_epoch;
  s["best_" + main_metric] = best_epoch > 0 ? best : 0.0;
  s["final"] = result.epochs.empty() ? nlohmann::json() : nlohmann::json(result.epochs.back());
  s["steps"] = step;
  s["wall_seconds"] = since(run_start);
  s["train_samples_per_second"] = samples_seen / std::max(1e-9, train_seconds);
  s["trainable_params"] = n_trainable;
  s["inference_params"] = n_inference;
  result.summary = s;
  if (writer) {
    write_text_atomically(join_path(cfg.out_dir, "results.json"), s.dump(2) + "\n");
    // The run is whole (last/, results.json): its checkpoint is no longer needed.
    remove_train_checkpoint(cfg.out_dir);
  }
  if (dist) dist->barrier();  // no rank leaves before rank 0 has written
  return result;
}

}  // namespace lorakit
