// Training-step benchmark on a randomly initialised BERT-shaped model (BERT-base by default) of any
// family (--arch bert | roberta | distilbert | deberta-v2 | vit; the family's own LoRA targets unless
// --target-modules is given; ViT takes --image-size × --image-size pixels in --patch-size patches).
//
//   build/bench_step --method lora --steps 5            # LoRA r=8 on query,value, batch 32, seq 128
//   build/bench_step --arch deberta-v2 --method lora    # deberta-v3-base's attention settings
//   build/bench_step --method full --layers 2
//   build/bench_step --method gr-lora --opt gr_penalty=naive
//   build/bench_step --method gr-lora --layers 2 --correct 28 --opt gr_penalty=naive   (|S| ≈ 28 of 32)
//
// Prints mean / min ms per optimizer step (after --warmup steps) and the process's peak RSS. Run one
// method per process so that peak RSS belongs to that method.
#include <sys/resource.h>

#include <chrono>
#include <CLI/CLI.hpp>
#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "core/precision.h"
#include "core/runtime.h"
#include "train/trainer.h"
#include "tuners/registry.h"

using namespace lorakit;

int main(int argc, char** argv) {
  ensure_blas_environment(argc, argv);
  CLI::App app{"lorakit training-step benchmark"};
  std::string method = "lora", targets, arch = "bert";
  int64_t image_size = 176, patch_size = 16;
  int64_t layers = 12, hidden = 768, heads = 12, inter = 3072, vocab = 30522, batch = 32, seq = 128, r = 8;
  int steps = 5, warmup = 1, threads = 0;
  std::vector<std::string> opts;
  bool json_out = false, stats = false, bf16 = false, prune = true;
  app.add_option("--method", method);
  app.add_option("--arch", arch, "bert | roberta | distilbert | deberta-v2 | vit");
  app.add_option("--image-size", image_size, "vit: image side (176 / 16 → 121 patches + [CLS] = 122 tokens)");
  app.add_option("--patch-size", patch_size, "vit: patch side");
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
  int64_t correct = -1;
  app.add_option("--correct", correct,
                 "labels: the first N rows get the class an eval-mode forward of the initial model predicts, the others "
                 "another (GR-LoRA's |S| ≈ N; its gr_correct_fraction stat says what the training forwards found); "
                 "default random labels");
  app.add_flag("--json", json_out);
  app.add_flag("!--no-prune-last-layer", prune, "the last layer at every position, as train --no-prune-last-layer");
  app.add_flag("--bf16", bf16, "the forward in bf16 autocast, as train --bf16 (refused without AVX512-BF16 / AMX)");
  app.add_flag("--stats", stats, "then print the method's epoch_stats() as JSON (gr-lora: --opt gr_profile=true adds per-phase ms)");
  CLI11_PARSE(app, argc, argv);
  configure_threads(threads);

  ModelConfig c;
  c.model_type = arch;
  if (arch == "roberta") {
    c.pad_token_id = 1;
    c.type_vocab_size = 1;
    c.max_position_embeddings = 514;
  } else if (arch == "distilbert") {
    c.type_vocab_size = 1;
  } else if (arch == "deberta-v2") {  // deberta-v3-base
    c.type_vocab_size = 0;
    c.relative_attention = true;
    c.position_buckets = 256;
    c.share_att_key = true;
    c.pos_att_type = {"p2c", "c2p"};
    c.norm_rel_ebd = "layer_norm";
    c.position_biased_input = false;
  } else if (arch == "vit") {
    c.image_size = image_size;
    c.patch_size = patch_size;
    c.max_position_embeddings = (image_size / patch_size) * (image_size / patch_size) + 1;
  } else if (arch != "bert") {
    fmt::print(stderr, "--arch: unknown family '{}'\n", arch);
    return 2;
  }
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
  if (targets.empty()) mo.lora.target_modules = c.default_lora_targets();
  mo.lora.modules_to_save = c.head_modules();
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
  tc.bf16 = bf16;
  tc.prune_last_layer = prune;
  if (bf16 && !cpu_has_bf16()) {
    fmt::print(stderr, "bench_step: --bf16: this CPU ({}) has no bf16 instructions\n", cpu_isa());
    return 1;
  }
  const Bf16Scope precision(bf16);
  auto task = make_task(c.is_vit() ? "cifar10" : "mrpc");
  StepRunner runner(model, *m, *task, tc, warmup + steps, 0);
  torch::manual_seed(1);
  Batch b;
  b.input_ids = at::randint(1000, vocab, {batch, seq}, at::kLong);
  b.attention_mask = at::ones({batch, seq}, at::kLong);
  b.token_type_ids = at::zeros({batch, seq}, at::kLong);
  b.labels = at::randint(0, 2, {batch}, at::kLong);
  if (c.is_vit()) b.pixel_values = at::randn({batch, 3, image_size, image_size});
  if (correct >= 0) {
    if (correct > batch) {
      fmt::print(stderr, "--correct {} is more than the batch ({})\n", correct, batch);
      return 2;
    }
    torch::NoGradGuard ng;
    model->eval();
    at::Tensor pred = (c.is_vit() ? model->forward_pixels(b.pixel_values)
                                  : model->forward(b.input_ids, b.attention_mask, b.token_type_ids))
                          .argmax(-1);
    model->train();
    at::Tensor right = at::arange(batch, at::kLong).lt(correct);
    b.labels = at::where(right, pred, (pred + 1) % c.num_labels);
  }

  std::vector<double> ms;
  for (int i = 0; i < warmup + steps; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    runner.step(b, 1);
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
    nlohmann::json j = {{"arch", arch}, {"method", method}, {"layers", layers}, {"hidden", hidden}, {"batch", batch}, {"seq", seq},
                        {"r", r}, {"bf16", bf16}, {"prune_last_layer", model->prune_last_layer}, {"threads", at::get_num_threads()}, {"mean_ms", mean}, {"min_ms", mn},
                        {"peak_rss_mib", rss_mib}, {"trainable_params", trainable}, {"opts", mo.extra}};
    fmt::print("{}\n", j.dump());
  } else {
    fmt::print("arch {} method {:<10}{}{} layers {} hidden {} batch {} seq {} r {} threads {} | step mean {:.1f} ms, min {:.1f} ms | "
               "peak RSS {:.0f} MiB | trainable {}\n",
               arch, method, bf16 ? " bf16" : "", model->prune_last_layer ? "" : " unpruned", layers, hidden, batch, seq, r, at::get_num_threads(), mean, mn, rss_mib, trainable);
  }
  if (stats) fmt::print("{}\n", m->epoch_stats().dump());
  return 0;
}
