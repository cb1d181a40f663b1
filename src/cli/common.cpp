#include "cli/common.h"

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <sstream>

#include "core/errors.h"
#include "core/fileutil.h"
#include "tuners/registry.h"

namespace lorakit::cli {

std::vector<std::string> split_csv(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

void add_data_flags(CLI::App* cmd, DataOpts& d, bool with_train) {
  cmd->add_option("--task", d.task, "GLUE task: cola sst2 mrpc stsb qqp mnli qnli rte wnli");
  cmd->add_option("--data", d.data, "GLUE root (holding MRPC/ ...) or the task's folder");
  if (with_train) cmd->add_option("--train-file", d.train_file, "training TSV (default <data>/<TASK>/train.tsv)");
  cmd->add_option("--eval-file", d.eval_file, "evaluation TSV (default <data>/<TASK>/dev.tsv)");
  cmd->add_option("--max-seq-len", d.max_seq_len, "truncate pairs to this many tokens");
  if (with_train) cmd->add_option("--max-train-samples", d.max_train_samples, "use the first N training rows");
  cmd->add_option("--max-eval-samples", d.max_eval_samples, "use the first N evaluation rows");
}

void validate_data_flags(const DataOpts& d) {
  if (d.max_seq_len < 3) throw Error("--max-seq-len must be at least 3 (room for [CLS] a [SEP] b [SEP]), got " +
                                     std::to_string(d.max_seq_len));
  if (d.max_train_samples == 0) throw Error("--max-train-samples 0 leaves no training data");
  if (d.max_eval_samples == 0) throw Error("--max-eval-samples 0 leaves no evaluation data");
}

std::string task_file(const std::string& data, const data::TaskInfo& task, const std::string& file) {
  const std::string in_task = join_path(join_path(data, task.dir_name), file);
  if (file_exists(in_task)) return in_task;
  const std::string direct = join_path(data, file);
  if (file_exists(direct)) return direct;
  throw Error("cannot find " + file + " for task " + task.name + " under " + data + " (tried " + in_task + " and " +
              direct + ")");
}

std::vector<data::Example> read_examples(const data::TaskInfo& task, const std::string& path, int64_t limit,
                                         data::LabelMode mode) {
  auto ex = data::read_glue_file(task, path, mode);
  if (limit > 0 && static_cast<int64_t>(ex.size()) > limit) ex.resize(limit);
  return ex;
}

LoadOptions load_options_for(const data::TaskInfo& task, uint64_t seed) {
  LoadOptions lo;
  lo.num_labels = task.num_labels;
  lo.regression = task.is_regression;
  lo.seed = seed;
  lo.sentence_pair = task.has_pair;
  return lo;
}

namespace {

std::string head_words(int64_t num_labels, bool regression) {
  if (regression) return "a regression head (1 output)";
  return "a " + std::to_string(num_labels) + "-label classification head";
}

std::string task_words(const data::TaskInfo& t) {
  return t.is_regression ? "regression (1 output)" : std::to_string(t.num_labels) + "-label classification";
}

// A head is a regression head when problem_type says so, or (transformers' rule) when it has one output
// and no problem_type.
bool regression_head(const std::string& problem_type, int64_t num_labels) {
  return problem_type == "regression" || (problem_type.empty() && num_labels == 1);
}

void check_head(const std::string& what, int64_t num_labels, bool regression, const data::TaskInfo& task) {
  if (num_labels == task.num_labels && regression == task.is_regression) return;
  throw Error(what + " has " + head_words(num_labels, regression) + ", but task " + task.name + " is " +
              task_words(task) + ": run it on the task it was trained for, or train a new one for " + task.name);
}

}  // namespace

std::unique_ptr<text::Tokenizer> load_text_tokenizer(const std::string& model_dir) {
  const std::string type = peek_model_type(model_dir);
  if (type == "vit")
    throw Error(model_dir + ": model_type 'vit' is an image model; the task given is a text task");
  return text::load_tokenizer(model_dir);
}

LoadedForEval load_with_adapter(std::string model_dir, const std::string& adapter_dir, const data::TaskInfo* task) {
  LoadOptions lo;
  if (task) lo = load_options_for(*task, 42);
  if (!adapter_dir.empty()) {
    if (!dir_exists(adapter_dir)) throw Error(adapter_dir + ": adapter directory does not exist");
    check_adapter_config(adapter_dir);  // refuse unsupported PEFT fields before loading anything
    nlohmann::json extra = read_adapter_extra(adapter_dir);
    if (extra.contains("num_labels") && extra["num_labels"].is_number_integer()) {
      const int64_t n = extra["num_labels"].get<int64_t>();
      const bool reg = regression_head(extra.value("problem_type", std::string()), n);
      if (task) check_head("adapter " + adapter_dir, n, reg, *task);
      lo.num_labels = n;
      lo.regression = reg;
    }
    if (extra.contains("pair_mode") && extra["pair_mode"].is_string()) {
      const std::string pm = extra["pair_mode"].get<std::string>();
      lo.sentence_pair = pm != "single";
      if (pm != "single") lo.pair_mode = pm;
    }
    if (model_dir.empty()) model_dir = adapter_base_model(adapter_dir);
  }
  if (model_dir.empty()) throw Error("--model (or --adapter) is required");
  if (adapter_dir.empty() && task) {
    // A fine-tuned model directory carries its trained head: it must fit the task. (A base model without
    // a head gets one initialised for the task, as transformers does.)
    LoadOptions keep = lo;
    keep.num_labels = -1;
    keep.regression = false;
    LoadedForEval r{load_model(model_dir, keep), nullptr};
    bool head_loaded = true;
    for (auto& n : r.lm.report.newly_initialized)
      if (is_head_param(n)) head_loaded = false;
    if (head_loaded) {
      const auto& c = r.lm.config;
      check_head("model " + model_dir, c.num_labels, regression_head(c.problem_type, c.num_labels), *task);
      return r;
    }
    return {load_model(model_dir, lo), nullptr};
  }
  LoadedForEval r{load_model(model_dir, lo), nullptr};
  if (!adapter_dir.empty()) r.adapter = load_any_adapter(r.lm.model, adapter_dir);
  return r;
}

int64_t effective_seq_len(const ModelConfig& c, int64_t max_seq_len) {
  const int64_t limit = c.max_tokens();
  if (max_seq_len <= limit) return max_seq_len;
  // As run_glue.py: min(--max_seq_length, the model's limit), with a warning.
  fmt::print(stderr,
             "lorakit: warning: --max-seq-len {} is longer than the model's limit of {} tokens "
             "(max_position_embeddings {}); using {}\n",
             max_seq_len, limit, c.max_position_embeddings, limit);
  return limit;
}

}  // namespace lorakit::cli
