// predict (run_glue.py --do_predict) and tokenize (what a tokenizer makes of a text).
#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <array>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/errors.h"
#include "core/fileutil.h"
#include "core/runtime.h"
#include "tasks/glue/dataset.h"
#include "tasks/glue/task.h"
#include "text/tokenizer.h"
#include "train/trainer.h"

namespace lorakit::cli {
namespace {

void add_predict(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "predict", "Write a model's predictions for a GLUE TSV in GLUE's submission layout (index<TAB>prediction)");
  struct Opts {
    std::string model, adapter, input, out, logits, split = "test";
    std::string task = "mrpc", data;
    int64_t batch_size = 64, max_seq_len = 128;
    int threads = 0;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("--model", o->model, "model directory (base model with --adapter; default: the adapter's base)");
  cmd->add_option("--adapter", o->adapter, "PEFT LoRA adapter directory");
  cmd->add_option("--task", o->task, "GLUE task: cola sst2 mrpc stsb qqp mnli qnli rte wnli");
  auto* data_opt = cmd->add_option("--data", o->data, "GLUE root (holding MRPC/ ...) or the task's folder");
  cmd->add_option("--split", o->split, "with --data: which file of the task (test | dev | train)")
      ->check(CLI::IsMember({"test", "dev", "train"}));
  auto* input_opt = cmd->add_option("--input", o->input, "a TSV in the task's GLUE layout (labels optional)");
  data_opt->excludes(input_opt);
  cmd->add_option("--out", o->out, "predictions TSV to write")->required();
  cmd->add_option("--logits", o->logits, "also write the raw logits here, one JSON line per example");
  cmd->add_option("--batch-size", o->batch_size, "batch size");
  cmd->add_option("--max-seq-len", o->max_seq_len, "truncate pairs to this many tokens");
  cmd->add_option("--threads", o->threads, "LibTorch threads (0 = one per core)");
  cmd->callback([o] {
    if (o->data.empty() && o->input.empty()) throw Error("predict needs --data DIR or --input FILE");
    if (o->model.empty() && o->adapter.empty()) throw Error("predict needs --model DIR or --adapter DIR");
    if (o->batch_size <= 0) throw Error("--batch-size must be positive, got " + std::to_string(o->batch_size));
    DataOpts d;
    d.t.max_seq_len = o->max_seq_len;
    validate_data_flags(d);
    if (o->out == o->logits) throw Error("--out and --logits name the same file");
    configure_threads(o->threads);
    auto glue = make_glue_task(o->task);
    const auto& task = data::glue_task(o->task);
    std::string path = o->input;
    if (path.empty()) {
      const std::string file = o->split == "train" ? task.train_file
                               : o->split == "dev" ? task.eval_files.at(0)
                                                   : std::string("test.tsv");
      try {
        path = glue_task_file(o->data, task, o->split == "test" && task.name == "mnli" ? "test_matched.tsv" : file);
      } catch (const Error& e) {
        throw Error(std::string(e.what()) + (o->split == "test" ? "; use --split dev to predict the dev set" : ""));
      }
    }
    LoadedForEval m = load_with_adapter(o->model, o->adapter, glue.get());
    o->max_seq_len = effective_seq_len(m.lm.config, o->max_seq_len);
    auto tok = load_text_tokenizer(m.lm.dir);
    auto examples = read_glue_subset(task, path, -1, false, 0, data::LabelMode::Auto);
    EncodedDataset ds(examples, *tok, static_cast<size_t>(o->max_seq_len), task.is_regression,
                      /*allow_unlabeled=*/true);
    m.lm.model->prune_last_layer = m.lm.model->supports_last_layer_pruning();  // the same logits, fewer FLOPs
    at::Tensor logits = predict_logits(m.lm.model, ds, o->batch_size);
    const int64_t n = logits.size(0), c = logits.size(1);
    auto acc = logits.accessor<float, 2>();

    // The predicted class as evaluate() takes it (argmax over the logits).
    const at::Tensor best = task.is_regression ? at::zeros({n}, at::kLong) : logits.argmax(1);
    auto best_acc = best.accessor<int64_t, 1>();
    std::ostringstream tsv;
    tsv << "index\tprediction\n";
    for (int64_t i = 0; i < n; ++i) {
      if (task.is_regression)
        tsv << fmt::format("{}\t{:.3f}\n", i, acc[i][0]);
      else
        tsv << i << '\t' << task.label_names.at(static_cast<size_t>(best_acc[i])) << '\n';
    }
    std::string jsonl;
    if (!o->logits.empty()) {
      for (int64_t i = 0; i < n; ++i) {
        nlohmann::json j;
        j["index"] = i;
        std::vector<double> row(static_cast<size_t>(c));
        for (int64_t k = 0; k < c; ++k) row[static_cast<size_t>(k)] = acc[i][k];
        j["logits"] = row;
        jsonl += j.dump() + "\n";
      }
    }
    write_text_atomically(o->out, tsv.str());
    if (!o->logits.empty()) write_text_atomically(o->logits, jsonl);
    fmt::print(stderr, "lorakit predict: {} examples of {} → {}{}\n", n, path, o->out,
               o->logits.empty() ? "" : " (logits: " + o->logits + ")");
  });
}

void add_tokenize(CLI::App& app) {
  auto* cmd = app.add_subcommand("tokenize", "Print a model's tokenization of texts: one JSON line each with ids, "
                                             "tokens and character offsets");
  struct Opts {
    std::string model, input;
    std::vector<std::string> texts;
    bool no_special = false;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("--model", o->model, "model directory (its tokenizer files), or use-lite")->required();
  auto* text_opt = cmd->add_option("--text", o->texts, "a text to tokenize (repeatable)");
  auto* input_opt = cmd->add_option("--input", o->input, "a file of texts, one per line (- for standard input)");
  text_opt->excludes(input_opt);
  cmd->add_flag("--no-special-tokens", o->no_special, "leave out [CLS] / [SEP] (add_special_tokens=False)");
  cmd->callback([o] {
    if (o->texts.empty() && o->input.empty()) throw Error("tokenize needs --text STR or --input FILE");
    const std::string dir = resolve_model_dir(o->model);
    if (!dir_exists(dir)) throw Error(dir + ": model directory does not exist");
    auto tok = load_text_tokenizer(dir);
    std::vector<std::string> texts = o->texts;
    if (!o->input.empty()) {
      std::string all;
      if (o->input == "-") {
        std::ostringstream ss;
        ss << std::cin.rdbuf();
        all = ss.str();
      } else {
        all = read_text_file(o->input);
      }
      std::string line;
      std::istringstream is(all);
      while (std::getline(is, line)) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        texts.push_back(line);
      }
    }
    for (const auto& t : texts) {
      std::vector<text::Token> toks;
      if (!o->no_special) toks = tok->special_prefix();
      for (auto& x : tok->tokenize_with_offsets(t)) toks.push_back(std::move(x));
      if (!o->no_special)
        for (auto& x : tok->special_suffix()) toks.push_back(std::move(x));
      nlohmann::ordered_json j;
      j["text"] = t;
      std::vector<int64_t> ids;
      std::vector<std::string> names;
      std::vector<std::array<size_t, 2>> offsets;
      for (auto& x : toks) {
        ids.push_back(x.id);
        names.push_back(x.text);
        offsets.push_back({x.start, x.end});
      }
      j["ids"] = ids;
      j["tokens"] = names;
      j["offsets"] = offsets;
      fmt::print("{}\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    }
  });
}

}  // namespace

void register_predict_commands(CLI::App& app) {
  add_predict(app);
  add_tokenize(app);
}

}  // namespace lorakit::cli
