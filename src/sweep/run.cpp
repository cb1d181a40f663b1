// The sweep runner: run_sweep (skip finished runs, redo partial ones, log progress and the ETA, then
// write the report), run_one, and loading each task's data and each run's model.
#include <fmt/core.h>
#include <torch/torch.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "core/precision.h"
#include "core/errors.h"
#include "core/fileutil.h"
#include "core/runtime.h"
#include "models/checkpoint.h"
#include "sweep/internal.h"
#include "sweep/sweep.h"
#include "text/glue.h"
#include "text/tokenizer.h"
#include "tasks/task.h"
#include "train/train_checkpoint.h"
#include "train/trainer.h"
#include "tuners/registry.h"

namespace lorakit {
using namespace sweep_detail;
namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// The run's model with the task's head (the same LoadOptions as `lorakit train`).
LoadedModel sweep_model(const std::string& model, const Task& task, uint64_t seed) {
  LoadOptions lo;
  lo.seed = seed;
  task.head_options(lo);
  LoadedModel lm = load_model(model, lo);
  task.check_model(lm);
  return lm;
}

// One task's data, loaded once for all its runs (with the first run's model: only its tokenizer,
// image processor and limits matter, which every run of the sweep shares).
struct TaskData {
  std::string task;
  std::unique_ptr<Task> t;
  std::unique_ptr<TaskDataset> train, eval;
};

// The data flags of a run, from its spec.
TaskOptions task_options_of(const json& s) {
  TaskOptions o;
  o.train_file = s["train_file"].get<std::string>();
  o.eval_file = s["eval_file"].get<std::string>();
  if (s.contains("data")) o.data = s["data"].get<std::string>();
  o.max_train_samples = s["max_train_samples"].get<int64_t>();
  o.max_eval_samples = s["max_eval_samples"].get<int64_t>();
  o.random_subsample = s.contains("subsample") && s["subsample"] == "random";
  o.data_seed = s.contains("data_seed") ? s["data_seed"].get<uint64_t>() : 0;
  o.max_seq_len = s["max_seq_len"].get<int64_t>();
  return o;
}

// A failure here (a missing or malformed file, a model that cannot run the task) stops the sweep: it
// would fail every run of the task.
void load_task_data(TaskData& td, const SweepConfig& c, const SweepRun& run, std::ostream& log) {
  if (td.task == run.task) return;
  td = TaskData{};
  const TaskOptions o = task_options_of(run.spec);
  auto t0 = Clock::now();
  try {
    td.t = make_task(run.task);
    td.t->prepare(o);
    const LoadedModel lm = sweep_model(c.model, *td.t, run.seed);
    td.train = td.t->load(Split::Train, lm, o);
    td.eval = td.t->load(Split::Eval, lm, o);
  } catch (const std::exception& e) {
    throw Error(std::string("sweep: ") + e.what());
  }
  td.task = run.task;
  log << fmt::format("sweep: {}: {} training / {} evaluation rows (read in {:.1f} s)\n", run.task, td.train->size(),
                     td.eval->size(), since(t0));
}

// One run, start to finish, into run.dir (which is emptied first). Throws on failure.
nlohmann::json run_one(const SweepConfig& c, const SweepRun& run, const TaskData& td) {
  auto t0 = Clock::now();
  // An unfinished run of the same spec with a training checkpoint goes on from it; anything else starts over.
  // The precision `lorakit train` would pick by default ($LORAKIT_PRECISION, else auto: bf16 where the CPU
  // has bf16 instructions). A checkpoint made at another precision (or before runs recorded one) is not
  // gone on from: the run starts over.
  const bool bf16 = resolve_precision(default_precision(), "LORAKIT_PRECISION").bf16;
  const std::string precision = bf16 ? "bf16" : "fp32";
  bool resume = false;
  if (file_exists(join_path(run.dir, "run_spec.json")) && has_train_checkpoint(run.dir)) {
    try {
      resume = json::parse(read_text_file(join_path(run.dir, "run_spec.json"))) == json(run.spec);
      if (resume) {
        auto ck = read_train_checkpoint(run.dir, /*with_tensors=*/false);
        resume = ck && ck->state.value("flags", json::object()).value("precision", std::string()) == precision;
      }
    } catch (const json::exception&) {
      resume = false;
    } catch (const Error&) {  // an unreadable checkpoint: start over
      resume = false;
    }
  }
  if (!resume) {
    std::error_code ec;
    fs::remove_all(run.dir, ec);
    make_dirs(run.dir);
    write_text_atomically(join_path(run.dir, "run_spec.json"), run.spec.dump(2) + "\n");
  }
  const auto& s = run.spec;

  MethodOptions mo;
  if (s.contains("lora")) {
    const auto& l = s["lora"];
    mo.lora.r = l["r"].get<int64_t>();
    mo.lora.lora_alpha = l["alpha"].get<double>();
    mo.lora.lora_dropout = l["dropout"].get<double>();
    mo.lora.target_modules = l["target_modules"].get<std::vector<std::string>>();
    mo.lora.target_regex = l["target_regex"].get<std::string>();
    mo.lora.modules_to_save = l["modules_to_save"].get<std::vector<std::string>>();
    mo.lora.use_rslora = l["rslora"].get<bool>();
    mo.lora.init_lora_weights = l["init"].get<std::string>();
  }
  if (s.contains("method_options")) mo.extra = s["method_options"];
  auto method = make_method(run.method, mo);

  // Same order as `lorakit train`, so a sweep run equals the corresponding train command. The task is
  // the one load_task_data made (and prepared) for this run's task.
  const Task& task = *td.t;
  LoadedModel lm = sweep_model(c.model, task, run.seed);
  torch::manual_seed(run.seed);
  method->attach(lm.model);
  const double setup_seconds = since(t0);

  TrainConfig tc;
  tc.out_dir = run.dir;
  tc.epochs = s["epochs"].get<int64_t>();
  tc.lr = s["lr"].get<double>();
  tc.batch_size = s["batch_size"].get<int64_t>();
  tc.eval_batch_size = s["eval_batch_size"].get<int64_t>();
  tc.weight_decay = s["weight_decay"].get<double>();
  tc.warmup_ratio = s["warmup_ratio"].get<double>();
  tc.max_grad_norm = s["max_grad_norm"].get<double>();
  tc.seed = run.seed;
  tc.progress = c.progress;
  tc.save_steps = c.save_steps;
  tc.resume = resume;
  tc.bf16 = bf16;
  tc.run_flags = {{"run_spec", run.spec}};  // the trainer adds the resolved "precision"
  train(lm, *method, task, *td.train, *td.eval, tc);

  // The trainer wrote results.json last; add the sweep's own record (atomically: a reader sees the
  // old or the new file, and an interruption here leaves a finished run).
  ojson summary = ojson::parse(read_text_file(join_path(run.dir, "results.json")));
  ojson sw;
  sw["run"] = run.label();
  sw["setup_seconds"] = setup_seconds;
  sw["run_wall_seconds"] = since(t0);
  sw["threads"] = at::get_num_threads();
  sw["finished_at"] = utc_now();
  summary["sweep"] = sw;
  write_text_atomically(join_path(run.dir, "results.json"), summary.dump(2) + "\n");
  return json(summary);
}

// Remaining time from the wall times of finished runs: a pending run is estimated by the mean of
// finished runs with the same task, method and rank, else the same task, else all runs.
class Eta {
 public:
  void add(const SweepRun& r, double w) {
    if (!std::isfinite(w)) return;
    by_key_[key(r)].push_back(w);
    by_task_[r.task].push_back(w);
    all_.push_back(w);
  }
  // Seconds for the runs with done[i] == false; < 0 when no run has finished yet.
  double remaining(const std::vector<SweepRun>& runs, const std::vector<bool>& done) const {
    if (all_.empty()) return -1;
    double t = 0;
    for (size_t i = 0; i < runs.size(); ++i) {
      if (done[i]) continue;
      auto k = by_key_.find(key(runs[i]));
      auto tk = by_task_.find(runs[i].task);
      t += k != by_key_.end() ? mean(k->second) : tk != by_task_.end() ? mean(tk->second) : mean(all_);
    }
    return t;
  }

 private:
  static std::string key(const SweepRun& r) { return r.task + "|" + r.method + "|" + std::to_string(r.rank); }
  static double mean(const std::vector<double>& v) { return std::accumulate(v.begin(), v.end(), 0.0) / v.size(); }
  std::map<std::string, std::vector<double>> by_key_, by_task_;
  std::vector<double> all_;
};

double recorded_wall_seconds(const SweepRun& run) {
  try {
    const json r = read_json_file(join_path(run.dir, "results.json"));
    if (r.contains("sweep") && r["sweep"].contains("run_wall_seconds")) return r["sweep"]["run_wall_seconds"].get<double>();
    return r.value("wall_seconds", std::nan(""));
  } catch (const std::exception&) {
    return std::nan("");
  }
}

}  // namespace

SweepSummary run_sweep(const SweepConfig& c, const SweepOptions& opt) {
  std::ostream& log = opt.log ? *opt.log : std::cerr;
  const std::vector<SweepRun> runs = plan_sweep(c);
  std::vector<RunState> states;
  size_t n_fin = 0, n_changed = 0;
  Eta eta;
  std::vector<bool> done;
  for (auto& r : runs) {
    states.push_back(run_state(r));
    n_fin += states.back() == RunState::Finished;
    n_changed += states.back() == RunState::Changed;
    done.push_back(states.back() == RunState::Finished);
    if (done.back()) eta.add(r, recorded_wall_seconds(r));
  }
  for (auto& m : c.optional_methods)
    if (!registered(m)) log << "sweep: optional method '" << m << "' is not registered in this build; left out\n";
  log << fmt::format("sweep: {} runs ({} finished, {} to run{}) → {}\n", runs.size(), n_fin, runs.size() - n_fin,
                     n_changed ? fmt::format(", {} changed", n_changed) : std::string(), c.out);
  SweepSummary sum;
  sum.planned = runs.size();
  if (opt.dry_run) {
    const int w = static_cast<int>(std::to_string(runs.size()).size());
    for (size_t i = 0; i < runs.size(); ++i)
      log << fmt::format("[{:>{}}/{}] {:<9} {:<28} {}\n", i + 1, w, runs.size(), run_state_name(states[i]),
                         runs[i].label(), runs[i].dir);
    const double left = eta.remaining(runs, done);
    if (left >= 0 && n_fin < runs.size())
      log << fmt::format("sweep: about {} left, estimated from the finished runs' wall times\n", hms(left));
    return sum;
  }
  if (n_changed && !opt.redo_changed && !opt.report_only) {
    std::string msg = fmt::format("sweep: {} finished run(s) were made with different settings:", n_changed);
    size_t shown = 0;
    for (size_t i = 0; i < runs.size() && shown < 5; ++i) {
      if (states[i] != RunState::Changed) continue;
      ++shown;
      msg += "\n  " + runs[i].dir + ":";
      for (auto& d : run_changes(runs[i])) msg += "\n    " + d;
    }
    msg += "\nuse another --out, delete those runs, or pass --redo-changed to redo them";
    throw Error(msg);
  }
  // $LORAKIT_PRECISION is read by every run: a bad value (or bf16 on a CPU without it) is one error here,
  // before anything is written, not a failure per run.
  if (!opt.report_only) resolve_precision(default_precision(), "LORAKIT_PRECISION");
  make_dirs(c.out);
  if (!opt.report_only) {
    write_text_atomically(join_path(c.out, "sweep_config.json"), c.to_json().dump(2) + "\n");
    configure_threads(c.threads);
    TaskData td;
    const int w = static_cast<int>(std::to_string(runs.size()).size());
    const auto start = Clock::now();
    for (size_t i = 0; i < runs.size(); ++i) {
      const SweepRun& run = runs[i];
      const std::string head = fmt::format("{}[{:>{}}/{}] {}", opt.worker_name.empty() ? "" : opt.worker_name + " ",
                                           i + 1, w, runs.size(), run.label());
      if (states[i] == RunState::Finished) {
        ++sum.skipped;
        log << head << ": finished earlier, skipped\n";
        continue;
      }
      if (!opt.claims_dir.empty()) {
        const std::string claim = join_path(opt.claims_dir, std::to_string(i));
        const int fd = ::open(claim.c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644);
        if (fd < 0) {
          if (errno == EEXIST) continue;  // another worker has it
          throw Error(claim + ": cannot claim the run: " + std::strerror(errno));
        }
        ::close(fd);
      }
      load_task_data(td, c, run, log);
      const bool partial = states[i] == RunState::Partial;
      log << head
          << (!partial                          ? ": running\n"
              : has_train_checkpoint(run.dir) ? ": unfinished, going on from its checkpoint (if its spec is unchanged)\n"
                                              : ": redoing an unfinished run\n");
      log.flush();
      try {
        const json s = run_one(c, run, td);
        ++sum.ran;
        const std::string main_metric = td.t->main_metric();
        const std::string key = "best_" + main_metric;
        const double wall = s["sweep"]["run_wall_seconds"].get<double>();
        done[i] = true;
        eta.add(run, wall);
        const double left = eta.remaining(runs, done);
        log << fmt::format("{}: {} {:.4f} (best epoch {}) in {:.1f} s, {:.0f} train samples/s; elapsed {}{}\n", head,
                           main_metric, s.value(key, 0.0), s.value("best_epoch", int64_t{-1}), wall,
                           s.value("train_samples_per_second", 0.0), hms(since(start)),
                           left > 0 ? ", about " + hms(left) + " left" : std::string());
      } catch (const std::exception& e) {
        ++sum.failed;
        const auto* ce = dynamic_cast<const c10::Error*>(&e);
        std::string what = ce ? ce->what_without_backtrace() : e.what();
        sum.failures.push_back(run.label() + ": " + what);
        try {
          write_text_atomically(join_path(run.dir, "error.txt"), what + "\n");
        } catch (...) {
        }
        log << head << ": FAILED: " << what << "\n";
        done[i] = true;
      }
      log.flush();
    }
  }
  if (!opt.claims_dir.empty()) {
    log << fmt::format("sweep: {}: {} ran, {} failed\n", opt.worker_name, sum.ran, sum.failed);
    return sum;  // the launcher writes the report once every worker is done
  }
  SweepSummary rep = write_sweep_report(c, runs);
  sum.plots_ok = rep.plots_ok;
  sum.plots_note = rep.plots_note;
  sum.report = rep.report;
  // Failures of this invocation, plus unfinished runs the report found.
  if (opt.report_only) sum.failures = rep.failures;
  if (opt.report_only)
    log << fmt::format("sweep: report of {} runs ({} finished) written to {}{}\n", runs.size(), n_fin, sum.report,
                       sum.plots_ok ? "" : " (no plots: " + sum.plots_note + ")");
  else
    log << fmt::format("sweep: {} runs: {} ran, {} skipped (finished), {} failed; report {}{}\n", runs.size(), sum.ran,
                       sum.skipped, sum.failed, sum.report, sum.plots_ok ? "" : " (no plots: " + sum.plots_note + ")");
  return sum;
}

}  // namespace lorakit
