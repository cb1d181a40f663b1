// Helpers shared by the sweep's translation units (declared in internal.h).
#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <map>
#include <numeric>
#include <string>
#include <vector>

#include "core/errors.h"
#include "core/fileutil.h"
#include "sweep/internal.h"
#include "tasks/task.h"
#include "text/glue.h"
#include "tuners/registry.h"

namespace lorakit::sweep_detail {

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

TaskFacts task_facts(const std::string& task) {
  static const std::map<std::string, std::string> titles = {
      {"squad", "SQuAD v1.1"},  {"fashion-mnist", "Fashion-MNIST"}, {"mnist", "MNIST"},
      {"cifar10", "CIFAR-10"},  {"cifar100", "CIFAR-100"},          {"cifar100-coarse", "CIFAR-100 (coarse)"}};
  const auto t = make_task(task);
  TaskFacts f;
  auto it = titles.find(t->name());
  f.dir_name = t->kind() == "glue" ? data::glue_task(t->name()).dir_name : it != titles.end() ? it->second : t->name();
  f.main_metric = t->main_metric();
  f.metric_names = t->metric_names();
  return f;
}

std::string task_title(const std::string& task) { return task_facts(task).dir_name; }

std::string metric_title(const std::string& m) {
  static const std::map<std::string, std::string> names = {
      {"mcc", "MCC"}, {"accuracy", "Acc"}, {"exact_match", "EM"}, {"f1", "F1"}, {"pearson", "Pearson"}, {"spearmanr", "Spearman"}};
  auto it = names.find(m);
  return it == names.end() ? m : it->second;
}

// The metrics seed 001 Table 1 reports for a task (CoLA MCC, STS-B Pearson / Spearman, MRPC Acc / F1, ...).
std::vector<std::string> table_metrics(const std::string& task) {
  std::vector<std::string> out;
  const TaskFacts facts = task_facts(task);
  for (auto& m : facts.metric_names)
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

json read_json_file(const std::string& path) {
  try {
    return json::parse(read_text_file(path));
  } catch (const json::exception& e) {
    throw Error(path + ": not valid JSON: " + e.what());
  }
}

}  // namespace lorakit::sweep_detail
