// Training-step benchmark on a randomly initialised BERT-shaped model (BERT-base by default).
//
//   build/bench_step --method lora --steps 5            # LoRA r=8 on query,value, batch 32, seq 128
//   build/bench_step --method full --layers 2
//   build/bench_step --method gr-lora --opt gr_penalty=naive
//
// Prints mean / min ms per optimizer step (after --warmup steps) and the process's peak RSS. Run one
// method per process so that peak RSS belongs to that method.
#include <sys/resource.h>

#include <chrono>
#include <CLI/CLI.hpp>
#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "core/runtime.h"
#include "train/trainer.h"
#include "tuners/registry.h"

using namespace lorakit;

int main(int argc, char** argv) {
  ensure_blas_environment(argc, argv);
  CLI::App app{"lorakit training-step benchmark"};
  std::string method = "lora", targets = "query,value";
  int64_t layers = 12, hidden = 768, heads = 12, inter = 3072, vocab = 30522, batch = 32, seq = 128, r = 8;
  int steps = 5, warmup = 1, threads = 0;
  std::vector<std::string> opts;
  bool json_out = false, stats = false;
  app.add_option("--method", method);
  app.add_option("--layers", layers);
  app.add_option("--hidden", hidden);
  app.add_option("--heads", heads);
  app.add_option("--intermediate", inter);
  app.add_option("--vocab", vocab);
  app.add_option("--batch", batch);
  app.add_option("--seq", seq);
  app.add_option("--r", r);
  app.add_option("--target-modules", targets);
  app.add_option("--steps", steps);
  app.add_option("--warmup", warmup);
  app.add_option("--threads", threads);
  app.add_option("--opt", opts, "method option key=value (repeatable), as MethodOptions::extra");
  app.add_flag("--json", json_out);
  app.add_flag("--stats", stats, "then print the method's epoch_stats() as JSON (gr-lora: --opt gr_profile=true adds per-phase ms)");
  CLI11_PARSE(app, argc, argv);
  configure_threads(threads);

  ModelConfig c;
  c.vocab_size = vocab;
  c.hidden_size = hidden;
  c.num_hidden_layers = layers;
  c.num_attention_heads = heads;
  c.intermediate_size = inter;
  c.num_labels = 2;
  torch::manual_seed(0);
  SequenceClassifier model(c);
  model->init_weights();

  MethodOptions mo;
  mo.lora.r = r;
  mo.lora.lora_alpha = 2.0 * r;
  mo.lora.target_modules.clear();
  for (size_t p = 0, q; p <= targets.size(); p = q + 1) {
    q = targets.find(',', p);
    if (q == std::string::npos) q = targets.size();
    if (q > p) mo.lora.target_modules.push_back(targets.substr(p, q - p));
  }
  for (auto& kv : opts) {
    auto eq = kv.find('=');
    if (eq == std::string::npos) {
      fmt::print(stderr, "--opt expects key=value, got '{}'\n", kv);
      return 2;
    }
    std::string k = kv.substr(0, eq), v = kv.substr(eq + 1);
    try {
      mo.extra[k] = nlohmann::json::parse(v);
    } catch (...) {
      mo.extra[k] = v;
    }
  }
  auto m = make_method(method, mo);
  m->attach(model);

  TrainConfig tc;
  tc.lr = 1e-4;
  StepRunner runner(model, *m, tc, warmup + steps, 0);
  torch::manual_seed(1);
  Batch b;
  b.input_ids = at::randint(1000, vocab, {batch, seq}, at::kLong);
  b.attention_mask = at::ones({batch, seq}, at::kLong);
  b.token_type_ids = at::zeros({batch, seq}, at::kLong);
  b.labels = at::randint(0, 2, {batch}, at::kLong);

  std::vector<double> ms;
  for (int i = 0; i < warmup + steps; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    runner.step(b, false, 1);
    double t = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (i >= warmup) ms.push_back(t);
  }
  double mean = 0, mn = 1e300;
  for (double t : ms) {
    mean += t / ms.size();
    mn = std::min(mn, t);
  }
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  const double rss_mib = ru.ru_maxrss / 1024.0;
  const int64_t trainable = count_trainable(*model);
  if (json_out) {
    nlohmann::json j = {{"method", method}, {"layers", layers}, {"hidden", hidden}, {"batch", batch}, {"seq", seq},
                        {"r", r}, {"threads", at::get_num_threads()}, {"mean_ms", mean}, {"min_ms", mn},
                        {"peak_rss_mib", rss_mib}, {"trainable_params", trainable}, {"opts", mo.extra}};
    fmt::print("{}\n", j.dump());
  } else {
    fmt::print("method {:<10} layers {} hidden {} batch {} seq {} r {} threads {} | step mean {:.1f} ms, min {:.1f} ms | "
               "peak RSS {:.0f} MiB | trainable {}\n",
               method, layers, hidden, batch, seq, r, at::get_num_threads(), mean, mn, rss_mib, trainable);
  }
  if (stats) fmt::print("{}\n", m->epoch_stats().dump());
  return 0;
}
