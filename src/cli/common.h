// Pieces the train / eval / predict / merge commands share: data flags, locating task files, and
// loading a model (optionally with an adapter) checked against the task it is asked to run.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "models/checkpoint.h"
#include "text/glue.h"
#include "text/tokenizer.h"
#include "tuners/lora/model.h"

namespace CLI {
class App;
}

namespace lorakit::cli {

std::vector<std::string> split_csv(const std::string& s);

struct DataOpts {
  std::string task = "mrpc";
  std::string data = "../shared/data/glue";
  std::string train_file, eval_file;
  int64_t max_seq_len = 128;
  int64_t max_train_samples = -1, max_eval_samples = -1;
};
void add_data_flags(CLI::App* cmd, DataOpts& d, bool with_train);
// Checks what can be judged from the flags alone (max_seq_len, sample limits).
void validate_data_flags(const DataOpts& d);

// --data may be the GLUE root (holding MRPC/) or the task's own folder (holding train.tsv).
std::string task_file(const std::string& data, const data::TaskInfo& task, const std::string& file);
std::vector<data::Example> read_examples(const data::TaskInfo& task, const std::string& path, int64_t limit,
                                         data::LabelMode mode = data::LabelMode::Required);
LoadOptions load_options_for(const data::TaskInfo& task, uint64_t seed);

struct LoadedForEval {
  LoadedModel lm;
  std::unique_ptr<LoraMethod> adapter;
};
// Loads `model_dir` (default: the adapter's base model) and the adapter in `adapter_dir` (may be empty).
// With a task, the model's or adapter's trained head must fit it (label count and problem type), else a
// lorakit::Error in words before anything runs.
// The tokenizer of a text model directory; an image model (ViT) is refused by name, since every task the
// CLI runs on it so far is a text task.
std::unique_ptr<text::Tokenizer> load_text_tokenizer(const std::string& model_dir);

LoadedForEval load_with_adapter(std::string model_dir, const std::string& adapter_dir, const data::TaskInfo* task);

// --max-seq-len capped at what the model can hold (a warning on stderr when it was longer).
int64_t effective_seq_len(const ModelConfig& c, int64_t max_seq_len);

}  // namespace lorakit::cli
