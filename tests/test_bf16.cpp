// train --bf16: the forward in bf16 autocast (core/precision.h). On a CPU with AVX512-BF16 / AMX the run
// trains, its losses are near the fp32 run's but not equal to them (bf16 was really used), and what it
// writes is fp32; on a CPU without bf16 instructions the flag is refused with a clear error. --precision auto
// picks bf16 exactly where the CPU has the instructions.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/torch.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "core/precision.h"
#include "core/runtime.h"
#include "models/layers.h"
#include "support/tiny_model.h"
#include "tuners/registry.h"
#include "core/safetensors.h"
#include "support/helpers.h"

using namespace lorakit;
using lorakit::testing::read_jsonl;
using lorakit::testing::run_command;
using lorakit::testing::TempDir;

namespace {

class Bf16Cli : public lorakit::testing::TinyModelSuite<Bf16Cli> {
 public:
  static constexpr const char* kModelFlags = "--layers 2 --max-position 64";

 protected:
  static std::string train_cmd(const std::string& flags, const std::string& out) {
    return std::string(LORAKIT_CLI) + " train --model " + model() + " --task mrpc --data " + data() +
           " --max-train-samples 64 --max-eval-samples 32 --max-seq-len 32 --batch-size 8 --epochs 2 --lr 5e-3"
           " --seed 7 --threads 1 --no-progress " +
           flags + " --out " + out;
  }

  static void expect_close_to_fp32(const std::string& method_flags) {
    TempDir d;
    auto fp32 = run_command(train_cmd(method_flags, d.file("fp32")));
    ASSERT_EQ(fp32.exit_code, 0) << fp32.output;
    auto bf16 = run_command(train_cmd(method_flags + " --bf16", d.file("bf16")));
    if (!cpu_has_bf16()) {
      EXPECT_EQ(bf16.exit_code, 1) << bf16.output;
      EXPECT_NE(bf16.output.find("--bf16: this CPU (" + cpu_isa() + ") has no bf16 instructions"), std::string::npos)
          << bf16.output;
      return;
    }
    ASSERT_EQ(bf16.exit_code, 0) << bf16.output;
    const auto a = read_jsonl(d.file("fp32/metrics.jsonl")), b = read_jsonl(d.file("bf16/metrics.jsonl"));
    ASSERT_EQ(a.size(), 2u);
    ASSERT_EQ(b.size(), 2u);
    double differs = 0;
    for (size_t e = 0; e < a.size(); ++e) {
      for (const char* k : {"train_loss", "eval_loss"}) {
        const double x = a[e][k].get<double>(), y = b[e][k].get<double>();
        ASSERT_TRUE(std::isfinite(y)) << k;
        EXPECT_NEAR(x, y, 0.05 * std::max(1.0, std::abs(x))) << k << " epoch " << e + 1;
        differs += std::abs(x - y);
      }
    }
    EXPECT_GT(differs, 0.0) << "the --bf16 run equals the fp32 run: bf16 autocast did not take effect";
    // The adapter is fp32, as PEFT writes it.
    for (auto& [name, t] : st::load_file(d.file("bf16/last/adapter_model.safetensors")))
      EXPECT_EQ(t.scalar_type(), at::kFloat) << name;
  }
};

TEST_F(Bf16Cli, LoraTrainsNearFp32OrIsRefused) { expect_close_to_fp32("--method lora --r 4"); }

// GR-LoRA's penalty reads the recorded bf16 branch activations and computes in fp32.
TEST_F(Bf16Cli, GrLoraTrainsNearFp32OrIsRefused) { expect_close_to_fp32("--method gr-lora --r 4"); }

// --precision auto (the default without $LORAKIT_PRECISION) is bf16 exactly where the CPU has bf16
// instructions; the environment variable and the flags choose otherwise; contradictions and unknown values
// are errors that name their source.
TEST_F(Bf16Cli, AutoPrecisionFollowsTheCpuAndTheFlagsDecide) {
  TempDir d;
  auto precision_of = [&](const std::string& out) {
    return nlohmann::json::parse(lorakit::testing::read_bytes(d.file(out) + "/train_config.json")).at("precision").get<std::string>();
  };
  const std::string quick;  // train_cmd's small run
  auto a = run_command("env -u LORAKIT_PRECISION " + train_cmd("--method lora --r 4" + quick, d.file("auto")));
  ASSERT_EQ(a.exit_code, 0) << a.output;
  const std::string want = cpu_has_bf16() ? "bf16" : "fp32";
  EXPECT_EQ(precision_of("auto"), want);
  EXPECT_NE(a.output.find("lorakit: precision " + want + " (auto: this CPU (" + cpu_isa() + ")"), std::string::npos)
      << a.output;
  auto f = run_command("env -u LORAKIT_PRECISION " + train_cmd("--method lora --r 4 --precision fp32" + quick, d.file("fp32")));
  ASSERT_EQ(f.exit_code, 0) << f.output;
  EXPECT_EQ(precision_of("fp32"), "fp32");
  auto e = run_command("LORAKIT_PRECISION=fp32 " + train_cmd("--method lora --r 4" + quick, d.file("env")));
  ASSERT_EQ(e.exit_code, 0) << e.output;
  EXPECT_EQ(precision_of("env"), "fp32");
  EXPECT_EQ(e.output.find("lorakit: precision"), std::string::npos) << "only auto announces its choice";

  auto c = run_command(train_cmd("--method lora --bf16 --precision fp32" + quick, d.file("contra")));
  EXPECT_EQ(c.exit_code, 1) << c.output;
  EXPECT_NE(c.output.find("--bf16 contradicts --precision fp32"), std::string::npos) << c.output;
  auto u = run_command("LORAKIT_PRECISION=half " + train_cmd("--method lora" + quick, d.file("unknown")));
  EXPECT_EQ(u.exit_code, 1) << u.output;
  EXPECT_NE(u.output.find("LORAKIT_PRECISION: 'half' is not one of auto, fp32, bf16"), std::string::npos) << u.output;
  auto b = run_command(train_cmd("--method lora --precision bf16" + quick, d.file("bf16")));
  if (cpu_has_bf16()) {
    ASSERT_EQ(b.exit_code, 0) << b.output;
    EXPECT_EQ(precision_of("bf16"), "bf16");
  } else {
    EXPECT_EQ(b.exit_code, 1) << b.output;
    EXPECT_NE(b.output.find("has no bf16 instructions"), std::string::npos) << b.output;
  }
}

// Frozen projection weights stored in bf16 for a bf16 run give bit-identical logits and LoRA gradients to
// autocast casting them at every forward (what a bf16 run did before); trainable weights stay fp32; a forward
// outside autocast still runs (the weight in the input's dtype).
TEST(Bf16Weights, StoredFrozenWeightsEqualAutocastsPerForwardCast) {
  auto make = [] {
    ModelConfig c = lorakit::testing::oracle_config("bert");
    c.hidden_dropout_prob = c.attention_probs_dropout_prob = 0.0;
    torch::manual_seed(3);
    SequenceClassifier m(c);
    m->init_weights();
    MethodOptions mo;
    mo.lora.target_modules = {"query", "value", "dense"};
    static std::vector<std::unique_ptr<Method>> keep;
    keep.push_back(make_method("lora", mo));
    keep.back()->attach(m);
    torch::NoGradGuard g;
    torch::manual_seed(4);
    for (auto& p : m->parameters())
      if (p.requires_grad()) p.add_(at::randn_like(p) * 0.05);
    return m;
  };
  SequenceClassifier a = make(), b = make();
  const int64_t converted = store_frozen_weights_bf16(*b);
  // 2 layers × (query, key, value, attention.output.dense, intermediate.dense, output.dense) + the pooler's
  // dense; the classifier trains (modules_to_save) and stays fp32.
  EXPECT_EQ(converted, 13);
  for (auto& p : b->named_parameters()) {
    if (p.value().requires_grad())
      EXPECT_EQ(p.value().scalar_type(), at::kFloat) << p.key();
  }
  auto in = lorakit::testing::padded_inputs(a->cfg, 10);
  const Bf16Scope on(true);
  auto run = [&](SequenceClassifier& m) {
    m->train();
    m->zero_grad();
    at::Tensor logits = forward_autocast([&] { return m->forward(in.ids, in.mask, in.tt); });
    logits.pow(2).sum().backward();
    std::vector<at::Tensor> g{logits.detach()};
    for (auto& p : m->parameters())
      if (p.requires_grad()) g.push_back(p.grad().defined() ? p.grad().clone() : at::zeros_like(p));
    return g;
  };
  auto ga = run(a), gb = run(b);
  ASSERT_EQ(ga.size(), gb.size());
  double nonzero = 0;
  for (size_t i = 0; i < ga.size(); ++i) {
    EXPECT_TRUE(at::equal(ga[i], gb[i])) << "tensor " << i << " differs by " << (ga[i] - gb[i]).abs().max().item<double>();
    nonzero += ga[i].abs().sum().item<double>();
  }
  EXPECT_GT(nonzero, 0.0);
  // Outside autocast (fp32 inputs) the bf16 weights are widened per call: the logits stay near fp32's.
  const Bf16Scope off(false);
  torch::NoGradGuard ng;
  a->eval();
  b->eval();
  at::Tensor la = a->forward(in.ids, in.mask, in.tt), lb = b->forward(in.ids, in.mask, in.tt);
  EXPECT_EQ(lb.scalar_type(), at::kFloat);
  EXPECT_LE((la - lb).abs().max().item<double>(), 5e-2);
  EXPECT_GT((la - lb).abs().max().item<double>(), 0.0) << "the weights were rounded to bf16";
}

// Every family's forward under bf16 autocast on padded rows: DeBERTa filled masked bf16 scores with float's
// lowest, which bf16 cannot hold (an overflow error); now the dtype's own lowest, as transformers does.
TEST(Bf16Weights, EveryTextFamilyRunsPaddedRowsUnderAutocast) {
  for (const char* type : {"bert", "roberta", "distilbert", "deberta-v2"}) {
    ModelConfig c = lorakit::testing::oracle_config(type);
    torch::manual_seed(5);
    SequenceClassifier m(c);
    m->init_weights();
    m->eval();
    store_frozen_weights_bf16(*m);
    torch::NoGradGuard ng;
    auto in = lorakit::testing::padded_inputs(c, 10);
    const Bf16Scope on(true);
    at::Tensor logits;
    ASSERT_NO_THROW(logits = forward_autocast([&] { return m->forward(in.ids, in.mask, in.tt); })) << type;
    EXPECT_EQ(logits.scalar_type(), at::kFloat) << type;
    EXPECT_TRUE(at::isfinite(logits).all().item<bool>()) << type;
  }
  EXPECT_EQ(lowest_value(at::kBFloat16), static_cast<float>(std::numeric_limits<c10::BFloat16>::lowest()));
  EXPECT_TRUE(std::isfinite(static_cast<float>(c10::BFloat16(static_cast<float>(lowest_value(at::kBFloat16))))));
}

}  // namespace
