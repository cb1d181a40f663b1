// Helpers shared by the sweep's translation units (config.cpp, plan.cpp, run.cpp, report.cpp); not part
// of the public API (sweep.h). Defined in util.cpp, except run_changes (plan.cpp, beside the spec diffs).
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "sweep/sweep.h"

namespace lorakit::sweep_detail {

namespace fs = std::filesystem;
using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

// ---- Small formatting helpers

std::string shell_quote(const std::string& s);
std::string csv_field(const std::string& s);
std::string csv_num(double v);  // "" for NaN / inf
// 3 significant digits with K / M / B, as the papers write parameter counts ("1.26M", "184M").
std::string human_count(int64_t n);
std::string utc_now();       // "2024-01-02 03:04:05 UTC"
std::string hms(double s);   // "h:mm:ss"

struct Stat {
  size_t n = 0;
  double mean = std::nan(""), std = std::nan("");
};

// Mean and sample standard deviation (n − 1; 0 for a single value).
Stat stat_of(const std::vector<double>& v);
// "mean ± std" (or "mean" for one value, "–" for none), " (n=k)" when fewer than expected_n values.
std::string fmt_stat(const Stat& s, int decimals, size_t expected_n);

// ---- Names in tables

std::string task_title(const std::string& task);
// What the report needs of a task, from the task registry: its title (GLUE's folder name, "SQuAD v1.1",
// "Fashion-MNIST", ...), main metric and metric names.
struct TaskFacts {
  std::string dir_name, main_metric;
  std::vector<std::string> metric_names;
};
TaskFacts task_facts(const std::string& task);  // the task's GLUE folder name ("MRPC")
std::string metric_title(const std::string& m);   // "MCC", "Acc", ...
// The metrics seed 001 Table 1 reports for a task (CoLA MCC, STS-B Pearson / Spearman, MRPC Acc / F1, ...).
std::vector<std::string> table_metrics(const std::string& task);
std::string method_title(const std::string& m);   // "Full FT", "LoRA", ...

// ---- Methods and run files

bool registered(const std::string& method);  // in method_names()
// The file parsed as JSON; throws lorakit::Error naming the file.
json read_json_file(const std::string& path);
// Why a run's run_spec.json differs from run.spec ("epochs: 3 → 5"); empty when it does not.
std::vector<std::string> run_changes(const SweepRun& run);

}  // namespace lorakit::sweep_detail
