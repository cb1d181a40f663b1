// GLUE task registry, TSV readers and metrics (standard library only).
//
// Files are read in the layout GLUE distributes them (the one produced by the
// original download_glue_data.py and read by Hugging Face's `glue` processors):
//
//   task   header?  text_a          text_b          label column   labels
//   CoLA   no       col 3           -               col 1          0 / 1
//   SST-2  yes      sentence        -               label          0 / 1
//   MRPC   yes+BOM  #1 String       #2 String       Quality        0 / 1
//   STS-B  yes      sentence1       sentence2       score          float
//   QQP    yes      question1       question2       is_duplicate   0 / 1
//   MNLI   yes      sentence1       sentence2       gold_label     contradiction / entailment / neutral
//   QNLI   yes      question        sentence        label          entailment / not_entailment
//   RTE    yes      sentence1       sentence2       label          entailment / not_entailment
//   WNLI   yes      sentence1       sentence2       label          0 / 1
//
// Where a header exists, columns are found by header name, not position.
// GLUE TSVs are NOT quoted CSV: lines are split on '\t' only and quote
// characters are kept verbatim (QQP and MNLI contain unbalanced quotes).
// Text fields are returned exactly as stored (no trimming; SST-2 sentences end
// in a space, the tokenizer deals with whitespace).
#pragma once

#include <cstddef>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/errors.h"  // header-only lorakit::Error (no LibTorch)

namespace lorakit::data {

// Every reading / lookup / label error of this module. Messages from the
// reader have the form "<path>:<line>: <what is wrong>" (line is 1-based and
// counts the header line).
struct GlueError : lorakit::Error {  // a lorakit::Error like every other file error
  using lorakit::Error::Error;
};

struct TaskInfo {
  std::string name;      // canonical lower-case: cola sst2 mrpc stsb qqp mnli qnli rte wnli
  std::string dir_name;  // GLUE folder name: CoLA SST-2 MRPC STS-B QQP MNLI QNLI RTE WNLI
  bool is_regression = false;
  int num_labels = 0;                   // 1 for stsb
  std::vector<std::string> label_names; // HF processor label_list (empty for stsb); index = class id
  bool has_pair = false;
  std::string train_file;               // "train.tsv"
  std::vector<std::string> eval_files;  // {"dev.tsv"}; mnli {"dev_matched.tsv","dev_mismatched.tsv"}
  std::string main_metric;              // cola "mcc", stsb "pearson", otherwise "accuracy"
  std::vector<std::string> metric_names;  // keys compute_glue_metrics returns, in this order
};

// Look a task up by name. Case-insensitive; '-' and '_' are ignored, so
// "MRPC", "sst-2", "SST2", "sts-b", "STS_B" all work. Unknown names throw a
// GlueError that lists the known tasks.
const TaskInfo& glue_task(const std::string& name);

// Canonical names in GLUE's usual order: cola sst2 mrpc stsb qqp mnli qnli rte wnli.
std::vector<std::string> glue_task_names();

struct Example {
  std::string text_a;
  std::string text_b;  // empty when !has_b
  bool has_b = false;
  float label = 0.f;   // class index (0..num_labels-1) or regression score; NaN if unlabeled
  size_t line = 0;     // 1-based line number in the file (header counts as line 1)
};

enum class LabelMode {
  // Labels are read when the label column exists. A headered file without a
  // label column (GLUE's test.tsv layouts) gives NaN labels; for CoLA a file
  // whose first line is the header "index\tsentence" is GLUE's test layout.
  Auto,
  // The label column must exist (train/dev files); its absence is a GlueError.
  Required,
};

// Read one GLUE TSV. Handles a UTF-8 BOM, CRLF line endings, a missing final
// newline and blank lines (skipped). Throws GlueError ("<path>:<line>: ...")
// for: a missing/unreadable file, an empty file, a header lacking a required
// column, a header-only file (no examples), a row whose column count differs
// from the header's (CoLA: 4 columns), and a label that is not in the task's
// label set (STS-B: not a finite number).
std::vector<Example> read_glue_file(const TaskInfo& task, const std::string& path,
                                    LabelMode mode = LabelMode::Auto);

// Split a line on '\t' only (no quote handling). Exposed for tests and tools.
std::vector<std::string> split_tsv_line(const std::string& line);

}  // namespace lorakit::data
