// The experiment sweep: methods × tasks × ranks × seeds, one `train()` run per combination, each in
// its own directory, resumable; then the papers' tables (seed 001 Table 1 and Table 4) and per-task
// plots (seed 001 Figure 1) from the runs' metrics.jsonl. See docs/sweep.md.
//
//   <out>/sweep_config.json                  the effective configuration (after CLI overrides)
//   <out>/runs/<task>/<method>-r<R>/seed<S>/  one `lorakit train` output directory per run
//   <out>/runs/<task>/full/seed<S>/           (rank does not apply to full fine-tuning)
//   <out>/results.md, results.csv            Table 1 (+ Table 4 block, run timings, plots)
//   <out>/table4.csv, runs.csv               Table 4 rows; one row per run (wall time, samples/s)
//   <out>/plots/<task>.png (.dat, .gp)       train acc / eval acc / eval loss / gap per epoch
//
// A run counts as finished when its results.json exists (the trainer writes it last). A run
// directory without one (an interrupted run) is removed and the run redone from scratch. Every run
// directory holds run_spec.json, the settings that determine its result; a finished run whose spec
// differs from the current configuration is an error unless SweepOptions::redo_changed.
#pragma once
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <vector>

namespace lorakit {

// A setting given once for every name, or per name with a fallback: JSON `3` or
// `{"default": 3, "mrpc": 5}`. Task keys may be written any way glue_task() accepts ("MRPC", "sts-b").
template <class T>
struct PerName {
  T fallback{};
  std::map<std::string, T> by_name;
  PerName() = default;
  PerName(T v) : fallback(v) {}  // NOLINT(google-explicit-constructor)
  T get(const std::string& name) const {
    auto it = by_name.find(name);
    return it == by_name.end() ? fallback : it->second;
  }
};

struct SweepConfig {
  // The model directory every run starts from (Hugging Face BERT / RoBERTa directory today).
  std::string model;
  std::string data = "../shared/data/glue";  // GLUE root (holding MRPC/ ...)
  std::string out = "runs/sweep";
  std::vector<std::string> tasks = {"mrpc"};        // canonical GLUE names after parsing
  std::vector<std::string> methods = {"full", "lora"};
  // Run when the method is registered (e.g. adalora, sora), else listed as unavailable in results.md.
  std::vector<std::string> optional_methods;
  std::vector<int64_t> ranks = {8};        // LoRA rank R; ignored for "full" (run once per task × seed)
  std::vector<uint64_t> seeds = {1, 2, 3};
  PerName<int64_t> epochs{3};              // per task
  PerName<double> lr{1e-3};                // per method (seed 001 Table 3: full 1e-5, LoRA 1e-3)
  int64_t batch_size = 32;
  int64_t eval_batch_size = 64;
  int64_t max_seq_len = 128;
  PerName<int64_t> max_train_samples{-1};  // per task; <= 0: all rows
  PerName<int64_t> max_eval_samples{-1};   // per task; first N rows of the evaluation file
  std::string subsample = "random";        // how max_train_samples picks rows: "random" (data_seed) | "first"
  uint64_t data_seed = 0;                  // the subsample is the same for every run of a task
  std::map<std::string, std::string> train_file;  // per task, overriding <data>/<TASK>/train.tsv
  std::map<std::string, std::string> eval_file;   // per task, overriding <data>/<TASK>/dev.tsv
  // Per task beyond GLUE (squad, fashion-mnist, cifar10, ...): its --data folder ("" or absent: the
  // task's own default, e.g. ../shared/data/squad, /usr/share/datasets/fashion-mnist).
  std::map<std::string, std::string> task_data;
  // LoRA family (every method but "full"): alpha = `alpha` when > 0, else alpha_ratio · r.
  double alpha = -1;
  double alpha_ratio = 2.0;
  double lora_dropout = 0.0;
  std::vector<std::string> target_modules = {"query", "value"};
  std::string target_regex;
  std::vector<std::string> modules_to_save = {"classifier"};
  bool rslora = false;
  std::string init = "kaiming";
  // Method-specific options (MethodOptions::extra, the keys the method's own CLI flags write), per
  // method name; "*" applies to every method (a method's own entry wins key by key).
  std::map<std::string, nlohmann::json> method_options;
  double weight_decay = 0.01;
  double warmup_ratio = 0.06;
  double max_grad_norm = 1.0;
  int threads = 0;          // LibTorch threads, 0 = one per core
  bool progress = true;     // the trainer's progress bar
  int64_t save_steps = 500;  // a training checkpoint every N steps (0: epoch ends only); a killed run resumes
  std::string gnuplot = "gnuplot";  // program used for the plots ("" = no plots)

  // Unknown keys are errors (they are usually typos). `source` names the file in messages.
  static SweepConfig from_json(const nlohmann::json& j, const std::string& source);
  static SweepConfig from_file(const std::string& path);
  nlohmann::ordered_json to_json() const;
  // Names resolved, values range-checked; throws lorakit::Error.
  void validate() const;
};

struct SweepRun {
  std::string task, method;
  int64_t rank = 0;  // 0 for rank-free methods (full)
  uint64_t seed = 0;
  std::string dir;
  nlohmann::ordered_json spec;  // everything that determines the result (written as run_spec.json)
  std::string label() const;    // "mrpc lora r8 seed 1"
};

// True for methods where the LoRA rank does not apply (full fine-tuning).
bool sweep_rank_free(const std::string& method);

// The runs in execution order (task, seed, method, rank). Methods listed in optional_methods that are
// not registered are left out; any other unknown method or task is an error.
std::vector<SweepRun> plan_sweep(const SweepConfig& cfg);

enum class RunState {
  Finished,  // results.json present, same spec
  Pending,   // no directory yet
  Partial,   // directory without results.json (interrupted or failed): redone from scratch
  Changed,   // finished, but with a different spec
};
RunState run_state(const SweepRun& run);
const char* run_state_name(RunState s);

struct SweepOptions {
  bool dry_run = false;       // list the runs and their state; train nothing, write nothing
  bool report_only = false;   // write the report from whatever runs are finished; train nothing
  bool redo_changed = false;  // redo finished runs whose spec differs instead of stopping
  std::ostream* log = nullptr;  // progress lines (default std::cerr)
  // `sweep --nproc`: this process is one of several workers. A run is trained only by the worker that
  // creates <claims_dir>/<run index> first (O_EXCL); the workers write no report (the launcher does).
  std::string claims_dir;
  std::string worker_name;  // "worker 2/4", prefixed to the log lines
};

struct SweepSummary {
  size_t planned = 0, ran = 0, skipped = 0, failed = 0;
  std::vector<std::string> failures;  // "label: message"
  bool plots_ok = false;
  std::string plots_note;             // why plots are missing, if they are
  std::string report;                 // path of results.md ("" for a dry run)
};

// Runs what is not finished yet, then writes the report. A run that throws is recorded (error.txt in
// its directory, a line in results.md) and the sweep goes on; configuration errors throw before
// anything trains.
SweepSummary run_sweep(const SweepConfig& cfg, const SweepOptions& opt = {});

// results.md, results.csv, table4.csv, runs.csv and plots/ from the finished runs of the plan.
SweepSummary write_sweep_report(const SweepConfig& cfg, const std::vector<SweepRun>& runs);

}  // namespace lorakit
