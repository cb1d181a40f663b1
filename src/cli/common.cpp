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
  std::string names;
  for (auto& n : task_names()) names += (names.empty() ? "" : " ") + n;
  cmd->add_option("--task", d.task, "task: " + names);
  cmd->add_option("--data", d.t.data,
                  "the task's data: GLUE root (holding MRPC/ ...) or task folder (default ../shared/data/glue); "
                  "SQuAD folder or file (default ../shared/data/squad); image folder (fashion-mnist default: "
                  "/usr/share/datasets/fashion-mnist)");
  if (with_train)
    cmd->add_option("--train-file", d.t.train_file, "training file (default: found under --data)");
  cmd->add_option("--eval-file", d.t.eval_file, "evaluation file (default: found under --data)");
  cmd->add_option("--max-seq-len", d.t.max_seq_len, "truncate to this many tokens (SQuAD: the window length)");
  if (with_train) cmd->add_option("--max-train-samples", d.t.max_train_samples, "use the first N training rows");
  cmd->add_option("--max-eval-samples", d.t.max_eval_samples, "use the first N evaluation rows");
  cmd->add_option("--doc-stride", d.t.doc_stride,
                  "SQuAD: tokens shared by consecutive context windows (default min(128, max-seq-len / 4))");
  cmd->add_option("--n-best", d.t.n_best, "SQuAD: start and end candidates per window when decoding");
  cmd->add_option("--max-answer-len", d.t.max_answer_len, "SQuAD: longest answer, in tokens");
  if (with_train)
    cmd->add_flag("--augment", d.t.augment, "images: random crop (4-pixel padding) + horizontal flip while training");
}

void validate_data_flags(const DataOpts& d) {
  const TaskOptions& t = d.t;
  if (t.max_seq_len < 3) throw Error("--max-seq-len must be at least 3 (room for [CLS] a [SEP] b [SEP]), got " +
                                     std::to_string(t.max_seq_len));
  if (t.max_train_samples == 0) throw Error("--max-train-samples 0 leaves no training data");
  if (t.max_eval_samples == 0) throw Error("--max-eval-samples 0 leaves no evaluation data");
  if (t.doc_stride == 0) throw Error("--doc-stride must be positive");
  if (t.n_best <= 0) throw Error("--n-best must be positive, got " + std::to_string(t.n_best));
  if (t.max_answer_len <= 0) throw Error("--max-answer-len must be positive, got " + std::to_string(t.max_answer_len));
}

namespace {

std::string head_words(int64_t num_labels, bool regression) {
  if (regression) return "a regression head (1 output)";
  return "a " + std::to_string(num_labels) + "-label classification head";
}

std::string head_words(const LoadOptions& h) {
  if (h.head == "question-answering") return "a span question-answering head (qa_outputs)";
  return head_words(h.num_labels, h.regression);
}

// A head is a regression head when problem_type says so, or (transformers' rule) when it has one output
// and no problem_type.
bool regression_head(const std::string& problem_type, int64_t num_labels) {
  return problem_type == "regression" || (problem_type.empty() && num_labels == 1);
}

bool same_head(const LoadOptions& a, const LoadOptions& b) {
  const bool qa_a = a.head == "question-answering", qa_b = b.head == "question-answering";
  if (qa_a || qa_b) return qa_a == qa_b;
  return a.num_labels == b.num_labels && a.regression == b.regression;
}

void check_head(const std::string& what, const LoadOptions& has, const Task& task) {
  LoadOptions need;
  task.head_options(need);
  if (same_head(has, need)) return;
  throw Error(what + " has " + head_words(has) + ", but task " + task.name() + " needs " + head_words(need) +
              ": run it on the task it was trained for, or train a new one for " + task.name());
}

}  // namespace

std::unique_ptr<text::Tokenizer> load_text_tokenizer(const std::string& model_dir) {
  const std::string type = peek_model_type(model_dir);
  if (type == "vit")
    throw Error(model_dir + ": model_type 'vit' is an image model; the task given is a text task");
  return text::load_tokenizer(model_dir);
}

LoadedForEval load_with_adapter(std::string model_dir, const std::string& adapter_dir, const Task* task) {
  LoadOptions lo;
  lo.seed = 42;
  if (task) task->head_options(lo);
  if (!adapter_dir.empty()) {
    if (!dir_exists(adapter_dir)) throw Error(adapter_dir + ": adapter directory does not exist");
    check_adapter_config(adapter_dir);  // refuse unsupported PEFT fields before loading anything
    nlohmann::json extra = read_adapter_extra(adapter_dir);
    if (extra.contains("num_labels") && extra["num_labels"].is_number_integer()) {
      LoadOptions has;
      has.num_labels = extra["num_labels"].get<int64_t>();
      has.regression = regression_head(extra.value("problem_type", std::string()), has.num_labels);
      has.head = extra.value("head", std::string("sequence-classification"));
      if (task) check_head("adapter " + adapter_dir, has, *task);
      lo.num_labels = has.num_labels;
      lo.regression = has.regression;
      lo.head = has.head;
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
    keep.head.clear();
    LoadedForEval r{load_model(model_dir, keep), nullptr};
    bool head_loaded = true;
    for (auto& n : r.lm.report.newly_initialized)
      if (is_head_param(n)) head_loaded = false;
    if (head_loaded) {
      const auto& c = r.lm.config;
      LoadOptions has;
      has.num_labels = c.num_labels;
      has.regression = regression_head(c.problem_type, c.num_labels);
      has.head = c.head;
      check_head("model " + model_dir, has, *task);
      task->check_model(r.lm);
      return r;
    }
    LoadedForEval fresh{load_model(model_dir, lo), nullptr};
    task->check_model(fresh.lm);
    return fresh;
  }
  LoadedForEval r{load_model(model_dir, lo), nullptr};
  if (task) task->check_model(r.lm);
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
