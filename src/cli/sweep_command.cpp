// `lorakit sweep`: methods × tasks × ranks × seeds, resumable, with the papers' tables and plots
// (src/sweep/sweep.h, docs/sweep.md).
#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <thread>
#include <memory>
#include <sstream>

#include "cli/commands.h"
#include "cli/launch.h"
#include "core/fileutil.h"
#include "core/errors.h"
#include "sweep/sweep.h"
#include "tasks/task.h"
#include "text/glue.h"

namespace lorakit::cli {
namespace {

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, sep))
    if (!item.empty()) out.push_back(item);
  return out;
}

template <class T>
T parse_number(const std::string& s, const std::string& flag) {
  try {
    size_t used = 0;
    T v;
    if constexpr (std::is_floating_point_v<T>) v = static_cast<T>(std::stod(s, &used));
    else v = static_cast<T>(std::stoll(s, &used));
    if (used != s.size()) throw std::invalid_argument(s);
    return v;
  } catch (const std::exception&) {
    throw Error(flag + ": '" + s + "' is not a number");
  }
}

std::string canonical_task_flag(const std::string& name, const std::string& flag) {
  try {
    return canonical_task_name(name);
  } catch (const std::exception& e) {
    throw Error(flag + ": " + e.what());
  }
}

// "N" sets the value for every name; "a=N,b=M" sets it for those names only.
template <class T>
void apply_per_name(PerName<T>& p, const std::string& text, const std::string& flag, bool task_keys) {
  if (text.find('=') == std::string::npos) {
    p.fallback = parse_number<T>(text, flag);
    p.by_name.clear();
    return;
  }
  for (auto& item : split(text, ',')) {
    const auto eq = item.find('=');
    if (eq == std::string::npos) throw Error(flag + ": expected NAME=VALUE, got '" + item + "'");
    std::string name = item.substr(0, eq);
    if (task_keys) name = canonical_task_flag(name, flag);
    p.by_name[name] = parse_number<T>(item.substr(eq + 1), flag);
  }
}

}  // namespace

void register_sweep_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "sweep", "Run methods x tasks x ranks x seeds (resumable) and write results.md/csv (seed 001 Tables 1 and 4) and plots");
  struct Opts {
    std::string config, out, model, data, tasks, methods, ranks, seeds, epochs, lr, max_train, max_eval, eval_file;
    int threads = -1;
    int nproc = 1;
    bool dry_run = false, report_only = false, redo_changed = false, no_progress = false, no_plots = false;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("--config", o->config, "sweep configuration (JSON; see docs/sweep.md and examples/sweep-*.json)");
  cmd->add_option("--out", o->out, "output directory (runs/, results.md, results.csv, plots/)");
  cmd->add_option("--model", o->model, "model directory every run starts from");
  cmd->add_option("--data", o->data, "GLUE root (holding MRPC/ ...)");
  cmd->add_option("--tasks", o->tasks, "comma-separated tasks, e.g. cola,stsb,mrpc,sst2 or squad or fashion-mnist");
  cmd->add_option("--methods", o->methods, "comma-separated methods, e.g. full,lora,rm-lora");
  cmd->add_option("--ranks", o->ranks, "comma-separated LoRA ranks, e.g. 4,8");
  cmd->add_option("--seeds", o->seeds, "comma-separated seeds, e.g. 1,2,3");
  cmd->add_option("--epochs", o->epochs, "epochs: N for every task, or task=N,...");
  cmd->add_option("--lr", o->lr, "learning rate: X for every method, or method=X,...");
  cmd->add_option("--max-train-samples", o->max_train, "training rows: N for every task, or task=N,... (sst2=8000)");
  cmd->add_option("--max-eval-samples", o->max_eval, "first N evaluation rows: N or task=N,...");
  cmd->add_option("--eval-file", o->eval_file, "evaluation TSV per task: task=PATH,... (or PATH with one task)");
  cmd->add_option("--threads", o->threads, "LibTorch threads (0 = one per core)");
  cmd->add_option("--nproc", o->nproc,
                  "independent runs side by side in N worker processes (each claims a run before training it; "
                  "threads 0 = cores / N each); the report is written once all are done")
      ->check(CLI::Range(1, 256));
  cmd->add_flag("--dry-run", o->dry_run, "list the runs and whether each is finished; train nothing");
  cmd->add_flag("--report-only", o->report_only, "write the report from the finished runs; train nothing");
  cmd->add_flag("--redo-changed", o->redo_changed, "redo finished runs whose settings differ from the configuration");
  cmd->add_flag("--no-progress", o->no_progress, "no per-step progress bar");
  cmd->add_flag("--no-plots", o->no_plots, "do not run gnuplot");
  cmd->callback([o] {
    SweepConfig c = o->config.empty() ? SweepConfig{} : SweepConfig::from_file(o->config);
    if (!o->out.empty()) c.out = o->out;
    if (!o->model.empty()) c.model = o->model;
    if (!o->data.empty()) c.data = o->data;
    if (!o->tasks.empty()) {
      c.tasks.clear();
      for (auto& t : split(o->tasks, ',')) c.tasks.push_back(canonical_task_flag(t, "--tasks"));
    }
    if (!o->methods.empty()) {
      c.methods = split(o->methods, ',');
      c.optional_methods.clear();
    }
    if (!o->ranks.empty()) {
      c.ranks.clear();
      for (auto& r : split(o->ranks, ',')) c.ranks.push_back(parse_number<int64_t>(r, "--ranks"));
    }
    if (!o->seeds.empty()) {
      c.seeds.clear();
      for (auto& s : split(o->seeds, ',')) {
        const int64_t v = parse_number<int64_t>(s, "--seeds");
        if (v < 0) throw Error("--seeds: seeds must be >= 0");
        c.seeds.push_back(static_cast<uint64_t>(v));
      }
    }
    if (!o->epochs.empty()) apply_per_name(c.epochs, o->epochs, "--epochs", true);
    if (!o->lr.empty()) apply_per_name(c.lr, o->lr, "--lr", false);
    if (!o->max_train.empty()) apply_per_name(c.max_train_samples, o->max_train, "--max-train-samples", true);
    if (!o->max_eval.empty()) apply_per_name(c.max_eval_samples, o->max_eval, "--max-eval-samples", true);
    if (!o->eval_file.empty()) {
      if (o->eval_file.find('=') == std::string::npos) {
        if (c.tasks.size() != 1) throw Error("--eval-file PATH needs exactly one task; use task=PATH,...");
        c.eval_file[c.tasks[0]] = o->eval_file;
      } else {
        for (auto& item : split(o->eval_file, ',')) {
          const auto eq = item.find('=');
          if (eq == std::string::npos) throw Error("--eval-file: expected task=PATH, got '" + item + "'");
          c.eval_file[canonical_task_flag(item.substr(0, eq), "--eval-file")] = item.substr(eq + 1);
        }
      }
    }
    if (o->threads >= 0) c.threads = o->threads;
    if (o->no_progress) c.progress = false;
    if (o->no_plots) c.gnuplot.clear();
    SweepOptions so;
    so.dry_run = o->dry_run;
    so.report_only = o->report_only;
    so.redo_changed = o->redo_changed;
    so.log = &std::cout;
    const std::string claims = join_path(c.out.empty() ? "." : c.out, ".claims");
    if (o->nproc > 1 && !o->dry_run && !o->report_only) {
      if (c.threads == 0) c.threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / o->nproc);
      if (const char* rank = std::getenv("RANK"); rank && *rank) {
        // A worker the launcher below started.
        so.claims_dir = claims;
        so.worker_name = fmt::format("worker {}/{}", std::atoi(rank) + 1, o->nproc);
        run_sweep(c, so);
        std::cout.flush();
        return;
      }
      // The launcher: one sweep at a time on this --out, fresh claims, the workers, then the report.
      make_dirs(c.out);
      const std::string lock_path = join_path(c.out, ".sweep.lock");
      const int lock = ::open(lock_path.c_str(), O_CREAT | O_RDWR, 0644);
      if (lock < 0 || ::flock(lock, LOCK_EX | LOCK_NB) != 0)
        throw Error("sweep --out " + c.out + ": another sweep is running on this directory (" + lock_path + ")");
      std::error_code ec;
      std::filesystem::remove_all(claims, ec);
      make_dirs(claims);
      const int rc = launch_local_ranks(o->nproc, 30);
      std::filesystem::remove_all(claims, ec);
      if (rc != 0) throw Error(fmt::format("sweep: a worker failed (status {}); finished runs are kept, run the sweep "
                                           "again to go on",
                                           rc));
      so.report_only = true;
      SweepSummary s = run_sweep(c, so);
      std::cout.flush();
      if (!s.failures.empty()) {
        std::string msg = fmt::format("sweep: {} run(s) failed or did not finish:", s.failures.size());
        for (auto& f : s.failures) msg += "\n  " + f;
        throw Error(msg);
      }
      return;
    }
    SweepSummary s;
    try {
      s = run_sweep(c, so);
    } catch (...) {
      std::cout.flush();  // the log before the error message
      throw;
    }
    std::cout.flush();
    if (s.failed > 0) {
      std::string msg = fmt::format("sweep: {} run(s) failed (see error.txt in their directories):", s.failed);
      for (auto& f : s.failures) msg += "\n  " + f;
      throw Error(msg);
    }
  });
}

}  // namespace lorakit::cli
