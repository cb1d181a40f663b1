#include "train/sweep.h"

#include <fmt/core.h>
#include <torch/torch.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <numeric>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "core/errors.h"
#include "core/fileutil.h"
#include "core/runtime.h"
#include "models/checkpoint.h"
#include "text/glue.h"
#include "text/tokenizer.h"
#include "train/data.h"
#include "train/trainer.h"
#include "tuners/registry.h"

namespace lorakit {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using ojson = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// ---------------------------------------------------------------------------------------------
// Configuration parsing

std::string canonical_task(const std::string& name, const std::string& where) {
  try {
    return data::glue_task(name).name;
  } catch (const data::GlueError& e) {
    throw Error(where + ": " + e.what());
  }
}

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    const auto b = item.find_first_not_of(" \t"), e = item.find_last_not_of(" \t");
    if (b != std::string::npos) out.push_back(item.substr(b, e - b + 1));
  }
  return out;
}

// A list of strings: JSON array or "a,b,c".
std::vector<std::string> string_list(const json& v, const std::string& where) {
  if (v.is_string()) return split_list(v.get<std::string>());
  if (!v.is_array()) throw Error(where + ": expected a list of strings or \"a,b,c\"");
  std::vector<std::string> out;
  for (auto& x : v) {
    if (!x.is_string()) throw Error(where + ": expected strings, got " + x.dump());
    out.push_back(x.get<std::string>());
  }
  return out;
}

int64_t integer(const json& v, const std::string& where) {
  if (!v.is_number_integer()) throw Error(where + ": expected an integer, got " + v.dump());
  return v.get<int64_t>();
}

double number(const json& v, const std::string& where) {
  if (!v.is_number()) throw Error(where + ": expected a number, got " + v.dump());
  return v.get<double>();
}

std::string str_of(const json& v, const std::string& where) {
  if (!v.is_string()) throw Error(where + ": expected a string, got " + v.dump());
  return v.get<std::string>();
}

bool boolean(const json& v, const std::string& where) {
  if (!v.is_boolean()) throw Error(where + ": expected true or false, got " + v.dump());
  return v.get<bool>();
}

template <class T, class F>
PerName<T> per_name(const json& v, const std::string& where, F parse, bool task_keys, T fallback) {
  PerName<T> p(fallback);  // an object without "default" keeps the built-in default
  if (!v.is_object()) {
    p.fallback = parse(v, where);
    return p;
  }
  for (auto& [k, x] : v.items()) {
    const std::string w = where + "." + k;
    if (k == "default") {
      p.fallback = parse(x, w);
    } else {
      p.by_name[task_keys ? canonical_task(k, w) : k] = parse(x, w);
    }
  }
  return p;
}

template <class T>
json per_name_json(const PerName<T>& p) {
  if (p.by_name.empty()) return p.fallback;
  ojson j;
  j["default"] = p.fallback;
  for (auto& [k, v] : p.by_name) j[k] = v;
  return j;
}

// ---------------------------------------------------------------------------------------------
// Small formatting helpers

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

std::string csv_num(double v) {
  if (!std::isfinite(v)) return "";
  return fmt::format("{:.6g}", v);
}

// 3 significant digits with K / M / B, as the papers write parameter counts ("1.26M", "184M").
std::string human_count(int64_t n) {
  const double x = static_cast<double>(n);
  auto sig3 = [](double v) {
    if (v >= 100) return fmt::format("{:.0f}", v);
    if (v >= 10) return fmt::format("{:.1f}", v);
    return fmt::format("{:.2f}", v);
  };
  if (x >= 1e9) return sig3(x / 1e9) + "B";
  if (x >= 1e6) return sig3(x / 1e6) + "M";
  if (x >= 1e3) return sig3(x / 1e3) + "K";
  return std::to_string(n);
}

std::string utc_now() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

std::string hms(double s) {
  const int64_t x = static_cast<int64_t>(std::llround(std::max(0.0, s)));
  return fmt::format("{}:{:02d}:{:02d}", x / 3600, (x / 60) % 60, x % 60);
}

struct Stat {
  size_t n = 0;
  double mean = std::nan(""), std = std::nan("");
};

// Mean and sample standard deviation (n − 1; 0 for a single value).
Stat stat_of(const std::vector<double>& v) {
  Stat s;
  s.n = v.size();
  if (v.empty()) return s;
  s.mean = std::accumulate(v.begin(), v.end(), 0.0) / v.size();
  double ss = 0;
  for (double x : v) ss += (x - s.mean) * (x - s.mean);
  s.std = v.size() > 1 ? std::sqrt(ss / (v.size() - 1)) : 0.0;
  return s;
}

std::string fmt_stat(const Stat& s, int decimals, size_t expected_n) {
  if (s.n == 0) return "–";
  std::string r = s.n > 1 ? fmt::format("{:.{}f} ± {:.{}f}", s.mean, decimals, s.std, decimals)
                          : fmt::format("{:.{}f}", s.mean, decimals);
  if (s.n < expected_n) r += fmt::format(" (n={})", s.n);
  return r;
}

std::string task_title(const std::string& task) { return data::glue_task(task).dir_name; }

std::string metric_title(const std::string& m) {
  static const std::map<std::string, std::string> names = {
      {"mcc", "MCC"}, {"accuracy", "Acc"}, {"f1", "F1"}, {"pearson", "Pearson"}, {"spearmanr", "Spearman"}};
  auto it = names.find(m);
  return it == names.end() ? m : it->second;
}

// The metrics seed 001 Table 1 reports for a task (CoLA MCC, STS-B Pearson / Spearman, MRPC Acc / F1, ...).
std::vector<std::string> table_metrics(const std::string& task) {
  std::vector<std::string> out;
  for (auto& m : data::glue_task(task).metric_names)
    if (m != "corr" && m != "acc_and_f1") out.push_back(m);
  return out;
}

std::string method_title(const std::string& m) {
  static const std::map<std::string, std::string> names = {
      {"full", "Full FT"},       {"lora", "LoRA"},       {"gr-lora", "GR-LoRA"}, {"r-lora", "R-LoRA"},
      {"gm-lora", "GM-LoRA"},    {"rm-lora", "RM-LoRA"}, {"adalora", "AdaLoRA"}, {"sora", "SoRA"}};
  auto it = names.find(m);
  return it == names.end() ? m : it->second;
}

bool registered(const std::string& method) {
  const auto names = method_names();
  return std::find(names.begin(), names.end(), method) != names.end();
}

// <data>/<TASK>/<file>, or <data>/<file> when --data is the task's own folder.
std::string resolve_task_file(const std::string& data_dir, const data::TaskInfo& task, const std::string& file) {
  const std::string in_task = join_path(join_path(data_dir, task.dir_name), file);
  if (file_exists(in_task)) return in_task;
  const std::string direct = join_path(data_dir, file);
  if (file_exists(direct)) return direct;
  throw Error("sweep: cannot find " + file + " for task " + task.name + " under " + data_dir + " (tried " + in_task +
              " and " + direct + ")");
}

std::string train_path(const SweepConfig& c, const data::TaskInfo& t) {
  auto it = c.train_file.find(t.name);
  if (it != c.train_file.end()) {
    if (!file_exists(it->second)) throw Error("sweep: train_file for " + t.name + ": " + it->second + " does not exist");
    return it->second;
  }
  return resolve_task_file(c.data, t, t.train_file);
}

std::string eval_path(const SweepConfig& c, const data::TaskInfo& t) {
  auto it = c.eval_file.find(t.name);
  if (it != c.eval_file.end()) {
    if (!file_exists(it->second)) throw Error("sweep: eval_file for " + t.name + ": " + it->second + " does not exist");
    return it->second;
  }
  return resolve_task_file(c.data, t, t.eval_files.at(0));
}

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

// ---------------------------------------------------------------------------------------------
// SweepConfig

SweepConfig SweepConfig::from_json(const json& j, const std::string& source) {
  if (!j.is_object()) throw Error(source + ": the sweep configuration must be a JSON object");
  SweepConfig c;
  auto w = [&](const std::string& k) { return source + ": " + k; };
  for (auto& [k, v] : j.items()) {
    if (!k.empty() && (k[0] == '_' || k == "comment")) continue;  // comments
    if (k == "model") c.model = str_of(v, w(k));
    else if (k == "data") c.data = str_of(v, w(k));
    else if (k == "out") c.out = str_of(v, w(k));
    else if (k == "tasks") {
      c.tasks.clear();
      for (auto& t : string_list(v, w(k))) c.tasks.push_back(canonical_task(t, w(k)));
    } else if (k == "methods") c.methods = string_list(v, w(k));
    else if (k == "optional_methods") c.optional_methods = string_list(v, w(k));
    else if (k == "ranks") {
      c.ranks.clear();
      if (!v.is_array()) throw Error(w(k) + ": expected a list of integers");
      for (auto& x : v) c.ranks.push_back(integer(x, w(k)));
    } else if (k == "seeds") {
      c.seeds.clear();
      if (!v.is_array()) throw Error(w(k) + ": expected a list of integers");
      for (auto& x : v) {
        const int64_t s = integer(x, w(k));
        if (s < 0) throw Error(w(k) + ": seeds must be >= 0");
        c.seeds.push_back(static_cast<uint64_t>(s));
      }
    } else if (k == "epochs") c.epochs = per_name<int64_t>(v, w(k), integer, true, c.epochs.fallback);
    else if (k == "lr") c.lr = per_name<double>(v, w(k), number, false, c.lr.fallback);
    else if (k == "batch_size") c.batch_size = integer(v, w(k));
    else if (k == "eval_batch_size") c.eval_batch_size = integer(v, w(k));
    else if (k == "max_seq_len") c.max_seq_len = integer(v, w(k));
    else if (k == "max_train_samples") c.max_train_samples = per_name<int64_t>(v, w(k), integer, true, c.max_train_samples.fallback);
    else if (k == "max_eval_samples") c.max_eval_samples = per_name<int64_t>(v, w(k), integer, true, c.max_eval_samples.fallback);
    else if (k == "subsample") c.subsample = str_of(v, w(k));
    else if (k == "data_seed") c.data_seed = static_cast<uint64_t>(integer(v, w(k)));
    else if (k == "train_file" || k == "eval_file") {
      if (!v.is_object()) throw Error(w(k) + ": expected an object {\"task\": \"path\"}");
      auto& m = k == "train_file" ? c.train_file : c.eval_file;
      for (auto& [t, p] : v.items()) m[canonical_task(t, w(k))] = str_of(p, w(k) + "." + t);
    } else if (k == "lora") {
      if (!v.is_object()) throw Error(w(k) + ": expected an object");
      for (auto& [lk, lv] : v.items()) {
        const std::string lw = w(k) + "." + lk;
        if (lk == "alpha") c.alpha = number(lv, lw);
        else if (lk == "alpha_ratio") c.alpha_ratio = number(lv, lw);
        else if (lk == "dropout") c.lora_dropout = number(lv, lw);
        else if (lk == "target_modules") c.target_modules = string_list(lv, lw);
        else if (lk == "target_regex") c.target_regex = str_of(lv, lw);
        else if (lk == "modules_to_save") c.modules_to_save = string_list(lv, lw);
        else if (lk == "rslora") c.rslora = boolean(lv, lw);
        else if (lk == "init") c.init = str_of(lv, lw);
        else
          throw Error(lw + ": unknown key (known: alpha, alpha_ratio, dropout, target_modules, target_regex, "
                           "modules_to_save, rslora, init)");
      }
    } else if (k == "method_options") {
      if (!v.is_object()) throw Error(w(k) + ": expected an object {\"method\": {options}}");
      for (auto& [m, o] : v.items()) {
        if (!o.is_object()) throw Error(w(k) + "." + m + ": expected an object");
        c.method_options[m] = o;
      }
    } else if (k == "weight_decay") c.weight_decay = number(v, w(k));
    else if (k == "warmup_ratio") c.warmup_ratio = number(v, w(k));
    else if (k == "max_grad_norm") c.max_grad_norm = number(v, w(k));
    else if (k == "threads") c.threads = static_cast<int>(integer(v, w(k)));
    else if (k == "progress") c.progress = boolean(v, w(k));
    else if (k == "gnuplot") c.gnuplot = str_of(v, w(k));
    else
      throw Error(w(k) + ": unknown key (known: model, data, out, tasks, methods, optional_methods, ranks, seeds, "
                         "epochs, lr, batch_size, eval_batch_size, max_seq_len, max_train_samples, max_eval_samples, "
                         "subsample, data_seed, train_file, eval_file, lora, method_options, weight_decay, "
                         "warmup_ratio, max_grad_norm, threads, progress, gnuplot)");
  }
  return c;
}

SweepConfig SweepConfig::from_file(const std::string& path) {
  json j;
  try {
    j = json::parse(read_text_file(path), nullptr, true, /*ignore_comments=*/true);
  } catch (const json::exception& e) {
    throw Error(path + ": not valid JSON: " + e.what());
  }
  return from_json(j, path);
}

ojson SweepConfig::to_json() const {
  ojson j;
  j["model"] = model;
  j["data"] = data;
  j["out"] = out;
  j["tasks"] = tasks;
  j["methods"] = methods;
  j["optional_methods"] = optional_methods;
  j["ranks"] = ranks;
  j["seeds"] = seeds;
  j["epochs"] = per_name_json(epochs);
  j["lr"] = per_name_json(lr);
  j["batch_size"] = batch_size;
  j["eval_batch_size"] = eval_batch_size;
  j["max_seq_len"] = max_seq_len;
  j["max_train_samples"] = per_name_json(max_train_samples);
  j["max_eval_samples"] = per_name_json(max_eval_samples);
  j["subsample"] = subsample;
  j["data_seed"] = data_seed;
  j["train_file"] = train_file;
  j["eval_file"] = eval_file;
  ojson l;
  if (alpha > 0) l["alpha"] = alpha;
  else l["alpha_ratio"] = alpha_ratio;
  l["dropout"] = lora_dropout;
  l["target_modules"] = target_modules;
  l["target_regex"] = target_regex;
  l["modules_to_save"] = modules_to_save;
  l["rslora"] = rslora;
  l["init"] = init;
  j["lora"] = l;
  j["method_options"] = method_options;
  j["weight_decay"] = weight_decay;
  j["warmup_ratio"] = warmup_ratio;
  j["max_grad_norm"] = max_grad_norm;
  j["threads"] = threads;
  j["progress"] = progress;
  j["gnuplot"] = gnuplot;
  return j;
}

void SweepConfig::validate() const {
  if (model.empty()) throw Error("sweep: no model (set \"model\" in the config or pass --model)");
  if (tasks.empty()) throw Error("sweep: no tasks");
  if (methods.empty() && optional_methods.empty()) throw Error("sweep: no methods");
  if (seeds.empty()) throw Error("sweep: no seeds");
  for (auto& t : tasks) canonical_task(t, "sweep: tasks");
  std::set<std::string> seen;
  for (auto& m : methods) {
    if (!registered(m)) {
      std::string known;
      for (auto& n : method_names()) known += (known.empty() ? "" : ", ") + n;
      throw Error("sweep: unknown method '" + m + "' (known: " + known +
                  "; list methods that may not exist yet under optional_methods)");
    }
    if (!seen.insert(m).second) throw Error("sweep: method '" + m + "' listed twice");
  }
  for (auto& m : optional_methods)
    if (!seen.insert(m).second) throw Error("sweep: method '" + m + "' listed twice");
  bool needs_rank = false;
  for (auto& m : seen) needs_rank |= !sweep_rank_free(m);
  if (needs_rank && ranks.empty()) throw Error("sweep: no ranks");
  for (auto r : ranks)
    if (r <= 0) throw Error("sweep: ranks must be positive");
  if (std::set<int64_t>(ranks.begin(), ranks.end()).size() != ranks.size()) throw Error("sweep: a rank is listed twice");
  if (std::set<uint64_t>(seeds.begin(), seeds.end()).size() != seeds.size()) throw Error("sweep: a seed is listed twice");
  if (std::set<std::string>(tasks.begin(), tasks.end()).size() != tasks.size()) throw Error("sweep: a task is listed twice");
  auto check_method_keys = [&](const std::vector<std::string>& keys, const char* what) {
    for (auto& k : keys)
      if (k != "*" && !seen.count(k) && !registered(k))
        throw Error(std::string("sweep: ") + what + " names method '" + k + "', which is neither listed nor registered");
  };
  std::vector<std::string> lr_keys, opt_keys;
  for (auto& [k, _] : lr.by_name) lr_keys.push_back(k);
  for (auto& [k, _] : method_options) opt_keys.push_back(k);
  check_method_keys(lr_keys, "lr");
  check_method_keys(opt_keys, "method_options");
  for (auto& t : tasks) {
    if (epochs.get(t) <= 0) throw Error("sweep: epochs for " + t + " must be positive");
  }
  for (auto& [k, v] : lr.by_name)
    if (!(v > 0)) throw Error("sweep: lr for " + k + " must be positive");
  if (!(lr.fallback > 0)) throw Error("sweep: lr must be positive");
  if (batch_size <= 0 || eval_batch_size <= 0) throw Error("sweep: batch sizes must be positive");
  if (max_seq_len < 8) throw Error("sweep: max_seq_len must be at least 8");
  if (subsample != "random" && subsample != "first") throw Error("sweep: subsample must be \"random\" or \"first\"");
  if (!(alpha > 0) && !(alpha_ratio > 0)) throw Error("sweep: lora.alpha or lora.alpha_ratio must be positive");
  if (threads < 0) throw Error("sweep: threads must be >= 0");
}

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
    const auto& task = data::glue_task(tname);
    const std::string trp = train_path(c, task), evp = eval_path(c, task);
    for (auto seed : c.seeds) {
      for (auto& m : methods) {
        const std::vector<int64_t> ranks = sweep_rank_free(m) ? std::vector<int64_t>{0} : c.ranks;
        for (auto r : ranks) {
          SweepRun run;
          run.task = task.name;
          run.method = m;
          run.rank = r;
          run.seed = seed;
          const std::string leaf = sweep_rank_free(m) ? m : fmt::format("{}-r{}", m, r);
          run.dir = join_path(join_path(join_path(join_path(c.out, "runs"), task.name), leaf), fmt::format("seed{}", seed));
          ojson& s = run.spec;
          s["task"] = task.name;
          s["method"] = m;
          if (!sweep_rank_free(m)) s["rank"] = r;
          s["seed"] = seed;
          s["model"] = c.model;
          s["train_file"] = trp;
          s["eval_file"] = evp;
          const int64_t mt = c.max_train_samples.get(task.name);
          s["max_train_samples"] = mt > 0 ? mt : -1;
          if (mt > 0) {
            s["subsample"] = c.subsample;
            if (c.subsample == "random") s["data_seed"] = c.data_seed;
          }
          const int64_t me = c.max_eval_samples.get(task.name);
          s["max_eval_samples"] = me > 0 ? me : -1;
          s["max_seq_len"] = c.max_seq_len;
          s["epochs"] = c.epochs.get(task.name);
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
          if (!sweep_rank_free(m)) apply_table_rank(m, r, task.name, extra);
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

json read_json_file(const std::string& path) {
  try {
    return json::parse(read_text_file(path));
  } catch (const json::exception& e) {
    throw Error(path + ": not valid JSON: " + e.what());
  }
}

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
}  // namespace

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

// ---------------------------------------------------------------------------------------------
// Running

namespace {

// Where the sweep turns a model name into a tokenizer and a model with a task head. Today: a Hugging
// Face BERT / RoBERTa directory; USE-lite plugs in here.
std::unique_ptr<text::Tokenizer> sweep_tokenizer(const std::string& model) {
  return text::load_tokenizer(resolve_model_dir(model));
}

LoadedModel sweep_model(const std::string& model, const data::TaskInfo& task, uint64_t seed) {
  LoadOptions lo;
  lo.num_labels = task.num_labels;
  lo.regression = task.is_regression;
  lo.seed = seed;
  lo.sentence_pair = task.has_pair;
  return load_model(model, lo);
}

struct TaskData {
  std::string task;
  std::unique_ptr<EncodedDataset> train, eval;
};

std::vector<data::Example> read_subset(const data::TaskInfo& task, const std::string& path, int64_t limit,
                                       bool random, uint64_t seed) {
  auto ex = data::read_glue_file(task, path, data::LabelMode::Required);
  if (limit <= 0 || static_cast<int64_t>(ex.size()) <= limit) return ex;
  if (!random) {
    ex.resize(limit);
    return ex;
  }
  std::vector<size_t> idx(ex.size());
  std::iota(idx.begin(), idx.end(), size_t{0});
  std::mt19937_64 rng(seed);
  for (size_t i = idx.size() - 1; i > 0; --i) {  // Fisher–Yates with our own draw: same on every libstdc++
    const size_t j = static_cast<size_t>(rng() % (i + 1));
    std::swap(idx[i], idx[j]);
  }
  idx.resize(limit);
  std::sort(idx.begin(), idx.end());  // keep the file's order
  std::vector<data::Example> out;
  out.reserve(idx.size());
  for (size_t i : idx) out.push_back(ex[i]);
  return out;
}

void load_task_data(TaskData& td, const SweepRun& run, const text::Tokenizer& tok, std::ostream& log) {
  if (td.task == run.task) return;
  td = TaskData{};
  const auto& task = data::glue_task(run.task);
  const auto& s = run.spec;
  const int64_t mt = s["max_train_samples"].get<int64_t>();
  const bool random = s.contains("subsample") && s["subsample"] == "random";
  const uint64_t data_seed = s.contains("data_seed") ? s["data_seed"].get<uint64_t>() : 0;
  const size_t max_len = s["max_seq_len"].get<size_t>();
  auto t0 = Clock::now();
  try {
    td.train = std::make_unique<EncodedDataset>(
        read_subset(task, s["train_file"].get<std::string>(), mt, random, data_seed), tok, max_len, task.is_regression);
    td.eval = std::make_unique<EncodedDataset>(
        read_subset(task, s["eval_file"].get<std::string>(), s["max_eval_samples"].get<int64_t>(), false, 0), tok,
        max_len, task.is_regression);
  } catch (const data::GlueError& e) {
    throw Error(std::string("sweep: ") + e.what());
  }
  td.task = run.task;
  log << fmt::format("sweep: {}: {} training / {} evaluation examples (tokenized in {:.1f} s)\n", run.task,
                     td.train->size(), td.eval->size(), since(t0));
}

// One run, start to finish, into run.dir (which is emptied first). Throws on failure.
nlohmann::json run_one(const SweepConfig& c, const SweepRun& run, const TaskData& td) {
  auto t0 = Clock::now();
  std::error_code ec;
  fs::remove_all(run.dir, ec);
  make_dirs(run.dir);
  write_text_atomically(join_path(run.dir, "run_spec.json"), run.spec.dump(2) + "\n");
  const auto& task = data::glue_task(run.task);
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

  // Same order as `lorakit train`, so a sweep run equals the corresponding train command.
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
  train(lm, *method, *td.train, *td.eval, task, tc);

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
  make_dirs(c.out);
  if (!opt.report_only) {
    write_text_atomically(join_path(c.out, "sweep_config.json"), c.to_json().dump(2) + "\n");
    configure_threads(c.threads);
    std::unique_ptr<text::Tokenizer> tok;
    TaskData td;
    const int w = static_cast<int>(std::to_string(runs.size()).size());
    const auto start = Clock::now();
    for (size_t i = 0; i < runs.size(); ++i) {
      const SweepRun& run = runs[i];
      const std::string head = fmt::format("[{:>{}}/{}] {}", i + 1, w, runs.size(), run.label());
      if (states[i] == RunState::Finished) {
        ++sum.skipped;
        log << head << ": finished earlier, skipped\n";
        continue;
      }
      if (!tok) {
        try {
          tok = sweep_tokenizer(c.model);
        } catch (const std::exception& e) {
          throw Error("sweep: model '" + c.model + "': " + e.what());
        }
      }
      load_task_data(td, run, *tok, log);
      log << head << (states[i] == RunState::Partial ? ": redoing an unfinished run\n" : ": running\n");
      log.flush();
      try {
        const json s = run_one(c, run, td);
        ++sum.ran;
        const auto& task = data::glue_task(run.task);
        const std::string key = "best_" + task.main_metric;
        const double wall = s["sweep"]["run_wall_seconds"].get<double>();
        done[i] = true;
        eta.add(run, wall);
        const double left = eta.remaining(runs, done);
        log << fmt::format("{}: {} {:.4f} (best epoch {}) in {:.1f} s, {:.0f} train samples/s; elapsed {}{}\n", head,
                           task.main_metric, s.value(key, 0.0), s.value("best_epoch", int64_t{-1}), wall,
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

// ---------------------------------------------------------------------------------------------
// Report

namespace {

struct Record {
  const SweepRun* run = nullptr;
  bool ok = false;
  std::string error;
  json results;             // results.json
  std::vector<json> epochs; // metrics.jsonl
  json best;                // the epoch with the best main metric
};

double jnum(const json& j, const std::string& k) {
  if (!j.is_object() || !j.contains(k) || !j[k].is_number()) return std::nan("");
  return j[k].get<double>();
}

// The sweep's own record in results.json ({} when absent).
json sweep_part(const json& results) {
  return results.is_object() && results.contains("sweep") && results["sweep"].is_object() ? results["sweep"] : json::object();
}

Record load_record(const SweepRun& run) {
  Record r;
  r.run = &run;
  const RunState st = run_state(run);
  if (st == RunState::Changed) {
    r.error = "finished with other settings, left out (--dry-run shows them, --redo-changed redoes them)";
    return r;
  }
  if (st != RunState::Finished) {
    const std::string ep = join_path(run.dir, "error.txt");
    if (file_exists(ep)) r.error = read_text_file(ep);
    return r;
  }
  try {
    r.results = read_json_file(join_path(run.dir, "results.json"));
    std::ifstream is(join_path(run.dir, "metrics.jsonl"));
    std::string line;
    while (std::getline(is, line))
      if (!line.empty()) r.epochs.push_back(json::parse(line));
  } catch (const std::exception& e) {
    r.error = e.what();
    return r;
  }
  const auto& task = data::glue_task(run.task);
  const std::string key = "eval_" + task.main_metric;
  double best = -std::numeric_limits<double>::infinity();
  for (auto& e : r.epochs) {
    double v = jnum(e, key);
    if (std::isnan(v)) v = jnum(e, "eval_accuracy");
    if (v > best) {  // first epoch wins ties, as in the trainer
      best = v;
      r.best = e;
    }
  }
  r.ok = !r.best.is_null();
  if (!r.ok) r.error = "metrics.jsonl has no epochs";
  return r;
}

struct Row {
  std::string method;
  int64_t rank = 0;
  std::string label() const { return sweep_rank_free(method) ? method_title(method) : fmt::format("{} R={}", method_title(method), rank); }
};

// Table 1 order: rank-free methods first, then per rank the methods in configuration order.
std::vector<Row> table_rows(const SweepConfig& c, const std::vector<SweepRun>& runs) {
  std::vector<std::string> methods;
  for (auto& r : runs)
    if (std::find(methods.begin(), methods.end(), r.method) == methods.end()) methods.push_back(r.method);
  std::vector<Row> rows;
  for (auto& m : methods)
    if (sweep_rank_free(m)) rows.push_back({m, 0});
  for (auto r : c.ranks)
    for (auto& m : methods)
      if (!sweep_rank_free(m)) rows.push_back({m, r});
  return rows;
}

bool in_row(const Record& rec, const Row& row, const std::string& task) {
  return rec.run->task == task && rec.run->method == row.method && rec.run->rank == row.rank;
}

std::vector<double> collect(const std::vector<Record>& recs, const Row& row, const std::string& task,
                            const std::string& key, bool from_results = false) {
  std::vector<double> v;
  for (auto& r : recs) {
    if (!r.ok || !in_row(r, row, task)) continue;
    const double x = jnum(from_results ? r.results : r.best, key);
    if (std::isfinite(x)) v.push_back(x);
  }
  return v;
}

std::string params_cell(const std::vector<Record>& recs, const Row& row, const std::vector<std::string>& tasks) {
  std::vector<double> t, i;
  for (auto& task : tasks) {
    auto a = collect(recs, row, task, "trainable_params", true);
    auto b = collect(recs, row, task, "inference_params", true);
    t.insert(t.end(), a.begin(), a.end());
    i.insert(i.end(), b.begin(), b.end());
  }
  if (t.empty()) return "–";
  auto span = [](const std::vector<double>& v) {
    const auto [lo, hi] = std::minmax_element(v.begin(), v.end());
    const std::string a = human_count(static_cast<int64_t>(*lo)), b = human_count(static_cast<int64_t>(*hi));
    return a == b ? a : a + "–" + b;
  };
  return span(t) + " / " + (i.empty() ? "–" : span(i));
}

// Runs gnuplot on one task's script; "" on success, else why not.
std::string run_gnuplot(const std::string& gnuplot, const std::string& plots_dir, const std::string& task) {
  const std::string cmd = "cd " + shell_quote(plots_dir) + " && " + shell_quote(gnuplot) + " " + shell_quote(task + ".gp") + " > " +
                          shell_quote(task + ".log") + " 2>&1";
  const int rc = std::system(cmd.c_str());
  const std::string png = join_path(plots_dir, task + ".png");
  std::string magic;
  {
    std::ifstream is(png, std::ios::binary);
    char buf[8] = {};
    if (is.read(buf, 8)) magic.assign(buf, 8);
  }
  if (rc == 0 && magic == std::string("\x89PNG\r\n\x1a\n", 8)) return "";
  std::string tail;
  try {
    tail = read_text_file(join_path(plots_dir, task + ".log"));
    if (tail.size() > 300) tail = "…" + tail.substr(tail.size() - 300);
  } catch (...) {
  }
  for (auto& ch : tail)
    if (ch == '\n') ch = ' ';
  return fmt::format("gnuplot failed for {} (exit {}){}", task, rc, tail.empty() ? "" : ": " + tail);
}

std::string gp_string(const std::string& s) {
  std::string r = "'";
  for (char ch : s) r += ch == '\'' ? std::string("''") : std::string(1, ch);
  return r + "'";
}

}  // namespace

SweepSummary write_sweep_report(const SweepConfig& c, const std::vector<SweepRun>& runs) {
  SweepSummary sum;
  sum.planned = runs.size();
  make_dirs(c.out);
  std::vector<Record> recs;
  recs.reserve(runs.size());
  for (auto& r : runs) recs.push_back(load_record(r));
  const std::vector<Row> rows = table_rows(c, runs);
  const size_t n_seeds = c.seeds.size();
  size_t n_ok = 0;
  double total_wall = 0;
  for (auto& r : recs) {
    if (!r.ok) {
      sum.failures.push_back(r.run->label() + ": " + (r.error.empty() ? std::string("not run yet") : r.error));
      continue;
    }
    ++n_ok;
    double w = jnum(sweep_part(r.results), "run_wall_seconds");
    if (!std::isfinite(w)) w = jnum(r.results, "wall_seconds");
    if (std::isfinite(w)) total_wall += w;
  }

  // ---- Table 1 (markdown + results.csv)
  std::ostringstream md;
  md << "# lorakit sweep results\n\n";
  md << "- model: `" << c.model << "`; data: `" << c.data << "`\n";
  md << "- tasks: ";
  for (size_t i = 0; i < c.tasks.size(); ++i) {
    const auto& t = c.tasks[i];
    const auto& tk = data::glue_task(t);
    const int64_t mt = c.max_train_samples.get(t);
    const int64_t me = c.max_eval_samples.get(t);
    auto ev = c.eval_file.find(t);
    md << (i ? ", " : "") << tk.dir_name << " (" << c.epochs.get(t) << " epochs"
       << (mt > 0 ? fmt::format(", {} {} training rows", c.subsample == "random" ? "random" : "first", mt) : "")
       << (me > 0 ? fmt::format(", first {} evaluation rows", me) : "")
       << (ev != c.eval_file.end() ? ", evaluated on `" + ev->second + "`" : "") << ")";
  }
  md << "\n- methods: ";
  {
    std::vector<std::string> ms;
    for (auto& row : rows)
      if (std::find(ms.begin(), ms.end(), row.method) == ms.end()) ms.push_back(row.method);
    for (size_t i = 0; i < ms.size(); ++i) md << (i ? ", " : "") << ms[i] << " (lr " << c.lr.get(ms[i]) << ")";
  }
  std::vector<std::string> unavailable;
  for (auto& m : c.optional_methods)
    if (!registered(m)) unavailable.push_back(m);
  if (!unavailable.empty()) {
    md << "; not available in this build: ";
    for (size_t i = 0; i < unavailable.size(); ++i) md << (i ? ", " : "") << unavailable[i];
  }
  md << "\n- ranks: ";
  for (size_t i = 0; i < c.ranks.size(); ++i) md << (i ? ", " : "") << c.ranks[i];
  md << " (LoRA alpha " << (c.alpha > 0 ? fmt::format("{}", c.alpha) : fmt::format("{}·r", c.alpha_ratio))
     << ", target modules " << (c.target_regex.empty() ? [&] {
          std::string s;
          for (auto& t : c.target_modules) s += (s.empty() ? "" : ",") + t;
          return s;
        }() : "regex " + c.target_regex)
     << "); seeds: ";
  for (size_t i = 0; i < c.seeds.size(); ++i) md << (i ? ", " : "") << c.seeds[i];
  md << "; batch size " << c.batch_size << ", max_seq_len " << c.max_seq_len << "\n";
  md << fmt::format("- {} of {} runs finished; run time {} in all (sum of the runs' wall times)\n", n_ok, runs.size(),
                    hms(total_wall));
  md << fmt::format("- written {} by lorakit {} on a {}-core machine (LibTorch threads: {})\n\n", utc_now(),
                    LORAKIT_VERSION, std::thread::hardware_concurrency(),
                    c.threads > 0 ? std::to_string(c.threads) : "one per core");
  md << "Each cell: mean ± standard deviation (n − 1) over seeds of each run's best epoch, the epoch with the best "
        "main metric on the evaluation file (CoLA MCC, STS-B Pearson, otherwise accuracy); every metric of a "
        "run comes from that same epoch. `(n=k)` marks cells with fewer finished seeds than configured. "
        "# T / I-Params: trainable / inference parameters (task head included).\n\n";
  md << "## Table 1\n\n";

  // Columns: one per task, holding that task's metrics "a / b"; best mean of each metric in bold.
  // (No bold where every row has the same mean: nothing wins.)
  std::map<std::string, std::map<std::string, double>> best_mean;  // task → metric → best mean over rows
  for (auto& t : c.tasks)
    for (auto& m : table_metrics(t)) {
      std::vector<double> means;
      for (auto& row : rows) {
        const Stat s = stat_of(collect(recs, row, t, "eval_" + m));
        if (s.n) means.push_back(s.mean);
      }
      if (means.size() > 1 && *std::min_element(means.begin(), means.end()) < *std::max_element(means.begin(), means.end()))
        best_mean[t][m] = *std::max_element(means.begin(), means.end());
    }
  md << "| Method | # T / I-Params |";
  for (auto& t : c.tasks) {
    md << " " << task_title(t) << " ";
    auto ms = table_metrics(t);
    for (size_t i = 0; i < ms.size(); ++i) md << (i ? " / " : "") << metric_title(ms[i]);
    md << " |";
  }
  md << "\n|---|---|";
  for (size_t i = 0; i < c.tasks.size(); ++i) md << "---|";
  md << "\n";
  std::ostringstream csv;
  csv << "method,rank,label";
  for (auto& t : c.tasks) {
    csv << "," << t << "_t_params," << t << "_i_params," << t << "_seeds";
    for (auto& m : table_metrics(t)) csv << "," << t << "_" << m << "_mean," << t << "_" << m << "_std";
  }
  csv << "\n";
  for (auto& row : rows) {
    md << "| " << row.label() << " | " << params_cell(recs, row, c.tasks) << " |";
    csv << row.method << "," << (sweep_rank_free(row.method) ? "" : std::to_string(row.rank)) << ","
        << csv_field(row.label());
    for (auto& t : c.tasks) {
      auto ms = table_metrics(t);
      md << " ";
      const auto tp = collect(recs, row, t, "trainable_params", true);
      const auto ip = collect(recs, row, t, "inference_params", true);
      csv << "," << (tp.empty() ? "" : fmt::format("{}", static_cast<int64_t>(tp[0]))) << ","
          << (ip.empty() ? "" : fmt::format("{}", static_cast<int64_t>(ip[0])));
      csv << "," << collect(recs, row, t, "eval_" + ms[0]).size();
      for (size_t i = 0; i < ms.size(); ++i) {
        const Stat s = stat_of(collect(recs, row, t, "eval_" + ms[i]));
        std::string cell = fmt_stat(s, 3, n_seeds);
        const bool bold = s.n && best_mean[t].count(ms[i]) && s.mean == best_mean[t][ms[i]];
        md << (i ? " / " : "") << (bold ? "**" + cell + "**" : cell);
        csv << "," << csv_num(s.mean) << "," << (s.n ? csv_num(s.std) : "");
      }
      md << " |";
    }
    md << "\n";
    csv << "\n";
  }

  // ---- Table 4: rank and orthogonality loss of ΔW vs the test metric, per task, LoRA-family rows.
  md << "\n## Table 4: orthogonality of ΔW and generalization\n\n";
  md << "Rank of ΔW: numerical rank of ΔW = s·B·A, mean over the adapted modules (min–max over modules and "
        "seeds in brackets); orthogonality loss ‖ΔW ΔWᵀ − I‖²_F, mean over the adapted modules; both at each run's "
        "best epoch, then mean ± std over seeds.\n\n";
  std::ostringstream t4;
  t4 << "task,method,rank,label,seeds,dw_rank_mean,dw_rank_std,dw_rank_min,dw_rank_max,dw_orth_loss_mean,"
        "dw_orth_loss_std,dw_orth_loss_core_mean,metric,metric_mean,metric_std\n";
  bool any_t4 = false;
  for (auto& t : c.tasks) {
    const auto& tk = data::glue_task(t);
    std::ostringstream block;
    bool any = false;
    block << "### " << tk.dir_name << "\n\n| Method | Rank of ΔW | Orthogonality loss of ΔW | " << tk.dir_name << " "
          << metric_title(tk.main_metric) << " |\n|---|---|---|---|\n";
    for (auto& row : rows) {
      if (sweep_rank_free(row.method)) continue;
      const Stat rk = stat_of(collect(recs, row, t, "dw_rank_mean"));
      const Stat ol = stat_of(collect(recs, row, t, "dw_orth_loss_mean"));
      const Stat olc = stat_of(collect(recs, row, t, "dw_orth_loss_core_mean"));
      const Stat mt = stat_of(collect(recs, row, t, "eval_" + tk.main_metric));
      if (!rk.n && !ol.n) continue;
      any = true;
      const auto mins = collect(recs, row, t, "dw_rank_min"), maxs = collect(recs, row, t, "dw_rank_max");
      std::string range;
      if (!mins.empty() && !maxs.empty())
        range = fmt::format(" ({}–{})", static_cast<int64_t>(*std::min_element(mins.begin(), mins.end())),
                            static_cast<int64_t>(*std::max_element(maxs.begin(), maxs.end())));
      block << "| " << row.label() << " | " << fmt_stat(rk, 1, n_seeds) << range << " | " << fmt_stat(ol, 3, n_seeds)
            << " | " << fmt_stat(mt, 3, n_seeds) << " |\n";
      t4 << t << "," << row.method << "," << row.rank << "," << csv_field(row.label()) << "," << std::max(rk.n, ol.n)
         << "," << csv_num(rk.mean) << "," << csv_num(rk.std) << ","
         << (mins.empty() ? "" : csv_num(*std::min_element(mins.begin(), mins.end()))) << ","
         << (maxs.empty() ? "" : csv_num(*std::max_element(maxs.begin(), maxs.end()))) << "," << csv_num(ol.mean) << ","
         << csv_num(ol.std) << "," << csv_num(olc.mean) << "," << tk.main_metric << "," << csv_num(mt.mean) << ","
         << csv_num(mt.std) << "\n";
    }
    if (any) {
      md << block.str() << "\n";
      any_t4 = true;
    }
  }
  if (!any_t4)
    md << "No finished LoRA-family run reports ΔW diagnostics (`dw_rank_mean` / `dw_orth_loss_mean` in "
          "metrics.jsonl).\n\n";

  // ---- Runs: wall time and throughput; runs.csv with one row per run.
  md << "## Runs\n\nPer method and task: finished runs, mean wall time per run (model loading included), mean "
        "training samples/s, mean best epoch. Every run's directory, metrics and timings: `runs.csv`.\n\n";
  md << "| Task | Method | Runs | Wall time / run (s) | Train samples/s | Best epoch |\n|---|---|---|---|---|---|\n";
  std::vector<std::string> metric_cols;
  for (auto& t : c.tasks)
    for (auto& m : data::glue_task(t).metric_names)
      if (std::find(metric_cols.begin(), metric_cols.end(), "eval_" + m) == metric_cols.end())
        metric_cols.push_back("eval_" + m);
  std::ostringstream rc;
  rc << "task,method,rank,seed,status,best_epoch,epochs,train_loss,train_accuracy,eval_loss,eval_accuracy";
  for (auto& m : metric_cols)
    if (m != "eval_accuracy") rc << "," << m;
  rc << ",generalization_gap,dw_rank_mean,dw_orth_loss_mean,trainable_params,inference_params,wall_seconds,"
        "run_wall_seconds,train_samples_per_second,dir\n";
  for (auto& t : c.tasks) {
    for (auto& row : rows) {
      size_t planned = 0, done = 0;
      std::vector<double> wall, sps, be;
      for (auto& r : recs) {
        if (!in_row(r, row, t)) continue;
        ++planned;
        if (!r.ok) continue;
        ++done;
        double w = jnum(sweep_part(r.results), "run_wall_seconds");
        if (!std::isfinite(w)) w = jnum(r.results, "wall_seconds");
        if (std::isfinite(w)) wall.push_back(w);
        const double s = jnum(r.results, "train_samples_per_second");
        if (std::isfinite(s)) sps.push_back(s);
        be.push_back(jnum(r.best, "epoch"));
      }
      if (!planned) continue;
      md << "| " << task_title(t) << " | " << row.label() << " | " << done << "/" << planned << " | "
         << (wall.empty() ? "–" : fmt::format("{:.1f}", stat_of(wall).mean)) << " | "
         << (sps.empty() ? "–" : fmt::format("{:.0f}", stat_of(sps).mean)) << " | "
         << (be.empty() ? "–" : fmt::format("{:.1f}", stat_of(be).mean)) << " |\n";
    }
  }
  for (auto& r : recs) {
    const SweepRun& run = *r.run;
    std::vector<std::string> f = {run.task, run.method, sweep_rank_free(run.method) ? "" : std::to_string(run.rank),
                                  std::to_string(run.seed), r.ok ? "finished" : (r.error.empty() ? "not run" : "failed")};
    auto add = [&](double v) { f.push_back(r.ok ? csv_num(v) : ""); };
    add(jnum(r.best, "epoch"));
    f.push_back(r.ok ? std::to_string(r.epochs.size()) : "");
    for (const char* k : {"train_loss", "train_accuracy", "eval_loss", "eval_accuracy"}) add(jnum(r.best, k));
    for (auto& m : metric_cols)
      if (m != "eval_accuracy") add(jnum(r.best, m));
    add(jnum(r.best, "generalization_gap"));
    add(jnum(r.best, "dw_rank_mean"));
    add(jnum(r.best, "dw_orth_loss_mean"));
    for (const char* k : {"trainable_params", "inference_params"}) {
      const double v = jnum(r.results, k);
      f.push_back(r.ok && std::isfinite(v) ? std::to_string(static_cast<int64_t>(v)) : "");
    }
    add(jnum(r.results, "wall_seconds"));
    add(jnum(sweep_part(r.results), "run_wall_seconds"));
    add(jnum(r.results, "train_samples_per_second"));
    f.push_back(csv_field(run.dir));
    for (size_t i = 0; i < f.size(); ++i) rc << (i ? "," : "") << f[i];
    rc << "\n";
  }
  if (!sum.failures.empty()) {
    md << "\n### Unfinished runs\n\n";
    for (auto& f : sum.failures) {
      std::string one = f;
      for (auto& ch : one)
        if (ch == '\n') ch = ' ';
      md << "- " << one << "\n";
    }
  }

  // ---- Plots (seed 001 Figure 1): per task, a 2×2 multiplot of per-epoch means over seeds.
  const std::string plots_dir = join_path(c.out, "plots");
  make_dirs(plots_dir);
  std::vector<std::string> plotted;
  for (auto& t : c.tasks) {
    std::ostringstream dat, plots[4];
    size_t block = 0;
    std::vector<std::string> row_methods;
    for (auto& row : rows)
      if (std::find(row_methods.begin(), row_methods.end(), row.method) == row_methods.end()) row_methods.push_back(row.method);
    for (auto& row : rows) {
      std::map<int64_t, std::array<std::vector<double>, 4>> per_epoch;
      for (auto& r : recs) {
        if (!r.ok || !in_row(r, row, t)) continue;
        for (auto& e : r.epochs) {
          auto& a = per_epoch[e.value("epoch", int64_t{0})];
          const char* keys[4] = {"train_accuracy", "eval_accuracy", "eval_loss", "generalization_gap"};
          for (int k = 0; k < 4; ++k) {
            const double v = jnum(e, keys[k]);
            if (std::isfinite(v)) a[k].push_back(v);
          }
        }
      }
      if (per_epoch.empty()) continue;
      dat << "# " << row.label() << "\n# epoch train_accuracy eval_accuracy eval_loss generalization_gap\n";
      for (auto& [ep, a] : per_epoch) {
        dat << ep;
        for (int k = 0; k < 4; ++k) dat << " " << (a[k].empty() ? std::string("NaN") : csv_num(stat_of(a[k]).mean));
        dat << "\n";
      }
      dat << "\n\n";
      // Colour and point type per method, dash type per rank (solid for the first rank and for full).
      const size_t mi = std::find(row_methods.begin(), row_methods.end(), row.method) - row_methods.begin();
      const size_t ri = sweep_rank_free(row.method) ? 0 : std::find(c.ranks.begin(), c.ranks.end(), row.rank) - c.ranks.begin();
      for (int k = 0; k < 4; ++k)
        plots[k] << (block ? ", \\\n     " : "") << gp_string(t + ".dat") << " index " << block << " using 1:" << (k + 2)
                 << " with linespoints lw 1.5 lc " << (mi + 1) << " pt " << (mi + 1) << " dt " << (ri + 1) << " title "
                 << gp_string(row.label());
      ++block;
    }
    if (!block) continue;
    write_text_atomically(join_path(plots_dir, t + ".dat"), dat.str());
    std::ostringstream gp;
    const auto& tk = data::glue_task(t);
    gp << "# " << tk.dir_name << ": per-epoch means over seeds (seed 001 Figure 1). Run: gnuplot " << t << ".gp\n";
    gp << "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {\n"
          "  set terminal pngcairo size 1400,1000 font ',10'\n} else {\n  set terminal png size 1400,1000\n}\n";
    gp << "set output " << gp_string(t + ".png") << "\n";
    gp << "set datafile missing 'NaN'\nset grid\nset xlabel 'epoch'\nset key outside right top font ',8'\n"
          "set xtics 1\nset offsets 0.2, 0.2, 0, 0\n";
    gp << "set multiplot layout 2,2 title " << gp_string(tk.dir_name + ": mean over seeds per epoch (model " + c.model + ")") << "\n";
    const char* titles4[4] = {"Train accuracy", "Eval accuracy", "Eval loss", "Generalization gap (train acc - eval acc)"};
    for (int k = 0; k < 4; ++k) gp << "set title " << gp_string(titles4[k]) << "\nplot " << plots[k].str() << "\n";
    gp << "unset multiplot\n";
    write_text_atomically(join_path(plots_dir, t + ".gp"), gp.str());
    plotted.push_back(t);
  }
  std::vector<std::string> plot_errors;
  if (plotted.empty()) {
    sum.plots_note = "no finished runs to plot";
  } else if (c.gnuplot.empty()) {
    sum.plots_note = "plots disabled (\"gnuplot\": \"\"); the .gp scripts are in plots/";
  } else if (std::system(("command -v " + shell_quote(c.gnuplot) + " > /dev/null 2>&1").c_str()) != 0) {
    sum.plots_note = "gnuplot not found (`" + c.gnuplot + "`); install gnuplot-nox and run `gnuplot <task>.gp` in plots/";
  } else {
    for (auto& t : plotted) {
      std::error_code ec;
      fs::remove(join_path(plots_dir, t + ".png"), ec);
      const std::string err = run_gnuplot(c.gnuplot, plots_dir, t);
      if (!err.empty()) plot_errors.push_back(err);
    }
    if (plot_errors.empty()) {
      sum.plots_ok = true;
    } else {
      for (auto& e : plot_errors) sum.plots_note += (sum.plots_note.empty() ? "" : "; ") + e;
    }
  }
  md << "\n## Plots\n\nPer task: train accuracy, eval accuracy, eval loss and generalization gap (train − eval "
        "accuracy) per epoch, mean over seeds, one line per method (seed 001 Figure 1).\n\n";
  if (sum.plots_ok || !plot_errors.empty()) {
    for (auto& t : plotted)
      if (file_exists(join_path(plots_dir, t + ".png")))
        md << "![" << task_title(t) << "](plots/" << t << ".png)\n\n";
  }
  if (!sum.plots_ok) md << "**No plots:** " << sum.plots_note << "\n";

  write_text_atomically(join_path(c.out, "results.md"), md.str());
  write_text_atomically(join_path(c.out, "results.csv"), csv.str());
  write_text_atomically(join_path(c.out, "table4.csv"), t4.str());
  write_text_atomically(join_path(c.out, "runs.csv"), rc.str());
  sum.report = join_path(c.out, "results.md");
  return sum;
}

}  // namespace lorakit
