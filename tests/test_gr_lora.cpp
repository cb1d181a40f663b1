// GR-LoRA (SPEC 3.1): the gradient-scaling function, the efficient per-sample gradient penalty
// against the naive one-backward-per-sample loop (fp64), and a tiny CLI training run on MRPC.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/torch.h>

#include <cmath>
#include <map>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/fileutil.h"
#include "models/bert.h"
#include "models/use_lite_task.h"
#include "support/helpers.h"

using lorakit::testing::read_jsonl;
#include "tasks/classification.h"
#include "tuners/gr_lora/model.h"
#include "tuners/registry.h"

using namespace lorakit;
using lorakit::testing::TempDir;

namespace {

double rel_diff(const at::Tensor& a, const at::Tensor& b) {
  const double denom = std::max(b.norm().item<double>(), 1e-300);
  return (a - b).norm().item<double>() / denom;
}

// ---------------------------------------------------------------- scaling function

TEST(GrLoraScaling, BackwardIsCTimesGradAndForwardIsIdentity) {
  torch::manual_seed(1);
  at::Tensor h = at::randn({3, 4, 5}, at::kDouble).requires_grad_(true);
  at::Tensor g = at::randn({3, 4, 5}, at::kDouble);
  const double lambda = 0.7, eps = 1e-6, max_scale = 100;
  double n = -1;
  at::Tensor out = grad_scale(h, lambda, eps, max_scale, {}, &n);
  EXPECT_TRUE(at::equal(out, h));
  EXPECT_DOUBLE_EQ(n, h.detach().norm().item<double>());
  out.backward(g);
  const double c = lambda / (n + eps);
  ASSERT_LT(c, max_scale);
  EXPECT_LT(rel_diff(h.grad(), g * c), 1e-15);
}

TEST(GrLoraScaling, ClampAtZeroAndSmallNorm) {
  EXPECT_DOUBLE_EQ(grad_scale_factor(0.0, 1.0, 1e-6, 100.0), 100.0);  // B = 0 at init: n = 0
  EXPECT_DOUBLE_EQ(grad_scale_factor(1e-3, 1.0, 1e-6, 100.0), 100.0);
  EXPECT_DOUBLE_EQ(grad_scale_factor(0.5, 2.0, 0.0, 100.0), 4.0);
  EXPECT_DOUBLE_EQ(grad_scale_factor(0.0, 1.0, 0.0, 7.0), 7.0);  // ε = 0 stays finite
  at::Tensor h = at::zeros({2, 3}, at::kDouble).requires_grad_(true);
  at::Tensor g = at::ones({2, 3}, at::kDouble);
  grad_scale(h, 1.0, 1e-6, 100.0).backward(g);
  EXPECT_TRUE(at::allclose(h.grad(), g * 100.0));
  // The bypass switch makes the backward the identity.
  auto sw = c10::make_intrusive<GradScaleSwitch>();
  at::Tensor h2 = (at::randn({2, 3}, at::kDouble) * 1e-3).requires_grad_(true);
  at::Tensor out = grad_scale(h2, 1.0, 1e-6, 100.0, sw);
  {
    GradScaleBypass b(sw);
    auto gi = torch::autograd::grad({out}, {h2}, {g}, /*retain_graph=*/true);
    EXPECT_TRUE(at::equal(gi[0], g));
  }
  auto gs = torch::autograd::grad({out}, {h2}, {g});
  EXPECT_TRUE(at::allclose(gs[0], g * 100.0));
}

// φ(y) = Σ w ⊙ sin(y). Surrogate S(h) = c₀ φ(h) (c₀ = c at the base point, a constant): autograd's
// first and second derivatives through the scaling node must match central differences of S.
TEST(GrLoraScaling, MatchesFiniteDifferencesOfSurrogateIncludingDoubleBackward) {
  torch::manual_seed(2);
  at::Tensor h0 = at::randn({4, 6}, at::kDouble);
  at::Tensor w = at::randn({4, 6}, at::kDouble);
  at::Tensor v = at::randn({4, 6}, at::kDouble);
  const double lambda = 1.3, eps = 1e-6, max_scale = 100;
  const double c0 = grad_scale_factor(h0.norm().item<double>(), lambda, eps, max_scale);
  auto phi = [&](const at::Tensor& y) { return (w * at::sin(y)).sum(); };
  at::Tensor h = h0.clone().requires_grad_(true);
  at::Tensor loss = phi(grad_scale(h, lambda, eps, max_scale));
  at::Tensor g1 = torch::autograd::grad({loss}, {h}, {}, true, /*create_graph=*/true)[0];
  at::Tensor g2 = torch::autograd::grad({(g1 * v).sum()}, {h})[0];
  // First derivative: central differences of S along every coordinate.
  const double e = 1e-6;
  at::Tensor fd = at::zeros_like(h0);
  auto flat = h0.reshape(-1);
  for (int64_t k = 0; k < flat.numel(); ++k) {
    at::Tensor hp = h0.clone(), hm = h0.clone();
    hp.view(-1)[k] += e;
    hm.view(-1)[k] -= e;
    fd.view(-1)[k] = c0 * (phi(hp) - phi(hm)).item<double>() / (2 * e);
  }
  EXPECT_LT(rel_diff(g1.detach(), fd), 1e-8);
  // Second derivative along v: the first gradient ∇S = c₀ w ⊙ cos(y) depends on h through the scaling
  // node again, so the double backward scales once more: g2 = c₀ · (central difference of ∇S along v).
  auto dphi = [&](const at::Tensor& x) { return c0 * w * at::cos(x); };
  at::Tensor dS = dphi(h0 + e * v) - dphi(h0 - e * v);
  EXPECT_LT(rel_diff(g2, c0 * dS / (2 * e)), 1e-7);
}

// ---------------------------------------------------------------- penalty: efficient = naive

struct GrFixture {
  SequenceClassifier model{nullptr};
  std::unique_ptr<GrLoraMethod> method;
  at::Tensor ids, mask, tt;
  bool regression = false;
  std::shared_ptr<Task> task;  // MNLI (3 labels) or STS-B (regression): what the trainer would pass
};

GrFixture make_setup(bool regression, GrLoraConfig gr, uint64_t seed = 5, bool roberta = false) {
  ModelConfig c;
  if (roberta) {
    c.model_type = "roberta";
    c.pad_token_id = 1;
    c.type_vocab_size = 1;
    c.layer_norm_eps = 1e-5;
  }
  c.vocab_size = 60;
  c.hidden_size = 16;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 2;
  c.intermediate_size = 24;
  c.max_position_embeddings = roberta ? 20 : 16;
  c.hidden_dropout_prob = 0.1;
  c.attention_probs_dropout_prob = 0.1;
  c.num_labels = regression ? 1 : 3;
  if (regression) c.problem_type = "regression";
  torch::manual_seed(seed);
  GrFixture s;
  s.regression = regression;
  s.task = make_task(regression ? "stsb" : "mnli");
  s.model = SequenceClassifier(c);
  s.model->init_weights();
  s.model->to(at::kDouble);
  LoraConfig lc;
  lc.r = 3;
  lc.lora_alpha = 6;
  lc.lora_dropout = 0.25;
  lc.target_modules = {"query", "value", "dense"};  // also attention.output / output / pooler dense
  if (roberta) {  // PEFT's regex form of target_modules, and rsLoRA
    lc.target_regex = ".*\\.(query|key|intermediate\\.dense)";
    lc.use_rslora = true;
    lc.init_lora_weights = "gaussian";
  }
  s.method = std::make_unique<GrLoraMethod>(lc, gr);
  s.method->attach(s.model);
  {
    torch::NoGradGuard g;  // B ≠ 0 so that every gradient and every c is non-trivial
    for (auto* l : s.method->gr_layers()) l->lora_B->weight.normal_(0.0, 0.2);
  }
  const int64_t B = 6, T = 7;
  s.ids = at::randint(3, c.vocab_size, {B, T}, at::kLong);
  s.mask = at::ones({B, T}, at::kLong);
  s.mask.index_put_({1, at::indexing::Slice(4, at::indexing::None)}, 0);  // padding in rows 1, 3, 4
  s.mask.index_put_({3, at::indexing::Slice(2, at::indexing::None)}, 0);
  s.mask.index_put_({4, at::indexing::Slice(6, at::indexing::None)}, 0);
  s.ids.masked_fill_(s.mask.eq(0), c.pad_token_id);
  s.tt = at::zeros({B, T}, at::kLong);
  s.model->train();  // model dropout and LoRA dropout on
  return s;
}

// Forward (one dropout mask), then labels chosen so that S is a strict, non-empty subset.
StepInfo forward_step(GrFixture& s, uint64_t dropout_seed = 17, bool none_correct = false) {
  torch::manual_seed(dropout_seed);
  StepInfo info;
  info.logits = s.model->forward(s.ids, s.mask, s.tt);
  info.task = s.task.get();
  const int64_t B = info.logits.size(0);
  if (s.regression) {
    at::Tensor off = at::tensor({0.1, 2.0, -0.3, 1.5, 0.2, -0.9}, at::kDouble);
    if (none_correct) off = at::full({B}, 3.0, at::kDouble);
    info.labels = (info.logits.detach().squeeze(-1) + off).to(at::kFloat);
  } else {
    at::Tensor am = info.logits.detach().argmax(-1);
    at::Tensor wrong = at::tensor({0, 1, 0, 1, 1, 0}, at::kLong);
    if (none_correct) wrong = at::ones({B}, at::kLong);
    info.labels = (am + wrong) % info.logits.size(1);
  }
  info.per_sample_loss = per_sample_loss(info.logits, info.labels, s.regression);
  info.task_loss = info.per_sample_loss.mean();
  return info;
}

std::vector<at::Tensor> lora_params(const GrLoraMethod& m) {
  std::vector<at::Tensor> p;
  for (auto* l : m.gr_layers()) {
    p.push_back(l->lora_A->weight);
    p.push_back(l->lora_B->weight);
  }
  return p;
}

void expect_paths_agree(GrLoraMethod& method, StepInfo& info, bool regression);

void expect_efficient_equals_naive(bool regression, bool roberta = false) {
  GrFixture s = make_setup(regression, GrLoraConfig{}, 5, roberta);
  StepInfo info = forward_step(s);
  expect_paths_agree(*s.method, info, regression);
}

// Penalty value and gradients of the efficient path against the naive one, on one forward.
void expect_paths_agree(GrLoraMethod& method, StepInfo& info, bool regression) {
  const int64_t n_s = correct_mask(info.logits, info.labels, regression, 0.5).sum().item<int64_t>();
  ASSERT_GT(n_s, 0);
  ASSERT_LT(n_s, info.logits.size(0));  // S is a strict subset
  at::Tensor pe = method.penalty(info, "efficient");
  at::Tensor pn = method.penalty(info, "naive");
  ASSERT_GT(pn.item<double>(), 0);
  EXPECT_LT(std::abs(pe.item<double>() - pn.item<double>()), 1e-5 * std::abs(pn.item<double>()))
      << pe.item<double>() << " vs " << pn.item<double>();
  auto params = lora_params(method);
  auto ge = torch::autograd::grad({pe}, params, {}, /*retain_graph=*/true, false, /*allow_unused=*/true);
  auto gn = torch::autograd::grad({pn}, params, {}, /*retain_graph=*/true, false, /*allow_unused=*/true);
  ASSERT_EQ(ge.size(), gn.size());
  for (size_t k = 0; k < ge.size(); ++k) {
    ASSERT_TRUE(ge[k].defined() && gn[k].defined()) << k;
    ASSERT_GT(gn[k].norm().item<double>(), 0) << k;
    EXPECT_LT(rel_diff(ge[k], gn[k]), 1e-5) << "parameter " << k;
    EXPECT_TRUE(at::allclose(ge[k], gn[k], 1e-5, 1e-12)) << "parameter " << k;
  }
  // The full objective's gradient (what the trainer's double backward computes) agrees too.
  auto te = torch::autograd::grad({info.task_loss + pe}, params, {}, true, false, true);
  auto tn = torch::autograd::grad({info.task_loss + pn}, params, {}, true, false, true);
  for (size_t k = 0; k < te.size(); ++k) EXPECT_LT(rel_diff(te[k], tn[k]), 1e-5) << "parameter " << k;
}

TEST(GrLoraPenalty, EfficientEqualsNaiveClassification) { expect_efficient_equals_naive(false); }
TEST(GrLoraPenalty, EfficientEqualsNaiveRegression) { expect_efficient_equals_naive(true); }
TEST(GrLoraPenalty, EfficientEqualsNaiveRobertaRsloraRegexTargets) { expect_efficient_equals_naive(false, true); }

// USE-lite's bi-encoder runs each pair as two encoder rows (its sentences, stacked block-wise: rows i and B + i),
// so one example's per-sample gradient gathers both; the naive loop's autograd sees that by construction.
TEST(GrLoraPenalty, EfficientEqualsNaiveOnUseLitePairs) {
  torch::manual_seed(8);
  ModelConfig c = use_lite_model_config(3, "bi-encoder");  // random weights of the real architecture
  SequenceClassifier model(c);
  model->init_weights();
  model->to(at::kDouble);
  LoraConfig lc;
  lc.r = 3;
  lc.lora_alpha = 6;
  lc.lora_dropout = 0.25;
  lc.target_modules = c.default_lora_targets();
  GrLoraMethod method(lc, GrLoraConfig{});
  method.attach(model);
  {
    torch::NoGradGuard g;
    for (auto* l : method.gr_layers()) l->lora_B->weight.normal_(0.0, 0.2);
  }
  ASSERT_FALSE(method.gr_layers().empty());
  const int64_t B = 6, T = 9;
  const std::vector<int64_t> len = {9, 7, 9, 5, 8, 6}, len_a = {4, 3, 6, 2, 4, 3};
  at::Tensor ids = at::randint(5, c.vocab_size, {B, T}, at::kLong);
  at::Tensor mask = at::zeros({B, T}, at::kLong), tt = at::zeros({B, T}, at::kLong);
  for (int64_t r = 0; r < B; ++r)
    for (int64_t t = 0; t < len[r]; ++t) {
      mask[r][t] = 1;
      tt[r][t] = t >= len_a[r] ? 1 : 0;
    }
  model->train();
  torch::manual_seed(17);
  auto task = make_task("mnli");
  StepInfo info;
  info.logits = model->forward(ids, mask, tt);
  info.task = task.get();
  ASSERT_EQ(method.gr_layers().front()->rec_x.size(0), 2 * B);  // the encoder saw both sentences as rows
  at::Tensor wrong = at::tensor({0, 1, 0, 1, 1, 0}, at::kLong);
  info.labels = (info.logits.detach().argmax(-1) + wrong) % info.logits.size(1);
  info.per_sample_loss = per_sample_loss(info.logits, info.labels, false);
  info.task_loss = info.per_sample_loss.mean();
  expect_paths_agree(method, info, false);
}

// The penalty uses true per-sample gradients: its value must not depend on the scaling (which would
// otherwise enter through the scaled branches of the layers above each module).
TEST(GrLoraPenalty, ScalingNeverEntersThePenaltyValue) {
  GrLoraConfig on, off;
  on.scale = 0.37;  // c far from 1
  off.scaling = false;
  GrFixture a = make_setup(false, on), b = make_setup(false, off);
  StepInfo ia = forward_step(a), ib = forward_step(b);
  ASSERT_TRUE(at::allclose(ia.logits, ib.logits, 0, 0));
  for (auto* l : a.method->gr_layers()) EXPECT_NE(l->last_scale, 1.0);
  const double pa = a.method->penalty(ia).item<double>(), pb = b.method->penalty(ib).item<double>();
  EXPECT_LT(std::abs(pa - pb), 1e-12 * std::abs(pb));
  const double na = a.method->penalty(ia, "naive").item<double>();
  EXPECT_LT(std::abs(na - pb), 1e-12 * std::abs(pb));
}

TEST(GrLoraPenalty, EmptySetGivesZeroAndFiniteGradients) {
  for (bool regression : {false, true}) {
    GrFixture s = make_setup(regression, GrLoraConfig{});
    StepInfo info = forward_step(s, 17, /*none_correct=*/true);
    ASSERT_EQ(correct_mask(info.logits, info.labels, regression, 0.5).sum().item<int64_t>(), 0);
    at::Tensor p = s.method->extra_loss(info);
    ASSERT_TRUE(p.defined());
    EXPECT_EQ(p.item<double>(), 0.0);
    at::Tensor loss = info.task_loss + p;
    ASSERT_TRUE(std::isfinite(loss.item<double>()));
    loss.backward();
    for (auto& t : lora_params(*s.method)) {
      ASSERT_TRUE(t.grad().defined());
      EXPECT_TRUE(at::isfinite(t.grad()).all().item<bool>());
    }
    auto st = s.method->epoch_stats();
    EXPECT_EQ(st["gr_correct_fraction"].get<double>(), 0.0);
    EXPECT_EQ(st["gr_penalty"].get<double>(), 0.0);
  }
}

TEST(GrLoraPenalty, RecordsOnlyInTrainingAndAreReleased) {
  GrFixture s = make_setup(false, GrLoraConfig{});
  {
    torch::NoGradGuard ng;
    s.model->forward(s.ids, s.mask, s.tt);
  }
  for (auto* l : s.method->gr_layers()) EXPECT_FALSE(l->rec_h.defined());
  s.model->eval();
  s.model->forward(s.ids, s.mask, s.tt);
  for (auto* l : s.method->gr_layers()) EXPECT_FALSE(l->rec_h.defined());
  s.model->train();
  StepInfo info = forward_step(s);
  for (auto* l : s.method->gr_layers()) EXPECT_TRUE(l->rec_h.defined() && l->rec_x.defined());
  at::Tensor p = s.method->extra_loss(info);
  for (auto* l : s.method->gr_layers()) EXPECT_FALSE(l->rec_h.defined());
  (info.task_loss + p).backward();  // the double backward runs on the penalty's own graph
  auto st = s.method->epoch_stats();
  EXPECT_GT(st["gr_penalty"].get<double>(), 0.0);
  EXPECT_NEAR(st["gr_correct_fraction"].get<double>(), 3.0 / 6.0, 1e-12);
  EXPECT_LE(st["gr_scale_min"].get<double>(), st["gr_scale_median"].get<double>());
  EXPECT_LE(st["gr_scale_median"].get<double>(), st["gr_scale_max"].get<double>());
  // --gr-no-penalty: nothing recorded, no extra loss.
  GrLoraConfig np;
  np.penalty = false;
  GrFixture t = make_setup(false, np);
  StepInfo ti = forward_step(t);
  for (auto* l : t.method->gr_layers()) EXPECT_FALSE(l->rec_h.defined());
  EXPECT_FALSE(t.method->extra_loss(ti).defined());
}

TEST(GrLoraConfigTest, FromJsonAndRegistry) {
  MethodOptions mo;
  mo.extra = {{"gr_scale", 2.0}, {"gr_reg", 0.05}, {"gr_penalty", "naive"}, {"gr_no_scaling", true}};
  auto m = make_method("gr-lora", mo);
  ASSERT_EQ(m->name(), "gr-lora");
  auto* g = dynamic_cast<GrLoraMethod*>(m.get());
  ASSERT_NE(g, nullptr);
  EXPECT_EQ(g->gr_config().scale, 2.0);
  EXPECT_EQ(g->gr_config().reg, 0.05);
  EXPECT_EQ(g->gr_config().penalty_mode, "naive");
  EXPECT_FALSE(g->gr_config().scaling);
  EXPECT_EQ(g->extra_config()["gr_lora"]["gr_reg"].get<double>(), 0.05);
  mo.extra = {{"gr_penalty", "fast"}};
  EXPECT_THROW(make_method("gr-lora", mo), Error);
  mo.extra = {{"gr_max_scale", -1.0}};
  EXPECT_THROW(make_method("gr-lora", mo), Error);
  mo.extra = {{"gr_scale_scope", "params"}};
  auto p = make_method("gr-lora", mo);
  EXPECT_TRUE(dynamic_cast<GrLoraMethod*>(p.get())->gr_config().params_scope());
  EXPECT_EQ(dynamic_cast<GrLoraMethod*>(p.get())->extra_config()["gr_lora"]["gr_scale_scope"], "params");
  EXPECT_EQ(GrLoraConfig::from_json(GrLoraConfig::from_json(mo.extra).to_json()).scope, "params");
  EXPECT_EQ(GrLoraConfig::from_json(nlohmann::json::object()).scope, "branch");  // a run saved before the flag
  EXPECT_FALSE(GrLoraConfig{}.to_json().contains("gr_scale_scope"));  // the default describes as before the flag
  mo.extra = {{"gr_scale_scope", "module"}};
  EXPECT_THROW(make_method("gr-lora", mo), Error);
}

// ---------------------------------------------------------------- --gr-scale-scope params

// The trainable parameters' gradients after extra_loss, the backward and the after_backward hook.
std::vector<at::Tensor> step_gradients(GrFixture& s, StepInfo& info) {
  at::Tensor p = s.method->extra_loss(info);
  (p.defined() ? info.task_loss + p : info.task_loss).backward();
  s.method->after_backward(info);
  std::vector<at::Tensor> g;
  for (auto& t : s.model->parameters())
    if (t.requires_grad()) g.push_back(t.grad().defined() ? t.grad().clone() : at::zeros_like(t));
  return g;
}

// Scope "params": A's and B's gradients are c·∇L_task + ∇P and every other gradient is the unscaled one;
// the reference is the same model and dropout with the scaling off (so no gradient anywhere is scaled),
// whose task and penalty gradients are taken apart.
void expect_params_scope(const std::string& mode, bool penalty) {
  GrLoraConfig on, off;
  on.scope = "params";
  on.scale = 0.37;  // c far from 1
  on.penalty_mode = off.penalty_mode = mode;
  off.scaling = false;
  on.penalty = off.penalty = penalty;
  GrFixture a = make_setup(false, on), b = make_setup(false, off);
  StepInfo ia = forward_step(a), ib = forward_step(b);
  ASSERT_TRUE(at::allclose(ia.logits, ib.logits, 0, 0));
  std::vector<at::Tensor> trainable;
  for (auto& t : b.model->parameters())
    if (t.requires_grad()) trainable.push_back(t);
  auto task = torch::autograd::grad({ib.task_loss}, trainable, {}, /*retain_graph=*/true, false, /*allow_unused=*/true);
  auto total = step_gradients(b, ib);  // scaling off: ∇L_task + ∇P
  auto got = step_gradients(a, ia);
  ASSERT_EQ(got.size(), total.size());
  // c of the module owning each trainable tensor (1 for the classifier head).
  std::map<const void*, double> c_of;
  const auto al = a.method->gr_layers();
  for (auto* l : al) {
    ASSERT_GT(std::abs(l->last_scale - 1.0), 0.1);
    c_of[l->lora_A->weight.unsafeGetTensorImpl()] = c_of[l->lora_B->weight.unsafeGetTensorImpl()] = l->last_scale;
  }
  size_t k = 0, scaled = 0;
  for (auto& t : a.model->parameters()) {
    if (!t.requires_grad()) continue;
    const at::Tensor t_task = task[k].defined() ? task[k] : at::zeros_like(total[k]);
    auto it = c_of.find(t.unsafeGetTensorImpl());
    const double c = it == c_of.end() ? 1.0 : it->second;
    scaled += it != c_of.end();
    const at::Tensor want = total[k] + (c - 1.0) * t_task;
    ASSERT_GT(want.norm().item<double>(), 0) << k;
    EXPECT_LT(rel_diff(got[k], want), 1e-9) << mode << " parameter " << k << " c " << c;
    ++k;
  }
  EXPECT_EQ(scaled, 2 * al.size());
  for (auto* l : al) EXPECT_FALSE(l->task_grad_A.defined() || l->task_grad_B.defined());  // used once
  // The penalty itself is the one of the unscaled model.
  if (penalty) {
    const auto sa = a.method->epoch_stats(), sb = b.method->epoch_stats();
    EXPECT_NEAR(sa["gr_penalty"].get<double>(), sb["gr_penalty"].get<double>(), 1e-12 * sb["gr_penalty"].get<double>());
  }
}

TEST(GrLoraScaleScope, ParamsScalesOnlyTheTaskGradientsOfAAndBEfficient) { expect_params_scope("efficient", true); }
TEST(GrLoraScaleScope, ParamsScalesOnlyTheTaskGradientsOfAAndBNaive) { expect_params_scope("naive", true); }
TEST(GrLoraScaleScope, ParamsWithoutThePenaltyIsCTimesTheTaskGradient) { expect_params_scope("efficient", false); }

// ---------------------------------------------------------------- CLI run on real MRPC

TEST(GrLoraCli, TrainsOnMrpcLowersLossAndLogs) {
  TempDir tmp;
  const std::string model = tmp.file("model"), out = tmp.file("run");
  auto r = lorakit::testing::init_tiny_model(model, "--layers 1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = lorakit::testing::run_cli("train --model " + model + " --task mrpc --data " + lorakit::testing::shared_dir() +
                                "/data/glue --method gr-lora --max-train-samples 256 --max-eval-samples 64 --epochs 2"
                                " --threads 1 --no-progress --gr-reg 0.02 --gr-tau 0.4 --out " + out);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto lines = read_jsonl(out + "/metrics.jsonl");
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_LT(lines[1]["train_loss"].get<double>(), lines[0]["train_loss"].get<double>());
  for (auto& l : lines) {
    for (const char* k : {"gr_correct_fraction", "gr_penalty", "gr_scale_min", "gr_scale_median", "gr_scale_max"})
      ASSERT_TRUE(l.contains(k)) << k << " missing in " << l.dump();
    EXPECT_GT(l["gr_correct_fraction"].get<double>(), 0.0);
    EXPECT_GT(l["gr_penalty"].get<double>(), 0.0);
    EXPECT_GT(l["gr_scale_min"].get<double>(), 0.0);
    EXPECT_LE(l["gr_scale_max"].get<double>(), 100.0);
  }
  // A plain PEFT LoRA adapter; the GR settings are in lorakit_config.json beside it.
  auto cfg = nlohmann::json::parse(read_text_file(out + "/last/adapter_config.json"));
  EXPECT_EQ(cfg["peft_type"], "LORA");
  EXPECT_FALSE(cfg.contains("lorakit"));
  auto side = nlohmann::json::parse(read_text_file(out + "/last/lorakit_config.json"));
  EXPECT_EQ(side["method"], "gr-lora");
  EXPECT_EQ(side["gr_lora"]["gr_reg"].get<double>(), 0.02);
  EXPECT_EQ(side["gr_lora"]["gr_tau"].get<double>(), 0.4);
  // It loads back as LoRA: evaluation with the adapter runs.
  r = lorakit::testing::run_cli("eval --adapter " + out + "/last --task mrpc --data " + lorakit::testing::shared_dir() +
                                "/data/glue --max-eval-samples 16 --threads 1");
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

}  // namespace
