// USE-lite as a trainable task model: the bi-encoder head and the CLI round trip on real MRPC.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/torch.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "core/safetensors.h"
#include "models/checkpoint.h"
#include "models/use_lite_task.h"
#include "support/helpers.h"
#include "text/tokenizer.h"

using namespace lorakit;
using lorakit::testing::run_cli;
using lorakit::testing::TempDir;

#define REQUIRE_USE_LITE()                                  \
  std::string fetch_error;                                  \
  const std::string dir = lorakit::testing::use_lite_dir(&fetch_error); \
  ASSERT_FALSE(dir.empty()) << fetch_error

TEST(UseLiteTask, BiEncoderHeadSeesEachSentenceOnItsOwn) {
  REQUIRE_USE_LITE();
  LoadOptions lo;
  lo.num_labels = 2;
  LoadedModel lm = load_model(dir, lo);
  EXPECT_EQ(lm.config.model_type, "use-lite");
  EXPECT_EQ(lm.config.pair_mode, "bi-encoder");
  ASSERT_EQ(lm.report.newly_initialized.size(), 4u);  // classifier.dense / out_proj weight + bias
  auto* m = lm.model->as<UseLiteClassifierImpl>();
  ASSERT_NE(m, nullptr);
  m->eval();
  auto tok = text::load_tokenizer(dir);
  const std::string a1 = "The cat sat on the mat.", b1 = "A cat was sitting on a mat.";
  const std::string a2 = "Stocks fell sharply on Monday.", b2 = "Markets dropped.";
  std::vector<text::Encoding> enc = {tok->encode(a1, &b1, 128), tok->encode(a2, &b2, 128)};
  const int64_t T = std::max(enc[0].input_ids.size(), enc[1].input_ids.size());
  at::Tensor ids = at::zeros({2, T}, at::kLong), mask = at::zeros({2, T}, at::kLong), tt = at::zeros({2, T}, at::kLong);
  for (int r = 0; r < 2; ++r)
    for (size_t t = 0; t < enc[r].input_ids.size(); ++t) {
      ids[r][t] = enc[r].input_ids[t];
      mask[r][t] = 1;
      tt[r][t] = enc[r].token_type_ids[t];
    }
  at::Tensor logits = m->forward(ids, mask, tt);
  // Reference: embed every sentence alone, then the head on [u, v, |u−v|, u⊙v].
  auto embed = [&](const std::string& s) {
    auto e = tok->encode(s, nullptr, 128);
    at::Tensor i = at::tensor(e.input_ids, at::kLong).unsqueeze(0);
    return m->use->forward(i, at::ones_like(i));
  };
  for (int r = 0; r < 2; ++r) {
    at::Tensor u = embed(r == 0 ? a1 : a2), v = embed(r == 0 ? b1 : b2);
    at::Tensor expect = m->classifier->forward(at::cat({u, v, (u - v).abs(), u * v}, 1));
    EXPECT_LT((logits[r] - expect[0]).abs().max().item<double>(), 1e-5) << r;
  }
}

TEST(UseLiteTask, TrainsOnMrpcAndTheAdapterReloadsAndMerges) {
  REQUIRE_USE_LITE();
  TempDir d;
  const std::string data = lorakit::testing::shared_dir() + "/data/glue";
  const std::string out = d.file("run");
  auto r = run_cli("train --model use-lite --task mrpc --data " + data +
                   " --method lora --target-modules qkv,output --r 4 --alpha 8 --epochs 2 --lr 2e-3"
                   " --max-train-samples 128 --max-eval-samples 48 --batch-size 16 --threads 1 --no-progress --out " + out);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto epochs = lorakit::testing::read_jsonl(out + "/metrics.jsonl");
  ASSERT_EQ(epochs.size(), 2u);
  EXPECT_LT(epochs[1]["train_loss"].get<double>(), epochs[0]["train_loss"].get<double>());
  auto sidecar = nlohmann::json::parse(lorakit::testing::read_bytes(out + "/last/lorakit_config.json"));
  EXPECT_EQ(sidecar["pair_mode"], "bi-encoder");
  auto eval_loss = [&](const std::string& args) {
    auto e = run_cli("eval " + args + " --task mrpc --data " + data + " --max-eval-samples 48 --threads 1");
    EXPECT_EQ(e.exit_code, 0) << e.output;
    return nlohmann::json::parse(e.output.substr(e.output.find('{')))["eval_loss"].get<double>();
  };
  const double trained = epochs.back()["eval_loss"].get<double>();
  EXPECT_DOUBLE_EQ(eval_loss("--adapter " + out + "/last"), trained);
  auto mr = run_cli("merge --adapter " + out + "/last --out " + d.file("merged"));
  ASSERT_EQ(mr.exit_code, 0) << mr.output;
  EXPECT_NEAR(eval_loss("--model " + d.file("merged")), trained, 1e-5);
}

TEST(UseLiteTask, AdaLoraAndSoraRunOnMrpcAndReload) {
  REQUIRE_USE_LITE();
  TempDir d;
  const std::string data = lorakit::testing::shared_dir() + "/data/glue";
  const std::string common = " --task mrpc --data " + data +
                             " --target-modules qkv,output --epochs 1 --lr 2e-3 --max-train-samples 96"
                             " --max-eval-samples 32 --batch-size 16 --threads 1 --no-progress";
  for (const std::string method : {"adalora", "sora"}) {
    SCOPED_TRACE(method);
    const std::string out = d.file(method);
    const std::string flags = method == "adalora" ? " --init-r 8 --target-r 4 --tinit 1 --tfinal 1"
                                                  : " --r 8 --sora-lambda2 0.3";
    auto r = run_cli("train --model use-lite --method " + method + flags + " --alpha 16" + common + " --out " + out);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    auto epochs = lorakit::testing::read_jsonl(out + "/metrics.jsonl");
    ASSERT_EQ(epochs.size(), 1u);
    EXPECT_LT(epochs[0]["inference_params"].get<int64_t>(), epochs[0]["trainable_params"].get<int64_t>());
    auto e = run_cli("eval --adapter " + out + "/last --task mrpc --data " + data + " --max-eval-samples 32 --threads 1");
    ASSERT_EQ(e.exit_code, 0) << e.output;
    EXPECT_NEAR(lorakit::testing::last_json_object(e.output)["eval_loss"].get<double>(),
                epochs[0]["eval_loss"].get<double>(), 1e-5);
  }
}

// The frozen-prefix cache on USE-lite (issue 14): LoRA on layer 1 only skips the embeddings and layer 0 at
// every step, a pair's halves cached in the row's layout; training from the cache equals training without.
// GR-LoRA reads the halves' padded positions, which a row cannot hold: it is not cached, and says why.
TEST(UseLiteTask, TrainingFromTheFrozenPrefixCacheEqualsTrainingWithout) {
  REQUIRE_USE_LITE();
  TempDir d;
  const std::string data = lorakit::testing::shared_dir() + "/data/glue";
  auto train = [&](const std::string& flags, const std::string& out) {
    return run_cli("train --model use-lite --task mrpc --data " + data +
                   " --target-regex 'use\\.encoder\\.layer\\.1\\.attention\\.(qkv|output)' --r 4 --alpha 8 --epochs 2"
                   " --lr 2e-3 --max-train-samples 96 --max-eval-samples 32 --batch-size 16 --threads 1 --no-progress " +
                   flags + " --out " + d.file(out));
  };
  auto off = train("--method lora --cache-frozen-prefix off", "off");
  ASSERT_EQ(off.exit_code, 0) << off.output;
  auto on = train("--method lora", "auto");
  ASSERT_EQ(on.exit_code, 0) << on.output;
  EXPECT_NE(on.output.find("frozen-prefix cache: use.embeddings .. use.encoder.layer.0 (below use.encoder.layer.1)"),
            std::string::npos)
      << on.output;
  const auto a = lorakit::testing::read_jsonl(d.file("off/metrics.jsonl")), b = lorakit::testing::read_jsonl(d.file("auto/metrics.jsonl"));
  ASSERT_EQ(a.size(), 2u);
  ASSERT_EQ(b.size(), 2u);
  for (size_t e = 0; e < 2; ++e)
    for (const char* k : {"train_loss", "train_accuracy", "eval_loss", "eval_accuracy", "eval_f1"})
      EXPECT_NEAR(a[e][k].get<double>(), b[e][k].get<double>(), 1e-5) << k << " epoch " << e + 1;
  auto ta = st::load_file(d.file("off/last/adapter_model.safetensors"));
  auto tb = st::load_file(d.file("auto/last/adapter_model.safetensors"));
  ASSERT_EQ(ta.size(), tb.size());
  ASSERT_GE(ta.size(), 4u);
  for (size_t i = 0; i < ta.size(); ++i) {
    ASSERT_EQ(ta[i].first, tb[i].first);
    // The prefix ran in other batch shapes (the cache's length-ordered batches), so its sums round in another
    // order; AdamW's normalised steps carry that to the adapter's last digits.
    EXPECT_LE((ta[i].second - tb[i].second).abs().max().item<double>(), 1e-4) << ta[i].first;
    EXPECT_GT(ta[i].second.abs().max().item<double>(), 0.0) << ta[i].first;
  }
  auto gr = train("--method gr-lora", "gr");
  ASSERT_EQ(gr.exit_code, 0) << gr.output;
  EXPECT_NE(gr.output.find("frozen-prefix cache not used: gr-lora reads padded positions"), std::string::npos)
      << gr.output;
}
