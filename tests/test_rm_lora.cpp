// R-LoRA / GM-LoRA / RM-LoRA (seed 001, SPEC 3.2) and the ΔW diagnostics (SPEC 4).
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/linalg.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>
#include <torch/torch.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>

#include "models/bert.h"
#include "support/helpers.h"
#include "tasks/classification.h"
#include "tuners/lora/diagnostics.h"
#include "tuners/lora/model.h"
#include "tuners/registry.h"
#include "tuners/rm_lora/model.h"

using namespace lorakit;
using lorakit::testing::TempDir;

namespace {

ModelConfig tiny_config() {
  ModelConfig c;
  c.vocab_size = 60;
  c.hidden_size = 24;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 2;
  c.intermediate_size = 40;
  c.max_position_embeddings = 32;
  c.hidden_dropout_prob = 0;
  c.attention_probs_dropout_prob = 0;
  c.num_labels = 2;
  return c;
}

SequenceClassifier tiny_model(uint64_t seed = 5) {
  torch::manual_seed(seed);
  SequenceClassifier m(tiny_config());
  m->init_weights();
  return m;
}

LoraConfig tiny_lora(int64_t r = 8) {
  LoraConfig c;
  c.r = r;
  c.lora_alpha = 16;
  c.target_modules = {"query", "value", "dense"};  // 2 layers × (q, v, attention/ffn dense×3) + pooler
  return c;
}

struct TinyBatch {
  at::Tensor ids, mask, tt, labels;
};

TinyBatch tiny_batch(int64_t seed) {
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(seed));
  TinyBatch b;
  b.ids = at::randint(5, 60, {4, 7}, g, at::kLong);
  b.mask = at::ones({4, 7}, at::kLong);
  b.tt = at::zeros({4, 7}, at::kLong);
  b.labels = at::randint(0, 2, {4}, g, at::kLong);
  return b;
}

// Gives every B a random value so that A receives gradients too (B = 0 at init).
void randomize_b(const LoraMethod& m, uint64_t seed) {
  torch::manual_seed(seed);
  torch::NoGradGuard g;
  for (auto& [p, l] : m.layers()) l->lora_B->weight.normal_(0, 0.1);
}

// One optimizer step exactly as the trainer takes it (AdamW, method groups, clipping, the hooks).
struct Stepper {
  SequenceClassifier model;
  Method& method;
  std::unique_ptr<torch::optim::AdamW> opt;
  std::vector<at::Tensor> trainable;
  std::mt19937_64 rng;
  int64_t step = 0;
  Stepper(SequenceClassifier m, Method& me, uint64_t seed, double wd = 0.01) : model(m), method(me), rng(seed) {
    std::vector<torch::optim::OptimizerParamGroup> og;
    for (auto& g : method.param_groups(model, wd)) {
      auto o = std::make_unique<torch::optim::AdamWOptions>(1e-2);
      o->betas({0.9, 0.999}).eps(1e-8).weight_decay(g.weight_decay);
      og.emplace_back(g.params, std::move(o));
      trainable.insert(trainable.end(), g.params.begin(), g.params.end());
    }
    opt = std::make_unique<torch::optim::AdamW>(og, torch::optim::AdamWOptions(1e-2));
  }
  // Runs up to (and including) before_optimizer_step; then `finish()` steps.
  StepInfo info;
  void prepare(const TinyBatch& b) {
    model->train();
    at::Tensor logits = model->forward(b.ids, b.mask, b.tt);
    info = StepInfo();
    info.step = step;
    info.total_steps = 100;
    info.epoch = 1;
    info.rng = &rng;
    info.logits = logits;
    info.labels = b.labels;
    info.per_sample_loss = per_sample_loss(logits, b.labels, false);
    info.task_loss = info.per_sample_loss.mean();
    at::Tensor extra = method.extra_loss(info);
    at::Tensor loss = extra.defined() ? info.task_loss + extra : info.task_loss;
    opt->zero_grad();
    loss.backward();
    torch::nn::utils::clip_grad_norm_(trainable, 1.0);
  }
  void finish() {
    opt->step();
    method.after_optimizer_step(info, *opt);
    ++step;
  }
  void full_step(const TinyBatch& b) {
    prepare(b);
    method.before_optimizer_step(info, *opt);
    finish();
  }
};

struct Moments {
  at::Tensor m, v;
};
Moments moments(torch::optim::Optimizer& opt, const at::Tensor& p) {
  auto& st = opt.state();
  auto it = st.find(c10::guts::to_string(p.unsafeGetTensorImpl()));
  if (it == st.end()) return {at::zeros_like(p), at::zeros_like(p)};
  auto& s = static_cast<torch::optim::AdamWParamState&>(*it->second);
  return {s.exp_avg().clone(), s.exp_avg_sq().clone()};
}

bool bit_equal(const at::Tensor& a, const at::Tensor& b) {
  return a.sizes() == b.sizes() && a.dtype() == b.dtype() &&
         std::memcmp(a.contiguous().data_ptr(), b.contiguous().data_ptr(), a.numel() * a.element_size()) == 0;
}

std::unique_ptr<RmLoraMethod> make_rm(const std::string& variant, nlohmann::json extra, int64_t r = 8) {
  return std::make_unique<RmLoraMethod>(tiny_lora(r), RmLoraConfig::from_options(variant, extra));
}

std::string read_file(const std::string& p) {
  std::ifstream is(p);
  std::stringstream ss;
  ss << is.rdbuf();
  return ss.str();
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------------
// R-LoRA regularizer

TEST(RmLoraRegularizer, ValueAndGradientMatchFormulaAndFiniteDifferences) {
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(7);
  for (auto [r, din, dout] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{{4, 7, 9}, {3, 2, 5}, {5, 11, 3}}) {
    at::Tensor A = at::randn({r, din}, g, at::kDouble).mul_(0.7).requires_grad_(true);
    at::Tensor B = at::randn({dout, r}, g, at::kDouble).mul_(0.7).requires_grad_(true);
    at::Tensor pen = orthogonality_penalty(A, B);
    // Direct formula, element by element.
    at::Tensor Ad = A.detach(), Bd = B.detach();
    auto a = Ad.accessor<double, 2>();
    auto b = Bd.accessor<double, 2>();
    double direct = 0;
    for (int64_t i = 0; i < r; ++i)
      for (int64_t j = 0; j < r; ++j) {
        double ga = 0, gb = 0;
        for (int64_t k = 0; k < din; ++k) ga += a[i][k] * a[j][k];
        for (int64_t k = 0; k < dout; ++k) gb += b[k][i] * b[k][j];
        direct += (ga - (i == j)) * (ga - (i == j)) + (gb - (i == j)) * (gb - (i == j));
      }
    EXPECT_NEAR(pen.item<double>(), direct, 1e-12 * std::max(1.0, direct));
    pen.backward();
    // Analytic gradients: 4 (AAᵀ − I) A and 4 B (BᵀB − I).
    at::Tensor eye = at::eye(r, at::kDouble);
    at::Tensor ga = 4 * at::matmul(at::matmul(A, A.t()) - eye, A).detach();
    at::Tensor gb = 4 * at::matmul(B, at::matmul(B.t(), B) - eye).detach();
    EXPECT_TRUE(at::allclose(A.grad(), ga, 1e-12, 1e-12));
    EXPECT_TRUE(at::allclose(B.grad(), gb, 1e-12, 1e-12));
    // Central finite differences on every entry.
    const double h = 1e-6;
    for (auto* P : {&A, &B}) {
      at::Tensor base = P->detach().clone();
      at::Tensor grad = P->grad().clone();
      for (int64_t e = 0; e < base.numel(); ++e) {
        at::Tensor plus = base.clone(), minus = base.clone();
        plus.view(-1)[e] += h;
        minus.view(-1)[e] -= h;
        const double fp = P == &A ? orthogonality_penalty(plus, B.detach()).item<double>()
                                  : orthogonality_penalty(A.detach(), plus).item<double>();
        const double fm = P == &A ? orthogonality_penalty(minus, B.detach()).item<double>()
                                  : orthogonality_penalty(A.detach(), minus).item<double>();
        const double fd = (fp - fm) / (2 * h);
        EXPECT_NEAR(grad.view(-1)[e].item<double>(), fd, 1e-6 * std::max(1.0, std::abs(fd)));
      }
    }
  }
}

TEST(RmLoraRegularizer, ExtraLossIsLambdaTimesSumOverModules) {
  auto m = tiny_model();
  auto method = make_rm("r-lora", {{"orth_reg", 0.25}});
  method->attach(m);
  randomize_b(*method, 3);
  StepInfo info;
  at::Tensor loss = method->extra_loss(info);
  ASSERT_TRUE(loss.defined());
  double sum = 0;
  for (auto& [p, l] : method->layers()) {
    at::Tensor A = l->lora_A->weight.detach().to(at::kDouble), B = l->lora_B->weight.detach().to(at::kDouble);
    at::Tensor eye = at::eye(l->r, at::kDouble);
    sum += (at::matmul(A, A.t()) - eye).pow(2).sum().item<double>() +
           (at::matmul(B.t(), B) - eye).pow(2).sum().item<double>();
  }
  EXPECT_NEAR(loss.item<double>(), 0.25 * sum, 1e-5 * sum);
  // GM-LoRA adds no loss; λ = 0 adds none either.
  auto gm = make_rm("gm-lora", {});
  gm->attach(m = tiny_model());
  EXPECT_FALSE(gm->extra_loss(info).defined());
  auto zero = make_rm("rm-lora", {{"orth_reg", 0.0}});
  zero->attach(m = tiny_model());
  EXPECT_FALSE(zero->extra_loss(info).defined());
  // The loss reaches A and B through backward.
  auto r = make_rm("r-lora", {});
  auto m2 = tiny_model();
  r->attach(m2);
  r->extra_loss(info).backward();
  for (auto& [p, l] : r->layers()) {
    ASSERT_TRUE(l->lora_A->weight.grad().defined());
    at::Tensor A = l->lora_A->weight.detach();
    at::Tensor expect = 0.1 * 4 * at::matmul(at::matmul(A, A.t()) - at::eye(l->r), A);
    EXPECT_TRUE(at::allclose(l->lora_A->weight.grad(), expect, 1e-4, 1e-6));
  }
}

// ---------------------------------------------------------------------------------------------------------------
// GM-LoRA masking

TEST(RmLoraMask, UpdateModeFreezesValuesAndAdamWStateBitForBit) {
  auto model = tiny_model();
  auto method = make_rm("gm-lora", {{"mask_directions", 3}});
  method->attach(model);
  randomize_b(*method, 11);
  ASSERT_GE(method->layers().size(), 4u);
  Stepper s(model, *method, 1234);
  for (int it = 0; it < 3; ++it) {  // step 0 creates AdamW's state lazily; steps 1, 2 have state before
    // Snapshot everything before the step.
    std::vector<at::Tensor> a0, b0;
    std::vector<Moments> am0, bm0;
    for (auto& [p, l] : method->layers()) {
      a0.push_back(l->lora_A->weight.detach().clone());
      b0.push_back(l->lora_B->weight.detach().clone());
      am0.push_back(moments(*s.opt, l->lora_A->weight));
      bm0.push_back(moments(*s.opt, l->lora_B->weight));
    }
    s.full_step(tiny_batch(100 + it));
    const auto& draw = method->last_draw();
    ASSERT_EQ(draw.size(), method->layers().size());
    for (size_t i = 0; i < method->layers().size(); ++i) {
      auto& l = *method->layers()[i].second;
      ASSERT_EQ(draw[i].size(), 3u) << "exactly r̂ directions";
      std::set<int64_t> kept(draw[i].begin(), draw[i].end());
      ASSERT_EQ(kept.size(), 3u) << "distinct directions";
      Moments am = moments(*s.opt, l.lora_A->weight), bm = moments(*s.opt, l.lora_B->weight);
      const at::Tensor& A = l.lora_A->weight;
      const at::Tensor& B = l.lora_B->weight;
      for (int64_t d = 0; d < l.r; ++d) {
        ASSERT_TRUE(d >= 0 && d < l.r);
        if (kept.count(d)) {
          EXPECT_FALSE(bit_equal(A[d], a0[i][d])) << "updated row " << d << " of A unchanged";
          EXPECT_FALSE(bit_equal(B.select(1, d), b0[i].select(1, d))) << "updated column " << d << " of B unchanged";
          EXPECT_FALSE(bit_equal(am.m[d], am0[i].m[d]));
          EXPECT_FALSE(bit_equal(am.v[d], am0[i].v[d]));
          EXPECT_FALSE(bit_equal(bm.m.select(1, d), bm0[i].m.select(1, d)));
          EXPECT_FALSE(bit_equal(bm.v.select(1, d), bm0[i].v.select(1, d)));
        } else {
          EXPECT_TRUE(bit_equal(A[d], a0[i][d])) << "step " << it << " module " << i << " frozen row " << d;
          EXPECT_TRUE(bit_equal(B.select(1, d), b0[i].select(1, d)));
          EXPECT_TRUE(bit_equal(am.m[d], am0[i].m[d]));
          EXPECT_TRUE(bit_equal(am.v[d], am0[i].v[d]));
          EXPECT_TRUE(bit_equal(bm.m.select(1, d), bm0[i].m.select(1, d)));
          EXPECT_TRUE(bit_equal(bm.v.select(1, d), bm0[i].v.select(1, d)));
        }
      }
    }
  }
}

TEST(RmLoraMask, ModulesDrawIndependentlyFromTheRunGeneratorAndSeedsRepeat) {
  auto run = [](uint64_t seed, int steps) {
    auto model = tiny_model();
    auto method = make_rm("rm-lora", {{"mask_directions", 2}});
    method->attach(model);
    randomize_b(*method, 11);
    Stepper s(model, *method, seed);
    std::vector<std::vector<std::vector<int64_t>>> draws;
    for (int it = 0; it < steps; ++it) {
      s.full_step(tiny_batch(200 + it));
      draws.push_back(method->last_draw());
    }
    std::vector<at::Tensor> params;
    for (auto& [p, l] : method->layers()) {
      params.push_back(l->lora_A->weight.detach().clone());
      params.push_back(l->lora_B->weight.detach().clone());
    }
    return std::make_pair(draws, params);
  };
  auto [d1, p1] = run(99, 4);
  auto [d2, p2] = run(99, 4);
  auto [d3, p3] = run(100, 4);
  EXPECT_EQ(d1, d2) << "same seed, same draws";
  for (size_t i = 0; i < p1.size(); ++i) EXPECT_TRUE(bit_equal(p1[i], p2[i])) << "same seed, same weights";
  EXPECT_NE(d1, d3) << "another seed, other draws";
  // The draws are successive partial Fisher–Yates draws from the run's generator, module by module.
  std::mt19937_64 ref(99);
  bool modules_differ = false;
  for (auto& step : d1) {
    for (size_t i = 0; i < step.size(); ++i) {
      EXPECT_EQ(step[i], draw_directions(ref, 8, 2));
      if (i && step[i] != step[0]) modules_differ = true;
    }
  }
  EXPECT_TRUE(modules_differ) << "every module draws its own directions";
}

TEST(RmLoraMask, GradModeZeroesExactlyTheMaskedGradients) {
  auto model = tiny_model();
  auto method = make_rm("gm-lora", {{"mask_directions", 5}, {"mask_mode", "grad"}});
  method->attach(model);
  randomize_b(*method, 11);
  Stepper s(model, *method, 77);
  s.prepare(tiny_batch(300));
  std::vector<at::Tensor> ga, gb;
  for (auto& [p, l] : method->layers()) {
    ga.push_back(l->lora_A->weight.grad().clone());
    gb.push_back(l->lora_B->weight.grad().clone());
  }
  method->before_optimizer_step(s.info, *s.opt);
  for (size_t i = 0; i < method->layers().size(); ++i) {
    auto& l = *method->layers()[i].second;
    std::set<int64_t> kept(method->last_draw()[i].begin(), method->last_draw()[i].end());
    ASSERT_EQ(kept.size(), 5u);
    for (int64_t d = 0; d < l.r; ++d) {
      at::Tensor a = l.lora_A->weight.grad()[d], b = l.lora_B->weight.grad().select(1, d);
      if (kept.count(d)) {
        EXPECT_TRUE(bit_equal(a, ga[i][d]));
        EXPECT_TRUE(bit_equal(b, gb[i].select(1, d)));
        EXPECT_GT(a.abs().sum().item<double>(), 0);
      } else {
        EXPECT_EQ(a.abs().sum().item<double>(), 0.0);
        EXPECT_EQ(b.abs().sum().item<double>(), 0.0);
      }
    }
  }
  s.finish();  // the literal algorithm: AdamW still steps; nothing is restored
}

TEST(RmLoraMask, DirectionsDefaultToHalfTheRankAndAreValidated) {
  EXPECT_EQ(RmLoraConfig::from_options("rm-lora", {}).directions_for(8), 4);
  EXPECT_EQ(RmLoraConfig::from_options("rm-lora", {}).directions_for(1), 1);
  EXPECT_THROW(RmLoraConfig::from_options("rm-lora", {{"mask_directions", 9}}).directions_for(8), std::exception);
  EXPECT_THROW(RmLoraConfig::from_options("rm-lora", {{"mask_mode", "sometimes"}}), std::exception);
  EXPECT_THROW(RmLoraConfig::from_options("rm-lora", {{"orth_reg", -1.0}}), std::exception);
  // Full rank: every direction updates (identical to LoRA's step).
  auto model = tiny_model();
  auto method = make_rm("gm-lora", {{"mask_directions", 8}});
  method->attach(model);
  Stepper s(model, *method, 5);
  s.full_step(tiny_batch(1));
  for (auto& d : method->last_draw()) EXPECT_EQ(d.size(), 8u);
  // uniform_below is uniform enough and in range.
  std::mt19937_64 g(1);
  std::vector<int> hist(5, 0);
  for (int i = 0; i < 50000; ++i) ++hist.at(uniform_below(g, 5));
  for (int h : hist) EXPECT_NEAR(h, 10000, 500);
}

// ---------------------------------------------------------------------------------------------------------------
// Diagnostics

namespace {
struct Direct {
  int64_t rank;
  double dw, a, b, smax;
  at::Tensor sv;
};
Direct direct_diagnostics(const at::Tensor& A, const at::Tensor& B, double s) {
  at::Tensor dW = at::matmul(B.to(at::kDouble), A.to(at::kDouble)) * s;  // d_out × d_in, formed on purpose
  at::Tensor sv = torch::linalg::svdvals(dW, c10::nullopt);
  const double smax = sv.numel() ? sv.max().item<double>() : 0;
  const double tol = smax * std::max(dW.size(0), dW.size(1)) * dtype_eps(A.scalar_type());
  Direct d;
  d.rank = sv.gt(tol).sum().item<int64_t>();
  d.smax = smax;
  d.sv = sv;
  d.dw = (at::matmul(dW, dW.t()) - at::eye(dW.size(0), at::kDouble)).pow(2).sum().item<double>();
  at::Tensor Ad = A.to(at::kDouble), Bd = B.to(at::kDouble);
  d.a = (at::matmul(Ad, Ad.t()) - at::eye(A.size(0), at::kDouble)).pow(2).sum().item<double>();
  d.b = (at::matmul(Bd.t(), Bd) - at::eye(A.size(0), at::kDouble)).pow(2).sum().item<double>();
  return d;
}
}  // namespace

TEST(Diagnostics, ThinFactorsMatchDirectSvd) {
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(21);
  struct Case {
    int64_t dout, din, r;
    int deficient;  // 0 none; 1: B has dependent columns; 2: A has a zero row and a repeated row
    at::ScalarType dtype;
    int64_t expected_rank;  // -1: min(r, dout, din)
  };
  std::vector<Case> cases = {{16, 12, 4, 0, at::kDouble, -1}, {12, 20, 8, 0, at::kDouble, -1},
                             {5, 30, 8, 0, at::kDouble, -1},  {30, 6, 8, 0, at::kDouble, -1},
                             {40, 24, 6, 1, at::kDouble, 4},  {24, 40, 6, 2, at::kDouble, 4},
                             {64, 48, 8, 0, at::kFloat, -1},  {64, 48, 8, 1, at::kFloat, 6},
                             {33, 17, 8, 2, at::kFloat, 6},   {9, 9, 9, 0, at::kDouble, -1}};
  for (auto& c : cases) {
    at::Tensor A = at::randn({c.r, c.din}, g, at::kDouble).to(c.dtype);
    at::Tensor B = at::randn({c.dout, c.r}, g, at::kDouble).to(c.dtype);
    if (c.deficient == 1) {  // two columns copies of others → rank(B) = r − 2
      B.select(1, 1).copy_(B.select(1, 0) * 2);
      B.select(1, 3).copy_(B.select(1, 2) * -0.5);
    } else if (c.deficient == 2) {  // a zero row and a duplicated row → rank(A) = r − 2
      A[0].zero_();
      A[2].copy_(A[1]);
    }
    const double s = 1.7;
    LoraModuleDiagnostics d = lora_module_diagnostics(A, B, s);
    Direct ref = direct_diagnostics(A, B, s);
    SCOPED_TRACE(::testing::Message() << c.dout << "x" << c.din << " r=" << c.r << " deficient=" << c.deficient);
    EXPECT_EQ(d.rank, ref.rank);
    EXPECT_EQ(d.rank, c.expected_rank < 0 ? std::min({c.r, c.dout, c.din}) : c.expected_rank);
    // numpy.linalg.matrix_rank's rule, as LibTorch implements it too.
    at::Tensor dw64 = at::matmul(B.to(at::kDouble), A.to(at::kDouble)) * s;
    EXPECT_EQ(d.rank,
              at::linalg_matrix_rank(dw64, c10::optional<double>(), c10::optional<double>(), false).item<int64_t>());
    EXPECT_NEAR(d.sigma_max, ref.smax, 1e-10 * ref.smax);
    EXPECT_NEAR(d.dw_orth_loss, ref.dw, 1e-9 * std::max(1.0, ref.dw));
    EXPECT_NEAR(d.a_orth_loss, ref.a, 1e-9 * std::max(1.0, ref.a));
    EXPECT_NEAR(d.b_orth_loss, ref.b, 1e-9 * std::max(1.0, ref.b));
    ASSERT_EQ(static_cast<int64_t>(d.singular_values.size()), std::min({c.r, c.dout, c.din}));
    for (size_t i = 0; i < d.singular_values.size(); ++i)
      EXPECT_NEAR(d.singular_values[i], ref.sv[i].item<double>(), 1e-10 * ref.smax);
  }
  // ΔW = 0 (LoRA at initialisation): rank 0, ‖0·0ᵀ − I‖² = d_out.
  at::Tensor A = at::randn({4, 10}, g, at::kDouble), B = at::zeros({7, 4}, at::kDouble);
  LoraModuleDiagnostics z = lora_module_diagnostics(A, B, 2.0);
  EXPECT_EQ(z.rank, 0);
  EXPECT_DOUBLE_EQ(z.dw_orth_loss, 7.0);
  EXPECT_DOUBLE_EQ(z.b_orth_loss, 4.0);
}

TEST(Diagnostics, LoraEpochStatsReportEveryModule) {
  auto model = tiny_model();
  LoraMethod lora(tiny_lora(4));
  lora.attach(model);
  nlohmann::json j = lora.epoch_stats();
  ASSERT_TRUE(j.contains("lora_modules"));
  EXPECT_EQ(j["lora_modules"].size(), lora.layers().size());
  EXPECT_EQ(j["dw_rank_mean"].get<double>(), 0.0);  // B = 0
  randomize_b(lora, 4);
  j = lora.epoch_stats();
  EXPECT_EQ(j["dw_rank_min"].get<int64_t>(), 4);
  EXPECT_EQ(j["dw_rank_max"].get<int64_t>(), 4);
  for (auto& key : {"dw_orth_loss_mean", "dw_orth_loss_core_mean", "a_orth_loss_mean", "b_orth_loss_mean"})
    EXPECT_TRUE(j.contains(key)) << key;
  // RM-LoRA adds its own statistics (output norm from training forwards, penalty, masked steps).
  auto rm = make_rm("rm-lora", {}, 4);
  auto m2 = tiny_model();
  rm->attach(m2);
  randomize_b(*rm, 4);
  Stepper s(m2, *rm, 3);
  s.full_step(tiny_batch(9));
  s.full_step(tiny_batch(10));
  nlohmann::json r = rm->epoch_stats();
  EXPECT_EQ(r["mask_steps"].get<int64_t>(), 2);
  EXPECT_GT(r["orth_penalty_mean"].get<double>(), 0);
  EXPECT_GT(r["lora_output_norm_mean"].get<double>(), 0);
  EXPECT_TRUE(r["lora_modules"].begin()->contains("output_norm_mean"));
  nlohmann::json again = rm->epoch_stats();  // reset after each call
  EXPECT_EQ(again["mask_steps"].get<int64_t>(), 0);
  EXPECT_FALSE(again.contains("lora_output_norm_mean"));
}

// ---------------------------------------------------------------------------------------------------------------
// CLI: tiny model, real MRPC

TEST(RmLoraCli, TrainsLogsDiagnosticsAndInspectPrintsThem) {
  TempDir tmp;
  const std::string model = tmp.file("model");
  auto init = lorakit::testing::init_tiny_model(model, "--layers 1");
  ASSERT_EQ(init.exit_code, 0) << init.output;
  const std::string common = " --model " + model + " --task mrpc --data " + lorakit::testing::shared_dir() +
                             "/data/glue --max-train-samples 128 --max-eval-samples 64 --epochs 1 --threads 1 "
                             "--no-progress --r 4";
  for (std::string method : {"r-lora", "gm-lora", "rm-lora"}) {
    SCOPED_TRACE(method);
    const std::string out = tmp.file(method);
    std::string extra = method == "gm-lora" ? " --mask-directions 1 --mask-mode grad" : " --orth-reg 0.05";
    auto r = lorakit::testing::run_cli("train --method " + method + common + extra + " --out " + out);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    std::string jsonl = read_file(out + "/metrics.jsonl");
    ASSERT_FALSE(jsonl.empty());
    nlohmann::json line = nlohmann::json::parse(jsonl.substr(0, jsonl.find('\n')));
    for (auto key : {"dw_rank_mean", "dw_orth_loss_mean", "a_orth_loss_mean", "b_orth_loss_mean",
                     "lora_output_norm_mean", "lora_modules"})
      EXPECT_TRUE(line.contains(key)) << key << " in " << line.dump();
    EXPECT_EQ(line["lora_modules"].size(), 2u);  // query, value of one layer
    if (method != "gm-lora") {
      EXPECT_TRUE(line.contains("orth_penalty_mean"));
      EXPECT_DOUBLE_EQ(line["orth_reg"].get<double>(), 0.05);
    }
    if (method != "r-lora") {
      EXPECT_EQ(line["mask_steps"].get<int64_t>(), 4);  // 128 / 32
      EXPECT_EQ(line["mask_mode"].get<std::string>(), method == "gm-lora" ? "grad" : "update");
      EXPECT_EQ(line["mask_directions"].get<int64_t>(), method == "gm-lora" ? 1 : 2);
    }
    nlohmann::json cfg = nlohmann::json::parse(read_file(out + "/last/lorakit_config.json"));
    EXPECT_EQ(cfg["method"], method);

    auto ins = lorakit::testing::run_cli("inspect " + out + "/last");
    ASSERT_EQ(ins.exit_code, 0) << ins.output;
    for (auto key : {"dw_rank_mean", "dw_orth_loss_mean", "a_orth_loss_mean", "t_i_params", "attention.self.query"})
      EXPECT_NE(ins.output.find(key), std::string::npos) << key << " in\n" << ins.output;
    auto insj = lorakit::testing::run_cli("inspect --json " + out + "/last");
    ASSERT_EQ(insj.exit_code, 0) << insj.output;
    nlohmann::json ij = nlohmann::json::parse(insj.output);
    // The adapter on disk gives the same diagnostics as the last epoch's log.
    EXPECT_NEAR(ij["dw_orth_loss_mean"].get<double>(), line["dw_orth_loss_mean"].get<double>(),
                1e-9 * std::max(1.0, line["dw_orth_loss_mean"].get<double>()));
    EXPECT_EQ(ij["dw_rank_mean"].get<double>(), line["dw_rank_mean"].get<double>());
    EXPECT_EQ(ij["trainable_params"], ij["inference_params"]);
  }
  auto bad = lorakit::testing::run_cli("train --method rm-lora --mask-mode sometimes" + common + " --out " +
                                       tmp.file("bad"));
  EXPECT_NE(bad.exit_code, 0);
  auto too_many = lorakit::testing::run_cli("train --method gm-lora --mask-directions 5" + common + " --out " +
                                            tmp.file("bad2"));
  EXPECT_NE(too_many.exit_code, 0);
  EXPECT_NE(too_many.output.find("mask-directions"), std::string::npos) << too_many.output;
}
