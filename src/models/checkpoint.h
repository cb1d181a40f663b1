// Hugging Face model directories: config.json + weights (model.safetensors, sharded
// model.safetensors.index.json, or zip pytorch_model.bin) + tokenizer files.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "core/safetensors.h"
#include "models/bert.h"
#include "models/task_model.h"

namespace lorakit {

// Reads every tensor of a model directory's weights, whichever of the three layouts it uses.
st::NamedTensors read_checkpoint_tensors(const std::string& dir);
// Reads a zip pytorch_model.bin (torch.save of a state dict) through torch::pickle_load.
st::NamedTensors read_pytorch_bin(const std::string& path);

struct LoadReport {
  std::vector<std::string> newly_initialized;  // head parameters absent from the checkpoint
  std::vector<std::string> unexpected;         // checkpoint tensors the model has no use for
};

struct LoadedModel {
  ModelConfig config;
  SequenceClassifier model{nullptr};
  std::string dir;
  std::map<std::string, at::ScalarType> source_dtypes;  // per parameter, as stored in the checkpoint
  LoadReport report;
};

struct LoadOptions {
  int64_t num_labels = -1;   // override config.json (task heads), -1 keeps it
  bool regression = false;   // sets problem_type = regression (num_labels must be 1)
  uint64_t seed = 42;        // for heads that the checkpoint lacks
  // USE-lite heads: how sentence pairs are fed ("bi-encoder" | "concat"); single-sentence tasks set
  // sentence_pair = false and get a single-sentence head.
  std::string pair_mode = "bi-encoder";
  bool sentence_pair = true;
  // "" keeps config.json's head; "sequence-classification" or "question-answering" sets it (a missing
  // head is initialised, as transformers does for a checkpoint of another head).
  std::string head;
};

// "use-lite" names the cached USE-lite model (lorakit fetch-model use-lite); anything else is a path.
std::string resolve_model_dir(const std::string& name_or_dir);

// The model_type a model directory holds (config.json's; "use-lite" for a TF.js graph directory),
// without loading weights. Errors name the file.
std::string peek_model_type(const std::string& dir);

// Loads config + weights. Parameter names follow Hugging Face, accepting checkpoints of the bare
// encoder (no "bert."/"roberta." prefix) and old LayerNorm.gamma/beta names. A missing encoder
// weight, or any shape mismatch, is an error naming the tensor; a missing task head is initialised.
LoadedModel load_model(const std::string& dir, const LoadOptions& opt = {});

// True for task-head parameters (classifier.*, the pooler), which a checkpoint may lack.
bool is_head_param(const std::string& name);

// Copies `tensors` into `module`'s parameters (by Hugging Face name); used by load_model and adapters.
void load_into(torch::nn::Module& module, const st::NamedTensors& tensors, const std::string& source,
               bool allow_missing_heads, LoadReport& report);

// Writes config.json + model.safetensors (parameters cast to `dtypes` where given), atomically per file.
void save_model(const SequenceClassifier& model, const ModelConfig& config, const std::string& dir,
                const std::map<std::string, at::ScalarType>& dtypes = {});

// Copies tokenizer files (vocab.txt, tokenizer.json, tokenizer_config.json, special_tokens_map.json,
// vocab.json, merges.txt) from one model directory to another.
void copy_tokenizer_files(const std::string& from_dir, const std::string& to_dir);

}  // namespace lorakit
