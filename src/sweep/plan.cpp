// The sweep plan: plan_sweep (one SweepRun per task × seed × method × rank, with its run_spec.json),
// SweepRun::label, and run_state (finished / pending / partial / changed, from the spec diffs).
#include <fmt/core.h>

#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "core/errors.h"
#include "core/fileutil.h"
#include "sweep/internal.h"
#include "sweep/sweep.h"
#include "tasks/task.h"
#include "tuners/registry.h"

namespace lorakit {
using namespace sweep_detail;
namespace {

json merged_method_options(const SweepConfig& c, const std::string& method) {
  json extra = json::object();
  auto all = c.method_options.find("*");
  if (all != c.method_options.end())
    for (auto& [k, v] : all->second.items()) extra[k] = v;
  auto own = c.method_options.find(method);
  if (own != c.method_options.end())
    for (auto& [k, v] : own->second.items()) extra[k] = v;
  return extra;
}

double alpha_for(const SweepConfig& c, int64_t r) { return c.alpha > 0 ? c.alpha : c.alpha_ratio * static_cast<double>(r); }

}  // namespace

bool sweep_rank_free(const std::string& method) { return method == "full"; }

std::string SweepRun::label() const {
  return sweep_rank_free(method) ? fmt::format("{} {} seed {}", task, method, seed)
                                 : fmt::format("{} {} r{} seed {}", task, method, rank, seed);
}

// ---------------------------------------------------------------------------------------------
// Plan and state

std::vector<SweepRun> plan_sweep(const SweepConfig& c) {
  c.validate();
  std::vector<std::string> methods = c.methods;
  for (auto& m : c.optional_methods)
    if (registered(m)) methods.push_back(m);
  std::vector<SweepRun> runs;
  for (auto& tname : c.tasks) {
    // The task says where its files are (GLUE: <data>/<TASK>/train.tsv, dev.tsv; others: their folder,
    // task_data or the task's default); train_file / eval_file override.
    // `data` is GLUE's root; other tasks have their own folder (task_data) or their default.
    const auto task = make_task(tname);
    TaskOptions o;
    auto td = c.task_data.find(tname);
    o.data = td != c.task_data.end() ? td->second : task->kind() == "glue" ? c.data : "";
    auto tf = c.train_file.find(tname), ef = c.eval_file.find(tname);
    if (tf != c.train_file.end()) o.train_file = tf->second;
    if (ef != c.eval_file.end()) o.eval_file = ef->second;
    try {
      task->resolve_files(o);
    } catch (const std::exception& e) {
      throw Error(std::string("sweep: ") + e.what());
    }
    const std::string trp = o.train_file, evp = o.eval_file, task_data = o.data;

    for (auto seed : c.seeds) {
      for (auto& m : methods) {
        const std::vector<int64_t> ranks = sweep_rank_free(m) ? std::vector<int64_t>{0} : c.ranks;
        for (auto r : ranks) {
          SweepRun run;
          run.task = tname;
          run.method = m;
          run.rank = r;
          run.seed = seed;
          const std::string leaf = sweep_rank_free(m) ? m : fmt::format("{}-r{}", m, r);
          run.dir = join_path(join_path(join_path(join_path(c.out, "runs"), tname), leaf), fmt::format("seed{}", seed));
          ojson& s = run.spec;
          s["task"] = tname;
          s["method"] = m;
          if (!sweep_rank_free(m)) s["rank"] = r;
          s["seed"] = seed;
          s["model"] = c.model;
          s["train_file"] = trp;
          s["eval_file"] = evp;
          if (td != c.task_data.end()) s["data"] = task_data;
          const int64_t mt = c.max_train_samples.get(tname);
          s["max_train_samples"] = mt > 0 ? mt : -1;
          if (mt > 0) {
            s["subsample"] = c.subsample;
            if (c.subsample == "random") s["data_seed"] = c.data_seed;
          }
          const int64_t me = c.max_eval_samples.get(tname);
          s["max_eval_samples"] = me > 0 ? me : -1;
          s["max_seq_len"] = c.max_seq_len;
          s["epochs"] = c.epochs.get(tname);
          s["lr"] = c.lr.get(m);
          s["batch_size"] = c.batch_size;
          s["eval_batch_size"] = c.eval_batch_size;
          s["weight_decay"] = c.weight_decay;
          s["warmup_ratio"] = c.warmup_ratio;
          s["max_grad_norm"] = c.max_grad_norm;
          if (!sweep_rank_free(m)) {
            ojson l;
            l["r"] = r;
            l["alpha"] = alpha_for(c, r);
            l["dropout"] = c.lora_dropout;
            l["target_modules"] = c.target_modules;
            l["target_regex"] = c.target_regex;
            l["modules_to_save"] = c.modules_to_save;
            l["rslora"] = c.rslora;
            l["init"] = c.init;
            s["lora"] = l;
          }
          json extra = merged_method_options(c, m);
          if (!sweep_rank_free(m)) apply_table_rank(m, r, tname, extra);
          if (!extra.empty()) s["method_options"] = extra;
          runs.push_back(std::move(run));
        }
      }
    }
  }
  return runs;
}

namespace {
// Keys whose values differ between two specs ("epochs: 3 → 5").
std::vector<std::string> spec_differences(const json& old_spec, const json& new_spec) {
  std::vector<std::string> d;
  std::set<std::string> keys;
  for (auto& [k, _] : old_spec.items()) keys.insert(k);
  for (auto& [k, _] : new_spec.items()) keys.insert(k);
  for (auto& k : keys) {
    const json a = old_spec.contains(k) ? old_spec[k] : json(), b = new_spec.contains(k) ? new_spec[k] : json();
    if (a != b) d.push_back(k + ": " + (a.is_null() ? "(none)" : a.dump()) + " → " + (b.is_null() ? "(none)" : b.dump()));
  }
  return d;
}
}  // namespace

namespace sweep_detail {

std::vector<std::string> run_changes(const SweepRun& run) {
  const std::string sp = join_path(run.dir, "run_spec.json");
  if (!file_exists(sp)) return {"run_spec.json is missing (not made by this sweep)"};
  json old_spec;
  try {
    old_spec = read_json_file(sp);
  } catch (const Error&) {
    return {"run_spec.json is unreadable"};
  }
  return spec_differences(old_spec, json::parse(run.spec.dump()));
}

}  // namespace sweep_detail

RunState run_state(const SweepRun& run) {
  if (file_exists(join_path(run.dir, "results.json"))) return run_changes(run).empty() ? RunState::Finished : RunState::Changed;
  return fs::exists(run.dir) ? RunState::Partial : RunState::Pending;
}

const char* run_state_name(RunState s) {
  switch (s) {
    case RunState::Finished: return "finished";
    case RunState::Pending: return "pending";
    case RunState::Partial: return "partial";
    case RunState::Changed: return "changed";
  }
  return "?";
}

}  // namespace lorakit
