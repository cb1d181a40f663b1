// Pieces the train / eval / predict / merge commands share: data flags, locating task files, and
// loading a model (optionally with an adapter) checked against the task it is asked to run.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "models/checkpoint.h"
#include "tasks/task.h"
#include "text/tokenizer.h"
#include "tuners/lora/model.h"

namespace CLI {
class App;
}

namespace lorakit::cli {

std::vector<std::string> split_csv(const std::string& s);

struct DataOpts {
  std::string task = "mrpc";
  TaskOptions t;
};
void add_data_flags(CLI::App* cmd, DataOpts& d, bool with_train);
// Checks what can be judged from the flags alone (max_seq_len, sample limits, SQuAD decoding numbers).
void validate_data_flags(const DataOpts& d);

struct LoadedForEval {
  LoadedModel lm;
  std::unique_ptr<LoraMethod> adapter;
};
// Loads `model_dir` (default: the adapter's base model) and the adapter in `adapter_dir` (may be empty).
// With a task, the model's or adapter's trained head must fit it (label count, problem type, span QA),
// else a lorakit::Error in words before anything runs; a base model without a head gets the task's.
LoadedForEval load_with_adapter(std::string model_dir, const std::string& adapter_dir, const Task* task);

// The tokenizer of a text model directory; an image model (ViT) is refused by name.
std::unique_ptr<text::Tokenizer> load_text_tokenizer(const std::string& model_dir);

// --max-seq-len capped at what the model can hold (a warning on stderr when it was longer).
int64_t effective_seq_len(const ModelConfig& c, int64_t max_seq_len);

}  // namespace lorakit::cli
