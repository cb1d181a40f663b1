// The sweep configuration: SweepConfig::from_json / from_file / to_json / validate and the JSON
// parsing helpers they use (see sweep.h).
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "core/errors.h"
#include "core/fileutil.h"
#include "sweep/internal.h"
#include "sweep/sweep.h"
#include "tasks/task.h"
#include "text/glue.h"
#include "tuners/registry.h"

namespace lorakit {
using namespace sweep_detail;
namespace {

// ---------------------------------------------------------------------------------------------
// Configuration parsing

std::string canonical_task(const std::string& name, const std::string& where) {
  try {
    return canonical_task_name(name);
  } catch (const std::exception& e) {
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
    else if (k == "train_file" || k == "eval_file" || k == "task_data") {
      if (!v.is_object()) throw Error(w(k) + ": expected an object {\"task\": \"path\"}");
      auto& m = k == "train_file" ? c.train_file : k == "eval_file" ? c.eval_file : c.task_data;
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
    else if (k == "save_steps") c.save_steps = integer(v, w(k));
    else if (k == "gnuplot") c.gnuplot = str_of(v, w(k));
    else
      throw Error(w(k) + ": unknown key (known: model, data, out, tasks, methods, optional_methods, ranks, seeds, "
                         "epochs, lr, batch_size, eval_batch_size, max_seq_len, max_train_samples, max_eval_samples, "
                         "subsample, data_seed, train_file, eval_file, task_data, lora, method_options, weight_decay, "
                         "warmup_ratio, max_grad_norm, threads, progress, save_steps, gnuplot)");
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
  j["task_data"] = task_data;
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
  j["save_steps"] = save_steps;
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
  if (save_steps < 0) throw Error("sweep: save_steps must be >= 0");
}

}  // namespace lorakit
