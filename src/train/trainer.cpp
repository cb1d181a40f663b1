#include "train/trainer.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <random>

#include <ATen/ATen.h>
#include <fmt/core.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>

#include "core/errors.h"
#include "core/fileutil.h"
#include "text/batching.h"

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
  write(tmp);
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
  if (b.pixel_values.defined()) return model->forward_pixels(b.pixel_values);
  return model->forward(b.input_ids, b.attention_mask, b.token_type_ids);
}

EvalResult evaluate(SequenceClassifier& model, const Task& task, const TaskDataset& ds, int64_t batch_size,
                    double tau) {
  auto t0 = Clock::now();
  EvalResult r;
  const bool was_training = model->is_training();
  model->eval();
  torch::NoGradGuard ng;
  auto collector = task.collector(ds);
  double loss_sum = 0, correct = 0;
  for (auto& idx : data::make_batches(ds.lengths(), batch_size, 0, /*shuffle=*/false, /*group=*/true)) {
    Batch b = ds.collate(idx);
    at::Tensor out = batch_logits(model, b);
    loss_sum += task.per_sample_loss(out, b.labels).sum().item<double>();
    correct += task.correct(out, b.labels, tau).sum().item<double>();
    collector->add(out, b);
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
  Impl(SequenceClassifier m, Method& me, const Task& ta, const TrainConfig& c, int64_t t, int64_t w)
      : model(std::move(m)), method(me), task(ta), cfg(c), total(t), warmup(w), rng(c.seed) {}
};

StepRunner::StepRunner(SequenceClassifier& model, Method& method, const Task& task, const TrainConfig& cfg,
                       int64_t total_steps, int64_t warmup_steps)
    : impl_(std::make_unique<Impl>(model, method, task, cfg, total_steps, warmup_steps)) {
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

double StepRunner::current_lr() const {
  return static_cast<torch::optim::AdamWOptions&>(impl_->opt->param_groups()[0].options()).lr();
}

StepRunner::Out StepRunner::step(const Batch& b, int64_t epoch) {
  Impl& m = *impl_;
  m.model->train();
  at::Tensor logits = batch_logits(m.model, b);
  StepInfo info;
  info.step = step_;
  info.total_steps = m.total;
  info.epoch = epoch;
  info.rng = &m.rng;
  info.logits = logits;
  info.labels = b.labels;
  info.task = &m.task;
  info.per_sample_loss = m.task.per_sample_loss(logits, b.labels);
  info.task_loss = info.per_sample_loss.mean();
  at::Tensor extra = m.method.extra_loss(info);
  at::Tensor loss = extra.defined() ? info.task_loss + extra : info.task_loss;
  m.opt->zero_grad();
  const double loss_value = loss.item<double>();
  bool finite = std::isfinite(loss_value);
  if (finite) {
    loss.backward();
    // clip_grad_norm_ returns the total norm (before clipping); with clipping off it is measured alone.
    const double norm = m.cfg.max_grad_norm > 0
                            ? torch::nn::utils::clip_grad_norm_(m.trainable, m.cfg.max_grad_norm)
                            : torch::nn::utils::clip_grad_norm_(m.trainable, std::numeric_limits<double>::infinity());
    finite = std::isfinite(norm);
  }
  if (!finite) {
    m.opt->zero_grad();
    ++step_;
    return {logits, info.task_loss.item<double>(), /*skipped=*/true};
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
  return {logits, info.task_loss.item<double>()};
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
  if (out_dir.empty()) throw Error("--out is required");
}

TrainResult train(LoadedModel& base, Method& method, const Task& task, const TaskDataset& train_ds,
                  const TaskDataset& eval_ds, const TrainConfig& cfg) {
  cfg.validate();
  if (train_ds.size() == 0) throw Error("training set is empty");
  make_dirs(cfg.out_dir);
  SequenceClassifier& model = base.model;
  const int64_t per_epoch = (static_cast<int64_t>(train_ds.size()) + cfg.batch_size - 1) / cfg.batch_size;
  int64_t total = cfg.max_steps > 0 ? cfg.max_steps : per_epoch * cfg.epochs;
  const int64_t epochs = cfg.max_steps > 0 ? (cfg.max_steps + per_epoch - 1) / per_epoch : cfg.epochs;
  const int64_t warmup =
      cfg.warmup_steps >= 0 ? cfg.warmup_steps : static_cast<int64_t>(std::ceil(cfg.warmup_ratio * total));

  StepRunner runner(model, method, task, cfg, total, warmup);
  const int64_t n_trainable = count_trainable(*model);
  int64_t n_inference = method.inference_params(model);
  nlohmann::json run_cfg = {{"method", method.describe()}, {"task", task.name()}, {"epochs", epochs},
                            {"total_steps", total}, {"warmup_steps", warmup}, {"batch_size", cfg.batch_size},
                            {"lr", cfg.lr}, {"weight_decay", cfg.weight_decay}, {"max_grad_norm", cfg.max_grad_norm},
                            {"seed", cfg.seed}, {"train_examples", train_ds.size()},
                            {"eval_examples", eval_ds.size()}, {"trainable_params", n_trainable},
                            {"inference_params", n_inference}, {"model", base.dir}};
  write_text_atomically(join_path(cfg.out_dir, "train_config.json"), run_cfg.dump(2) + "\n");

  Progress progress(cfg.progress, total);
  TrainResult result;
  const std::string main_metric = task.main_metric();
  std::string jsonl;
  double best = -std::numeric_limits<double>::infinity();
  int64_t best_epoch = -1;
  int64_t step = 0;
  int64_t bad_in_a_row = 0;
  auto run_start = Clock::now();
  double train_seconds = 0;
  size_t samples_seen = 0;
  model->train();
  for (int64_t epoch = 1; epoch <= epochs && step < total; ++epoch) {
    auto ep_start = Clock::now();
    double loss_sum = 0, correct = 0, n_seen = 0;
    int64_t skipped = 0;
    auto batches = data::make_batches(train_ds.lengths(), cfg.batch_size, cfg.seed + epoch, /*shuffle=*/true,
                                      cfg.group_by_length);
    train_ds.set_epoch(cfg.seed * 1000003ULL + static_cast<uint64_t>(epoch));
    for (auto& idx : batches) {
      if (step >= total) break;
      Batch b = train_ds.collate(idx);
      StepRunner::Out so = runner.step(b, epoch);
      at::Tensor logits = so.logits;
      ++step;
      if (so.skipped) {
        ++skipped;
        ++bad_in_a_row;
        progress.message(fmt::format("step {}: non-finite loss or gradient (loss {}): step skipped, no update", step,
                                     so.loss));
        if (bad_in_a_row > cfg.max_bad_steps)
          throw Error(fmt::format("training stopped at step {}: {} step(s) in a row had a non-finite loss or gradient "
                                  "(--max-bad-steps {}); nothing was saved after the last good epoch. Lower --lr, "
                                  "check the data and the model's weights for NaN/inf",
                                  step, bad_in_a_row, cfg.max_bad_steps));
        continue;
      }
      bad_in_a_row = 0;
      const double bl = so.loss;
      loss_sum += bl * idx.size();
      correct += task.correct(logits, b.labels, cfg.regression_tau).sum().item<double>();
      n_seen += idx.size();
      samples_seen += idx.size();
      progress.update(step, epoch, loss_sum / n_seen, samples_seen / std::max(1e-9, train_seconds + since(ep_start)));
    }
    const double ep_train_seconds = since(ep_start);
    train_seconds += ep_train_seconds;
    EvalResult ev = evaluate(model, task, eval_ds, cfg.eval_batch_size, cfg.regression_tau);
    nlohmann::ordered_json line;
    line["epoch"] = epoch;
    line["step"] = step;
    line["train_loss"] = loss_sum / std::max(1.0, n_seen);
    line["train_accuracy"] = correct / std::max(1.0, n_seen);
    line["eval_loss"] = ev.loss;
    line["eval_accuracy"] = ev.accuracy;
    for (auto& [k, v] : ev.metrics) line["eval_" + k] = v;
    line["generalization_gap"] = correct / std::max(1.0, n_seen) - ev.accuracy;
    line["skipped_steps"] = skipped;
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
    write_text_atomically(join_path(cfg.out_dir, "metrics.jsonl"), jsonl);
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
      save_dir_atomically(join_path(cfg.out_dir, "best"), [&](const std::string& d) { method.save(model, base, d); });
    }
  }
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
  write_text_atomically(join_path(cfg.out_dir, "results.json"), s.dump(2) + "\n");
  return result;
}

}  // namespace lorakit
