#include "models/checkpoint.h"

#include <filesystem>
#include <fstream>
#include <set>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>
#include <torch/serialize.h>

#include "core/errors.h"
#include "core/fileutil.h"
#include "models/checkpoint_files.h"
#include "models/use_lite_task.h"

namespace lorakit {

st::NamedTensors read_pytorch_bin(const std::string& path) {
  std::string bytes = read_text_file(path);
  if (bytes.size() < 4 || bytes.compare(0, 2, "PK") != 0)
    throw Error(path + ": not a zip-format pytorch_model.bin (legacy pickle files are not supported)");
  list_torch_zip(bytes, path);  // offsets, sizes and names checked before LibTorch's reader sees them
  std::vector<char> data(bytes.begin(), bytes.end());
  c10::IValue v;
  try {
    v = torch::pickle_load(data);
  } catch (const std::exception& e) {
    throw Error(path + ": cannot unpickle: " + std::string(e.what()).substr(0, 300));
  }
  if (!v.isGenericDict()) throw Error(path + ": expected a state dict (mapping of name to tensor)");
  st::NamedTensors out;
  for (auto& kv : v.toGenericDict()) {
    if (!kv.key().isString() || !kv.value().isTensor())
      throw Error(path + ": state dict holds a non-tensor entry");
    out.emplace_back(kv.key().toStringRef(), kv.value().toTensor());
  }
  return out;
}

st::NamedTensors read_checkpoint_tensors(const std::string& dir) {
  const std::string single = join_path(dir, "model.safetensors");
  const std::string index = join_path(dir, "model.safetensors.index.json");
  const std::string bin = join_path(dir, "pytorch_model.bin");
  if (file_exists(single)) return st::load_file(single);
  if (file_exists(index)) {
    const auto by_shard = parse_safetensors_index(read_text_file(index), index);
    st::NamedTensors out;
    for (auto& [shard, names] : by_shard) {
      st::SafetensorsFile f(join_path(dir, shard));
      for (auto& n : names) {
        if (!f.contains(n)) throw Error(join_path(dir, shard) + ": index says it holds '" + n + "' but it does not");
        out.emplace_back(n, f.load(n));
      }
    }
    return out;
  }
  if (file_exists(bin)) return read_pytorch_bin(bin);
  throw Error(dir + ": no weights found (expected model.safetensors, model.safetensors.index.json or pytorch_model.bin)");
}

namespace {

std::string normalise_name(std::string n) {
  auto replace_suffix = [&](const std::string& from, const std::string& to) {
    if (n.size() >= from.size() && n.compare(n.size() - from.size(), from.size(), from) == 0)
      n = n.substr(0, n.size() - from.size()) + to;
  };
  replace_suffix("LayerNorm.gamma", "LayerNorm.weight");
  replace_suffix("LayerNorm.beta", "LayerNorm.bias");
  return n;
}

}  // namespace

bool is_head_param(const std::string& name) {
  for (const char* head : {"classifier.", "pre_classifier.", "pooler.", "qa_outputs."})
    if (name.rfind(head, 0) == 0) return true;
  return name.find(".pooler.") != std::string::npos;
}

void load_into(torch::nn::Module& module, const st::NamedTensors& tensors, const std::string& source,
               bool allow_missing_heads, LoadReport& report) {
  auto params = module.named_parameters(/*recurse=*/true);
  auto buffers = module.named_buffers(true);
  // Which prefix does the module use for its encoder ("bert.", "roberta.", "distilbert.", "deberta.", "vit.")?
  std::string prefix;
  for (auto& p : params) {
    auto dot = p.key().find('.');
    if (dot == std::string::npos) continue;
    const std::string first = p.key().substr(0, dot);
    if (first == "bert" || first == "roberta" || first == "distilbert" || first == "deberta" || first == "vit") {
      prefix = first + ".";
      break;
    }
  }
  std::map<std::string, at::Tensor> by_name;
  for (auto& [n0, t] : tensors) {
    std::string n = normalise_name(n0);
    if (!prefix.empty() && !params.contains(n) && params.contains(prefix + n)) n = prefix + n;
    by_name[n] = t;
  }
  torch::NoGradGuard g;
  std::set<std::string> used;
  for (auto& p : params) {
    auto it = by_name.find(p.key());
    if (it == by_name.end()) {
      if (allow_missing_heads && is_head_param(p.key())) {
        report.newly_initialized.push_back(p.key());
        continue;
      }
      throw Error(source + ": missing weight '" + p.key() + "'");
    }
    if (it->second.sizes() != p.value().sizes())
      throw Error(source + ": shape mismatch for '" + p.key() + "': checkpoint has " +
                  c10::str(it->second.sizes()) + ", model expects " + c10::str(p.value().sizes()));
    if (!at::isFloatingType(it->second.scalar_type()))
      throw Error(source + ": weight '" + p.key() + "' has non-floating dtype " + c10::toString(it->second.scalar_type()));
    p.value().copy_(it->second);
    used.insert(p.key());
  }
  for (auto& b : buffers) {
    auto it = by_name.find(b.key());
    if (it != by_name.end() && it->second.sizes() == b.value().sizes()) b.value().copy_(it->second);
    used.insert(b.key());
  }
  for (auto& [n, _] : by_name)
    if (!used.count(n)) report.unexpected.push_back(n);
}

std::string resolve_model_dir(const std::string& name) {
  if (name != "use-lite") return name;
  const std::string d = use_lite_default_dir();
  if (!file_exists(join_path(d, "model.json")))
    throw Error("USE-lite is not in the cache (" + d + "): run `lorakit fetch-model use-lite` (or scripts/fetch-use-lite)");
  return d;
}

namespace {
// A TF.js USE-lite graph model directory (model.json + shards + vocab.json, no config.json).
LoadedModel load_use_lite_graph(const std::string& dir, const LoadOptions& opt) {
  LoadedModel lm;
  lm.dir = dir;
  const int64_t labels = opt.num_labels > 0 ? opt.num_labels : 2;
  lm.config = use_lite_model_config(labels, opt.sentence_pair ? opt.pair_mode : "single");
  if (opt.head == "question-answering") {
    lm.config.head = opt.head;
    lm.config.num_labels = 2;
    lm.config.pair_mode = "concat";
    lm.config.problem_type.clear();
  } else if (opt.regression) {
    if (labels != 1) throw Error("regression needs num_labels = 1");
    lm.config.problem_type = "regression";
  } else {
    lm.config.problem_type = "single_label_classification";
  }
  torch::manual_seed(opt.seed);
  lm.model = SequenceClassifier(lm.config);
  lm.model->init_weights();
  UseLiteModel pre = load_use_lite(dir);
  st::NamedTensors tensors;
  for (auto& p : pre->named_parameters(true)) tensors.emplace_back("use." + p.key(), p.value());
  for (auto& b : pre->named_buffers(true)) tensors.emplace_back("use." + b.key(), b.value());
  load_into(*lm.model, tensors, join_path(dir, "model.json"), /*allow_missing_heads=*/true, lm.report);
  for (auto& p : lm.model->named_parameters(true)) lm.source_dtypes[p.key()] = at::kFloat;
  return lm;
}
}  // namespace

std::string peek_model_type(const std::string& dir0) {
  const std::string dir = resolve_model_dir(dir0);
  if (!dir_exists(dir)) throw Error(dir + ": model directory does not exist");
  const std::string cfg = join_path(dir, "config.json");
  if (!file_exists(cfg) && file_exists(join_path(dir, "model.json"))) return "use-lite";
  return ModelConfig::from_file(cfg).model_type;
}

LoadedModel load_model(const std::string& dir0, const LoadOptions& opt) {
  const std::string dir = resolve_model_dir(dir0);
  if (!dir_exists(dir)) throw Error(dir + ": model directory does not exist");
  if (!file_exists(join_path(dir, "config.json")) && file_exists(join_path(dir, "model.json")))
    return load_use_lite_graph(dir, opt);
  LoadedModel lm;
  lm.dir = dir;
  lm.config = ModelConfig::from_file(join_path(dir, "config.json"));
  if (lm.config.model_type == "use-lite" && !opt.sentence_pair) lm.config.pair_mode = "single";
  if (!opt.head.empty() && opt.head != "sequence-classification" && opt.head != "question-answering")
    throw Error("unknown head '" + opt.head + "' (sequence-classification, question-answering)");
  if (!opt.head.empty()) lm.config.head = opt.head;
  if (lm.config.is_question_answering()) {
    lm.config.num_labels = 2;
    lm.config.id2label.clear();
    lm.config.problem_type.clear();
  } else if (opt.num_labels > 0 && opt.num_labels != lm.config.num_labels) {
    lm.config.num_labels = opt.num_labels;
    lm.config.id2label.clear();
  }
  if (!lm.config.is_question_answering()) {
    if (opt.regression) {
      if (lm.config.num_labels != 1) throw Error("regression needs num_labels = 1");
      lm.config.problem_type = "regression";
    } else if (lm.config.num_labels > 1) {
      lm.config.problem_type = "single_label_classification";
    }
  }
  st::NamedTensors tensors = read_checkpoint_tensors(dir);
  torch::manual_seed(opt.seed);
  lm.model = SequenceClassifier(lm.config);
  lm.model->init_weights();
  // A head whose shape differs from the checkpoint's (new num_labels) is re-initialised, as
  // transformers does with ignore_mismatched_sizes.
  auto params = lm.model->named_parameters(true);
  st::NamedTensors kept;
  for (auto& [n, t] : tensors) {
    if (is_head_param(n) && params.contains(n) && params[n].sizes() != t.sizes()) continue;
    kept.emplace_back(n, t);
  }
  for (auto& [n, t] : kept) lm.source_dtypes[normalise_name(n)] = t.scalar_type();
  load_into(*lm.model, kept, join_path(dir, "model weights"), /*allow_missing_heads=*/true, lm.report);
  // Where the file used bare encoder names, record dtypes under the model's names as well.
  for (auto& p : params)
    if (!lm.source_dtypes.count(p.key())) {
      auto bare = p.key().substr(p.key().find('.') + 1);
      auto it = lm.source_dtypes.find(bare);
      lm.source_dtypes[p.key()] = it != lm.source_dtypes.end() ? it->second : at::kFloat;
    }
  return lm;
}

void save_model(const SequenceClassifier& model, const ModelConfig& config, const std::string& dir,
                const std::map<std::string, at::ScalarType>& dtypes) {
  make_dirs(dir);
  st::NamedTensors out;
  for (auto& p : model->named_parameters(true)) {
    // Adapter parameters are not part of a base checkpoint.
    if (p.key().find(".lora_") != std::string::npos) continue;
    at::Tensor t = p.value().detach();
    auto it = dtypes.find(p.key());
    if (it != dtypes.end()) t = t.to(it->second);
    out.emplace_back(p.key(), t);
  }
  for (auto& b : model->named_buffers(true)) out.emplace_back(b.key(), b.value().detach());
  st::save_file(join_path(dir, "model.safetensors"), out, {{"format", "pt"}});
  write_text_atomically(join_path(dir, "config.json"), config.to_json_text());
}

void copy_tokenizer_files(const std::string& from_dir, const std::string& to_dir) {
  make_dirs(to_dir);
  for (const char* f : {"vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                        "vocab.json", "merges.txt", "spm.model", "added_tokens.json", "preprocessor_config.json"}) {
    const std::string src = join_path(from_dir, f);
    if (!file_exists(src)) continue;
    if (std::filesystem::equivalent(from_dir, to_dir)) return;
    write_text_atomically(join_path(to_dir, f), read_text_file(src));  // byte-exact (spm.model is binary)
  }
}

}  // namespace lorakit
