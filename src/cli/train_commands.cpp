// train / eval / merge / inspect.
#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdlib>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "cli/commands.h"
#include "cli/common.h"
#include "cli/launch.h"
#include "core/errors.h"
#include "core/fileutil.h"
#include "core/precision.h"
#include "core/runtime.h"
#include "core/safetensors.h"
#include "models/checkpoint.h"
#include "tasks/task.h"
#include "text/tokenizer.h"
#include "train/dist.h"
#include "train/trainer.h"
#include "tuners/lora/diagnostics.h"
#include "tuners/adalora/model.h"
#include "tuners/lora/model.h"
#include "tuners/registry.h"

namespace lorakit::cli {
namespace {

// "layer.2" before "layer.10": digit runs compare as numbers.
bool natural_less(const std::string& a, const std::string& b) {
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (std::isdigit(static_cast<unsigned char>(a[i])) && std::isdigit(static_cast<unsigned char>(b[j]))) {
      size_t i2 = i, j2 = j;
      while (i2 < a.size() && std::isdigit(static_cast<unsigned char>(a[i2]))) ++i2;
      while (j2 < b.size() && std::isdigit(static_cast<unsigned char>(b[j2]))) ++j2;
      const std::string x = a.substr(i, i2 - i), y = b.substr(j, j2 - j);
      if (x.size() != y.size()) return x.size() < y.size();
      if (x != y) return x < y;
      i = i2;
      j = j2;
    } else {
      if (a[i] != b[j]) return a[i] < b[j];
      ++i;
      ++j;
    }
  }
  return a.size() - i < b.size() - j;
}

// "KEY=V,KEY=V" → [(KEY, V)] for --rank-pattern / --alpha-pattern; `parse` reads V (std::stoll / std::stod).
template <class T, class Parse>
std::vector<std::pair<std::string, T>> parse_pattern(const std::string& spec, const std::string& flag,
                                                     const std::string& what, Parse parse) {
  std::vector<std::pair<std::string, T>> out;
  for (auto& kv : split_csv(spec)) {
    const auto eq = kv.rfind('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == kv.size())
      throw Error(flag + ": '" + kv + "' is not KEY=VALUE");
    const std::string k = kv.substr(0, eq), v = kv.substr(eq + 1);
    try {
      size_t used = 0;
      out.emplace_back(k, parse(v, &used));
      if (used != v.size()) throw std::invalid_argument(v);
    } catch (const std::exception&) {
      throw Error(flag + ": '" + v + "' (for '" + k + "') is not " + what);
    }
  }
  return out;
}

// The flags that decide a run, name → value as given (or the default), for --resume's check. Flags that
// only say how to run it (--out, --threads, --no-progress, --save-steps, --resume) may differ.
// defaults_only: every such flag's default, whatever was given.
nlohmann::json run_flags_of(const CLI::App& cmd, bool defaults_only = false) {
  static const std::set<std::string> free = {"--help",        "--out",       "--threads",       "--no-progress",
                                             "--save-steps",  "--resume",    "--nproc",         "--rank",
                                             "--world-size",  "--master-addr", "--master-port", "--dist-timeout"};
  nlohmann::json j = nlohmann::json::object();
  for (const CLI::Option* opt : cmd.get_options()) {
    if (opt->get_lnames().empty()) continue;
    const std::string name = "--" + opt->get_lnames().front();
    if (free.count(name)) continue;
    std::string v;
    if (opt->count() && !defaults_only) {
      for (auto& r : opt->results()) v += (v.empty() ? "" : ",") + r;
    } else {
      v = opt->get_default_str();
    }
    j[name] = v;
  }
  return j;
}

void add_train(CLI::App& app) {
  auto* cmd = app.add_subcommand("train", "Fine-tune a model on a task (GLUE, SQuAD, image classification)");
  cmd->option_defaults()->always_capture_default();  // run_flags_of reads the defaults
  struct Opts {
    std::string model, out, method = "lora", targets, target_regex, modules_to_save;
    std::string init = "kaiming", pair_mode = "bi-encoder", rank_pattern, alpha_pattern;
    std::string precision = default_precision();
    int64_t r = 8;
    double alpha = 16, lora_dropout = 0.0;
    bool rslora = false, no_progress = false, no_group = false;
    int threads = 0;
    int nproc = 1;
    DistOptions dist{-1, -1, "", -1, 300};
    DataOpts d;
    TrainConfig t;
  };
  auto o = std::make_shared<Opts>();
  auto extra = std::make_shared<nlohmann::json>(nlohmann::json::object());
  cmd->add_option("--model", o->model, "model directory (Hugging Face layout)")->required();
  cmd->add_option("--out", o->t.out_dir, "output directory")->required();
  add_data_flags(cmd, o->d, true);
  std::string methods;
  for (auto& n : method_names()) methods += (methods.empty() ? "" : " | ") + n;
  cmd->add_option("--method", o->method, methods);
  cmd->add_option("--r", o->r, "LoRA rank");
  cmd->add_option("--alpha", o->alpha, "LoRA alpha (scaling = alpha / r)");
  cmd->add_option("--lora-dropout", o->lora_dropout, "dropout on the LoRA branch input");
  auto* targets_opt = cmd->add_option("--target-modules", o->targets,
                                      "comma-separated module-name suffixes (default: the family's query and value "
                                      "projections, as PEFT: query,value; q_lin,v_lin; query_proj,value_proj)");
  cmd->add_option("--target-regex", o->target_regex, "regex matched against the whole module path (overrides --target-modules)");
  auto* mts_opt = cmd->add_option("--modules-to-save", o->modules_to_save,
                                  "comma-separated modules trained in full (default: the family's task head: classifier; "
                                  "pre_classifier,classifier for DistilBERT; pooler,classifier for DeBERTa)");
  cmd->add_flag("--rslora", o->rslora, "scaling = alpha / sqrt(r)");
  cmd->add_option("--rank-pattern", o->rank_pattern,
                  "per-module ranks, KEY=R,... (PEFT rank_pattern: KEY is a module-name suffix or regex)");
  cmd->add_option("--alpha-pattern", o->alpha_pattern, "per-module alphas, KEY=ALPHA,... (PEFT alpha_pattern)");
  cmd->add_option("--pair-mode", o->pair_mode, "USE-lite sentence pairs: bi-encoder | concat")
      ->check(CLI::IsMember({"bi-encoder", "concat"}));
  cmd->add_option("--init", o->init, "LoRA A init: kaiming | gaussian");
  cmd->add_option("--epochs", o->t.epochs, "epochs");
  cmd->add_option("--max-steps", o->t.max_steps, "stop after N optimizer steps (overrides --epochs)");
  cmd->add_option("--lr", o->t.lr, "peak learning rate");
  cmd->add_option("--batch-size", o->t.batch_size, "training batch size");
  cmd->add_option("--eval-batch-size", o->t.eval_batch_size, "evaluation batch size");
  cmd->add_option("--weight-decay", o->t.weight_decay, "AdamW weight decay (not on biases / LayerNorm)");
  cmd->add_option("--warmup-ratio", o->t.warmup_ratio, "linear warm-up fraction of all steps");
  cmd->add_option("--warmup-steps", o->t.warmup_steps, "linear warm-up steps (overrides --warmup-ratio)");
  cmd->add_option("--max-grad-norm", o->t.max_grad_norm, "gradient clipping (0 = off)");
  cmd->add_option("--seed", o->t.seed, "random seed (init, shuffling, dropout)");
  cmd->add_option("--max-bad-steps", o->t.max_bad_steps,
                  "steps in a row with a non-finite loss or gradient that are skipped before the run stops (default 10)");
  cmd->add_option("--save-steps", o->t.save_steps,
                  "write a training checkpoint (<out>/checkpoint/) every N optimizer steps (0: only at epoch ends, "
                  "which always get one)");
  cmd->add_option("--logging-steps", o->t.logging_steps,
                  "every N optimizer steps, a line {step, epoch, loss, lr, skipped} in <out>/steps.jsonl (0: none)");
  auto* precision_opt = cmd->add_option(
      "--precision", o->precision,
      "auto | fp32 | bf16: the model's forward in bf16 autocast (GEMMs in bf16; parameters, gradients, AdamW "
      "and the loss in fp32) or fp32; auto (default, or $LORAKIT_PRECISION): bf16 on a CPU with AVX512-BF16 or "
      "AMX, fp32 elsewhere (lorakit env: isa); bf16 is refused without them");
  cmd->add_flag("--bf16", o->t.bf16, "--precision bf16");
  cmd->add_option("--cache-frozen-prefix", o->t.cache_frozen_prefix,
                  "auto | on | off: run the frozen, deterministic stages below the lowest trainable module once per "
                  "row and train on their cached output (auto: when that skips an encoder layer, no dropout there, "
                  "within --cache-max-mb; on: also with dropout there, as in eval mode)")
      ->check(CLI::IsMember({"auto", "on", "off"}));
  cmd->add_option("--cache-max-mb", o->t.cache_max_mb, "memory bound of the frozen-prefix cache, MiB (default 2048)");
  cmd->add_flag("!--no-prune-last-layer", o->t.prune_last_layer,
                "compute the last encoder layer at every position (default: at the first alone, the one the head "
                "reads: the same logits, fewer FLOPs; BERT, RoBERTa, DistilBERT, ViT; never for GR-LoRA)");
  cmd->add_flag("--resume", o->t.resume,
                "continue the run from <out>/checkpoint/ (same flags as the run that wrote it); ends bit-identical "
                "to the run never interrupted");
  cmd->add_option("--threads", o->threads, "LibTorch threads (0 = one per core; one per rank with --nproc)");
  cmd->add_option("--nproc", o->nproc,
                  "data-parallel ranks on this machine (c10d Gloo): each takes its slice of every batch; "
                  "docs/distributed.md")
      ->check(CLI::Range(1, 256));
  cmd->add_option("--rank", o->dist.rank, "this process's rank in a multi-host run (default: $RANK)");
  cmd->add_option("--world-size", o->dist.world_size, "ranks of a multi-host run (default: $WORLD_SIZE)");
  cmd->add_option("--master-addr", o->dist.master_addr, "rank 0's address (default: $MASTER_ADDR, 127.0.0.1)");
  cmd->add_option("--master-port", o->dist.master_port, "rank 0's store port (default: $MASTER_PORT, 29500)");
  cmd->add_option("--dist-timeout", o->dist.timeout_seconds,
                  "seconds after which a rank that died or hangs makes every other rank fail (default 300)");
  cmd->add_flag("--no-progress", o->no_progress, "no progress bar");
  cmd->add_flag("--no-group-by-length", o->no_group, "plain shuffled batches");
  add_method_flags(*cmd, extra);
  cmd->callback([cmd, o, extra, targets_opt, mts_opt, precision_opt] {
    // The precision first: a refusal (bf16 on a CPU without it, an unknown value) names where the value came
    // from and comes before anything is read or any rank is started.
    std::string precision_why;
    {
      std::string source = precision_opt->count() ? "--precision" : "LORAKIT_PRECISION";
      if (o->t.bf16) {  // --bf16
        if (precision_opt->count() && o->precision != "bf16")
          throw Error("--bf16 contradicts --precision " + o->precision);
        o->precision = "bf16";
        source = "--bf16";
      } else if (!precision_opt->count() && o->precision == "auto") {
        source = "--precision";
      }
      const PrecisionChoice pc = resolve_precision(o->precision, source);
      o->t.bf16 = pc.bf16;
      precision_why = pc.why;
    }
    // Everything the flags alone can tell is checked before any file is read.
    o->t.validate();
    validate_data_flags(o->d);
    // --nproc N on one machine: this process only starts and watches the ranks.
    if (o->nproc > 1 && !std::getenv("RANK")) throw ExitWith{launch_local_ranks(o->nproc, o->dist.timeout_seconds)};
    DistOptions dopt = dist_options_from_env(DistOptions{});
    if (o->dist.rank >= 0) dopt.rank = o->dist.rank;
    if (o->dist.world_size >= 0) dopt.world_size = o->dist.world_size;
    if (!o->dist.master_addr.empty()) dopt.master_addr = o->dist.master_addr;
    if (o->dist.master_port >= 0) dopt.master_port = o->dist.master_port;
    dopt.timeout_seconds = o->dist.timeout_seconds;
    std::unique_ptr<Dist> dist;
    if (dopt.world_size > 1) {
      configure_threads(o->threads > 0 ? o->threads : 1);
      dist = std::make_unique<Dist>(dopt);
      o->t.dist = dist.get();
      // Every rank resolved the precision on its own CPU (auto differs across hosts with and without bf16
      // instructions): all of them must compute in the same one, so a mix is refused on every rank.
      const int64_t n_bf16 = dist->sum(static_cast<int64_t>(o->t.bf16 ? 1 : 0));
      if (n_bf16 != 0 && n_bf16 != dopt.world_size)
        throw Error(fmt::format("precision: {} of the {} ranks chose bf16 and the others fp32 (their flags differ, "
                                "or auto resolved on CPUs that differ); pass the same --precision fp32 or bf16 to "
                                "every rank",
                                n_bf16, dopt.world_size));
    } else {
      configure_threads(o->threads);
    }
    const bool rank0 = dopt.rank == 0 || dopt.world_size <= 1;
    o->t.progress = !o->no_progress && rank0;
    o->t.group_by_length = !o->no_group;
    o->t.run_flags = run_flags_of(*cmd);  // the precision as resolved is added by the trainer, not its spelling
    o->t.run_flags.erase("--precision");
    o->t.run_flags.erase("--bf16");
    o->t.run_flag_defaults = run_flags_of(*cmd, /*defaults_only=*/true);
    if (rank0 && o->precision == "auto")
      fmt::print(stderr, "lorakit: precision {} ({}; --precision fp32|bf16 chooses)\n", o->t.bf16 ? "bf16" : "fp32",
                 precision_why);
    auto task = make_task(o->d.task);
    task->prepare(o->d.t);
    task->resolve_files(o->d.t);  // missing files: an error before any model is read
    MethodOptions mo;
    mo.lora.r = o->r;
    mo.lora.lora_alpha = o->alpha;
    mo.lora.lora_dropout = o->lora_dropout;
    // Where the flags are not given, the family's defaults (config.json's model_type) apply; BERT's
    // stand in until the model directory is read, so that flags alone are checked first.
    ModelConfig family;
    mo.lora.target_modules = targets_opt->count() ? split_csv(o->targets) : family.default_lora_targets();
    mo.lora.target_regex = o->target_regex;
    mo.lora.modules_to_save = mts_opt->count() ? split_csv(o->modules_to_save) : family.head_modules();
    mo.lora.use_rslora = o->rslora;
    mo.lora.init_lora_weights = o->init;
    mo.lora.rank_pattern = parse_pattern<int64_t>(o->rank_pattern, "--rank-pattern", "an integer rank",
                                                  [](const std::string& v, size_t* used) { return std::stoll(v, used); });
    mo.lora.alpha_pattern = parse_pattern<double>(o->alpha_pattern, "--alpha-pattern", "a number",
                                                  [](const std::string& v, size_t* used) { return std::stod(v, used); });
    mo.extra = *extra;
    auto method = make_method(o->method, mo);

    const std::string model_dir = resolve_model_dir(o->model);
    if (!targets_opt->count() || !mts_opt->count()) {
      family.model_type = peek_model_type(model_dir);
      if (!targets_opt->count() && o->target_regex.empty()) mo.lora.target_modules = family.default_lora_targets();
      if (!mts_opt->count()) mo.lora.modules_to_save = family.head_modules();
      method = make_method(o->method, mo);
    }
    LoadOptions lo;
    lo.seed = o->t.seed;
    task->head_options(lo);
    lo.pair_mode = o->pair_mode;
    LoadedModel lm = load_model(model_dir, lo);
    task->check_model(lm);
    if (!mts_opt->count() && lm.config.head != family.head) {
      // The task's head decides the default modules_to_save (qa_outputs for span QA).
      mo.lora.modules_to_save = lm.config.head_modules();
      method = make_method(o->method, mo);
    }
    TaskOptions to = o->d.t;
    to.max_seq_len = effective_seq_len(lm.config, to.max_seq_len);
    auto train_ds = task->load(Split::Train, lm, to);
    auto eval_ds = task->load(Split::Eval, lm, to);
    if (rank0)
      for (auto& n : to.notes) fmt::print(stderr, "lorakit train: {}\n", n);
    torch::manual_seed(o->t.seed);
    method->attach(lm.model);
    if (rank0)
      fmt::print(stderr, "lorakit train: {} on {} ({} train / {} eval rows), {} trainable of {} parameters{}\n",
                 o->method, task->name(), train_ds->size(), eval_ds->size(), count_trainable(*lm.model),
                 count_all(*lm.model), dist ? fmt::format(", {} data-parallel ranks", dopt.world_size) : "");
    TrainResult r = train(lm, *method, *task, *train_ds, *eval_ds, o->t);
    if (rank0) fmt::print("{}\n", r.summary.dump(2));
  });
}

void add_eval(CLI::App& app) {
  auto* cmd = app.add_subcommand("eval", "Evaluate a model (optionally with a LoRA adapter) on a task");
  struct Opts {
    std::string model, adapter, out;
    int64_t batch_size = 64;
    int threads = 0;
    DataOpts d;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("--model", o->model, "base model directory (default: the adapter's base_model_name_or_path)");
  cmd->add_option("--adapter", o->adapter, "PEFT LoRA adapter directory");
  cmd->add_option("--out", o->out, "write the metrics JSON here too");
  cmd->add_option("--batch-size", o->batch_size, "evaluation batch size");
  cmd->add_option("--threads", o->threads, "LibTorch threads (0 = one per core)");
  add_data_flags(cmd, o->d, false);
  cmd->callback([o] {
    validate_data_flags(o->d);
    if (o->batch_size <= 0) throw Error("--batch-size must be positive, got " + std::to_string(o->batch_size));
    configure_threads(o->threads);
    auto task = make_task(o->d.task);
    task->prepare(o->d.t);
    task->resolve_files(o->d.t, /*need_train=*/false);  // missing files: an error before any model is read
    LoadedForEval m = load_with_adapter(o->model, o->adapter, task.get());
    TaskOptions to = o->d.t;
    to.max_seq_len = effective_seq_len(m.lm.config, to.max_seq_len);
    auto ds = task->load(Split::Eval, m.lm, to);
    m.lm.model->prune_last_layer = m.lm.model->supports_last_layer_pruning();  // the same logits, fewer FLOPs
    EvalResult r = evaluate(m.lm.model, *task, *ds, o->batch_size);
    nlohmann::ordered_json j;
    j["task"] = task->name();
    j["data"] = to.notes;
    j["examples"] = ds->size();
    j["eval_loss"] = r.loss;
    j["eval_accuracy"] = r.accuracy;
    for (auto& [k, v] : r.metrics) j["eval_" + k] = v;
    j["seconds"] = r.seconds;
    if (!o->out.empty()) write_text_atomically(o->out, j.dump(2) + "\n");
    fmt::print("{}\n", j.dump(2));
  });
}

void add_merge(CLI::App& app) {
  auto* cmd = app.add_subcommand("merge", "Merge a LoRA adapter into its base model and write a full checkpoint");
  struct Opts {
    std::string model, adapter, out;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("--model", o->model, "base model directory (default: the adapter's base_model_name_or_path)");
  cmd->add_option("--adapter", o->adapter, "PEFT LoRA adapter directory")->required();
  cmd->add_option("--out", o->out, "output model directory")->required();
  cmd->callback([o] {
    LoadedForEval m = load_with_adapter(o->model, o->adapter, nullptr);
    merge_and_unload(m.lm.model);
    save_model(m.lm.model, m.lm.config, o->out, m.lm.source_dtypes);
    copy_tokenizer_files(m.lm.dir, o->out);
    fmt::print("merged {} into {} → {}\n", o->adapter, m.lm.dir, o->out);
  });
}

void add_inspect(CLI::App& app) {
  auto* cmd = app.add_subcommand("inspect", "Parameter counts of a model or adapter directory");
  auto dir = std::make_shared<std::string>();
  auto as_json = std::make_shared<bool>(false);
  cmd->add_option("dir", *dir, "model or adapter directory")->required();
  cmd->add_flag("--json", *as_json, "print JSON");
  cmd->callback([dir, as_json] {
    nlohmann::ordered_json j;
    j["dir"] = *dir;
    const std::string adapter_cfg = join_path(*dir, "adapter_config.json");
    if (file_exists(adapter_cfg)) {
      const bool ada = adapter_peft_type(*dir) == "ADALORA";
      AdaLoraConfig ac;
      LoraConfig lc = ada ? (ac = read_adalora_config(*dir, nullptr)).lora : read_adapter_config(*dir);
      const nlohmann::json extra = read_adapter_extra(*dir);
      st::SafetensorsFile f(join_path(*dir, "adapter_model.safetensors"));
      // Per module: A, B (and AdaLoRA's E), keyed by module path; everything else is the head.
      const std::vector<std::string> suffixes =
          ada ? std::vector<std::string>{".lora_A", ".lora_B", ".lora_E"}
              : std::vector<std::string>{".lora_A.weight", ".lora_B.weight"};
      std::map<std::string, std::array<at::Tensor, 3>> factors;
      int64_t lora = 0, head = 0;
      const std::string prefix = kAdapterKeyPrefix;
      for (auto& k : f.keys()) {
        int64_t n = 1;
        for (auto d : f.info(k).shape) n *= d;
        std::string name = k.rfind(prefix, 0) == 0 ? k.substr(prefix.size()) : k;
        bool matched = false;
        for (size_t w = 0; w < suffixes.size() && !matched; ++w) {
          const std::string& sfx = suffixes[w];
          if (name.size() > sfx.size() && name.compare(name.size() - sfx.size(), sfx.size(), sfx) == 0) {
            factors[name.substr(0, name.size() - sfx.size())][w] = f.load(k);
            lora += n;
            matched = true;
          }
        }
        if (!matched && name.find(".ranknum") == std::string::npos) head += n;
      }
      j["kind"] = "adapter";
      j["peft_type"] = ada ? "ADALORA" : "LORA";
      j["method"] = extra.value("method", std::string(ada ? "adalora" : "lora"));
      if (ada) {
        j["init_r"] = ac.init_r;
        j["target_r"] = ac.target_r;
      } else {
        j["r"] = lc.r;
      }
      if (!lc.rank_pattern.empty()) {
        nlohmann::ordered_json rp;
        for (auto& [k, v] : lc.rank_pattern) rp[k] = v;
        j["rank_pattern"] = rp;
      }
      if (!lc.alpha_pattern.empty()) {
        nlohmann::ordered_json ap;
        for (auto& [k, v] : lc.alpha_pattern) ap[k] = v;
        j["alpha_pattern"] = ap;
      }
      j["lora_alpha"] = lc.lora_alpha;
      j["adapted_modules"] = factors.size();
      // ΔW diagnostics (seed 001 Table 4) from the adapter's own factors; no base model needed.
      std::vector<std::pair<std::string, LoraModuleDiagnostics>> diags;
      int64_t trained = 0, kept = 0;
      nlohmann::ordered_json final_ranks;
      for (auto& [path, t] : factors) {
        if (!t[0].defined() || !t[1].defined() || (ada && !t[2].defined()))
          throw Error(*dir + ": module '" + path + "' lacks one of its " + (ada ? "lora_A / lora_B / lora_E" : "lora_A / lora_B") +
                      " tensors");
        const int64_t in = t[0].size(1), out = t[1].size(0);
        if (ada) {
          // ranknum = init_r (PEFT keeps it after pruning), as the loaded layer has it.
          const double s = adalora_scaling(lc.lora_alpha, t[0].size(0), static_cast<double>(ac.init_r));
          trained += ac.init_r * (in + out + 1);
          kept += t[0].size(0) * (in + out + 1);
          final_ranks[path] = t[0].size(0);
          if (t[0].size(0) > 0) diags.emplace_back(path, lora_module_diagnostics(t[0] * t[2], t[1], s));
        } else {
          diags.emplace_back(path, lora_module_diagnostics(t[0], t[1], lc.resolve(path).scaling));
        }
      }
      if (!ada) trained = kept = lora;
      if (extra.contains("sora") && extra["sora"].contains("kept_ranks") && extra["sora"].contains("initial_r")) {
        // A SoRA export: the file keeps only the non-zero gates (folded into B); T counts what trained
        // (initial_r directions + their gates), I what is left.
        const int64_t r0 = extra["sora"]["initial_r"].get<int64_t>();
        int64_t kept_rank = 0, gates = 0;
        trained = kept = 0;
        for (auto& [path, t] : factors) {
          const int64_t in = t[0].size(1), out = t[1].size(0);
          const int64_t k = extra["sora"]["kept_ranks"].value(path, static_cast<int64_t>(t[0].size(0)));
          trained += r0 * (in + out + 1);
          kept += k * (in + out);
          kept_rank += k;
          gates += r0;
        }
        j["sora_initial_r"] = r0;
        j["sora_kept_rank"] = kept_rank;
        j["sora_sparsity"] = gates > 0 ? 1.0 - static_cast<double>(kept_rank) / static_cast<double>(gates) : 0.0;
      }
      if (ada) j["final_ranks"] = final_ranks;
      j["lora_params"] = lora;
      j["head_params"] = head;
      j["trainable_params"] = trained + head;
      j["inference_params"] = kept + head;
      j["t_i_params"] = fmt::format("{} / {}", trained + head, kept + head);  // seed 001's "# T / I-Params"
      std::sort(diags.begin(), diags.end(), [](const auto& a, const auto& b) { return natural_less(a.first, b.first); });
      const nlohmann::ordered_json dj = diagnostics_json(diags, /*per_module=*/true);
      for (auto& [k, v] : dj.items()) j[k] = v;
    } else {
      ModelConfig c = ModelConfig::from_file(join_path(*dir, "config.json"));
      auto tensors = read_checkpoint_tensors(*dir);
      int64_t total = 0;
      for (auto& [_, t] : tensors) total += t.numel();
      j["kind"] = "model";
      j["model_type"] = c.model_type;
      j["layers"] = c.num_hidden_layers;
      j["hidden_size"] = c.hidden_size;
      j["num_labels"] = c.num_labels;
      j["tensors"] = tensors.size();
      j["params"] = total;
      j["trainable_params"] = total;  // full fine-tuning trains all of them
      j["inference_params"] = total;
    }
    if (*as_json) {
      fmt::print("{}\n", j.dump(2));
    } else {
      for (auto& [k, v] : j.items()) {
        if (k == "lora_modules") continue;  // printed as a table below
        fmt::print("{:<22} {}\n", k, v.is_string() ? v.get<std::string>() : v.dump());
      }
      if (j.contains("lora_modules")) {
        fmt::print("\n{:<48} {:>11} {:>4} {:>5} {:>11} {:>13} {:>11} {:>11}\n", "module", "shape", "r", "rank",
                   "sigma_max", "|dWdWt-I|^2", "|AAt-I|^2", "|BtB-I|^2");
        for (auto& [path, e] : j["lora_modules"].items())
          fmt::print("{:<48} {:>11} {:>4} {:>5} {:>11.4g} {:>13.6g} {:>11.6g} {:>11.6g}\n", path,
                     fmt::format("{}x{}", e["shape"][0].get<int64_t>(), e["shape"][1].get<int64_t>()),
                     e["r"].get<int64_t>(), e["rank"].get<int64_t>(), e["sigma_max"].get<double>(),
                     e["dw_orth_loss"].get<double>(), e["a_orth_loss"].get<double>(), e["b_orth_loss"].get<double>());
      }
    }
  });
}

}  // namespace

void register_training_commands(CLI::App& app) {
  add_train(app);
  add_eval(app);
  add_merge(app);
  add_inspect(app);
}

}  // namespace lorakit::cli
