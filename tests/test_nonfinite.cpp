// Non-finite losses and gradients (issue 13): a step whose loss or gradient norm is NaN / inf is skipped
// (no update of parameters, optimizer or schedule-independent state), counted in the epoch log, and
// --max-bad-steps of them in a row stop the run with an error before anything is written over best/.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/torch.h>

#include <fstream>
#include <limits>

#include "core/errors.h"
#include "core/fileutil.h"
#include "models/checkpoint.h"
#include "support/helpers.h"
#include "support/tiny_model.h"
#include "tasks/classification.h"
#include "text/metrics.h"
#include "train/trainer.h"
#include "tuners/lora/model.h"
#include "tuners/registry.h"

using namespace lorakit;
using lorakit::testing::TempDir;

namespace {

const double kNaN = std::numeric_limits<double>::quiet_NaN();

// 16 rows of 9 random ids in [5, 60); the rows in `poisoned` carry token 100, whose embedding the tests
// set to NaN.
class RowsDataset : public TaskDataset {
 public:
  explicit RowsDataset(std::vector<size_t> poisoned) : poisoned_(std::move(poisoned)), lengths_(16, 9) {
    at::Generator g = at::make_generator<at::CPUGeneratorImpl>(3);
    ids_ = at::randint(5, 60, {16, 9}, g, at::kLong);
    labels_ = at::randint(0, 2, {16}, g, at::kLong);
    for (size_t r : poisoned_) ids_[static_cast<int64_t>(r)][4] = 100;
  }
  size_t size() const override { return 16; }
  const std::vector<size_t>& lengths() const override { return lengths_; }
  Batch collate(const std::vector<size_t>& idx) const override {
    std::vector<int64_t> rows(idx.begin(), idx.end());
    at::Tensor sel = at::tensor(rows, at::kLong);
    Batch b;
    b.input_ids = ids_.index_select(0, sel);
    b.attention_mask = at::ones_like(b.input_ids);
    b.token_type_ids = at::zeros_like(b.input_ids);
    b.labels = labels_.index_select(0, sel);
    b.indices = idx;
    return b;
  }
  std::vector<double> labels() const {
    std::vector<double> v;
    for (int64_t i = 0; i < 16; ++i) v.push_back(static_cast<double>(labels_[i].item<int64_t>()));
    return v;
  }

 private:
  std::vector<size_t> poisoned_;
  std::vector<size_t> lengths_;
  at::Tensor ids_, labels_;
};

// A two-class task over RowsDataset (the seam lets a test bring its own task).
class RowsTask : public Task {
 public:
  std::string name() const override { return "rows"; }
  std::string kind() const override { return "test"; }
  std::string main_metric() const override { return "accuracy"; }
  std::vector<std::string> metric_names() const override { return {"accuracy"}; }
  void head_options(LoadOptions& lo) const override { lo.num_labels = 2; }
  void check_model(const LoadedModel&) const override {}
  std::unique_ptr<TaskDataset> load(Split, const LoadedModel&, const TaskOptions&) const override { return nullptr; }
  at::Tensor per_sample_loss(const at::Tensor& out, const at::Tensor& labels) const override {
    return lorakit::per_sample_loss(out, labels, false);
  }
  at::Tensor correct(const at::Tensor& out, const at::Tensor& labels, double) const override {
    return correct_mask(out, labels, false);
  }
  std::unique_ptr<MetricCollector> collector(const TaskDataset& ds) const override {
    return std::make_unique<PredictionCollector>(
        ds.size(), dynamic_cast<const RowsDataset&>(ds).labels(), false,
        [](const std::vector<double>& p, const std::vector<double>& l) {
          return std::map<std::string, double>{{"accuracy", data::accuracy(p, l)}};
        });
  }
};

struct Poisonable {
  LoadedModel lm;
  std::unique_ptr<Method> method;
  at::Tensor embedding;  // bert.embeddings.word_embeddings.weight
};

Poisonable make_setup(const TempDir& d, std::unique_ptr<Method> method = nullptr) {
  ModelConfig c = lorakit::testing::oracle_config("bert");
  c.hidden_dropout_prob = 0;
  c.attention_probs_dropout_prob = 0;
  lorakit::testing::write_perturbed_model(c, d.file("m"));
  LoadOptions lo;
  RowsTask().head_options(lo);
  Poisonable s{load_model(d.file("m"), lo), nullptr, {}};
  MethodOptions mo;
  mo.lora.r = 4;
  mo.lora.target_modules = {"query", "value"};
  mo.lora.modules_to_save = {"classifier"};
  s.method = method ? std::move(method) : make_method("lora", mo);
  torch::manual_seed(1);
  s.method->attach(s.lm.model);
  s.embedding = s.lm.model->named_parameters(true)["bert.embeddings.word_embeddings.weight"];
  return s;
}

std::map<std::string, at::Tensor> trainable_copy(const SequenceClassifier& m) {
  std::map<std::string, at::Tensor> out;
  for (auto& p : m->named_parameters(true))
    if (p.value().requires_grad()) out[p.key()] = p.value().detach().clone();
  return out;
}

}  // namespace

TEST(NonFinite, StepWithNaNLossMakesNoUpdateAndTheNextOneDoes) {
  TempDir d;
  Poisonable s = make_setup(d);
  RowsTask task;
  TrainConfig tc;
  tc.lr = 1e-2;
  tc.warmup_steps = 0;
  StepRunner runner(s.lm.model, *s.method, task, tc, 10, 0);
  RowsDataset rows({0});
  const auto before = trainable_copy(s.lm.model);
  {
    torch::NoGradGuard ng;
    s.embedding[100].fill_(kNaN);
  }
  auto out = runner.step(rows.collate({0, 1, 2, 3}), 1);
  EXPECT_TRUE(out.skipped);
  EXPECT_FALSE(std::isfinite(out.loss));
  EXPECT_EQ(runner.steps_taken(), 1);
  for (auto& [k, v] : trainable_copy(s.lm.model)) EXPECT_TRUE(v.equal(before.at(k))) << k;
  // Rows without the poisoned token: a normal step, which moves the trainable parameters (all finite).
  out = runner.step(rows.collate({4, 5, 6, 7}), 1);
  EXPECT_FALSE(out.skipped);
  EXPECT_TRUE(std::isfinite(out.loss));
  bool moved = false;
  for (auto& [k, v] : trainable_copy(s.lm.model)) {
    EXPECT_TRUE(v.isfinite().all().item<bool>()) << k;
    moved = moved || !v.equal(before.at(k));
  }
  EXPECT_TRUE(moved);
}

// Method::after_backward: called once per step that ran a backward (not for a skipped one), on the gradients as the
// backward left them, before clipping (GR-LoRA's --gr-scale-scope params corrects them there).
class HookProbe : public LoraMethod {
 public:
  using LoraMethod::LoraMethod;
  int after_backward_calls = 0;
  double norm_at_hook = -1, norm_before_step = -1;
  void after_backward(StepInfo&) override {
    ++after_backward_calls;
    norm_at_hook = grad_norm();
  }
  void before_optimizer_step(StepInfo&, torch::optim::Optimizer&) override { norm_before_step = grad_norm(); }
  SequenceClassifier* model = nullptr;

 private:
  double grad_norm() const {
    double sq = 0;
    for (auto& p : (*model)->parameters())
      if (p.grad().defined()) sq += p.grad().square().sum().item<double>();
    return std::sqrt(sq);
  }
};

TEST(NonFinite, AfterBackwardRunsOncePerTakenStepBeforeClipping) {
  TempDir d;
  LoraConfig lc;
  lc.r = 4;
  lc.target_modules = {"query", "value"};
  lc.modules_to_save = {"classifier"};
  auto probe = std::make_unique<HookProbe>(lc);
  HookProbe& p = *probe;
  Poisonable s = make_setup(d, std::move(probe));
  p.model = &s.lm.model;
  RowsTask task;
  TrainConfig tc;
  tc.lr = 1e-2;
  tc.warmup_steps = 0;
  tc.max_grad_norm = 1e-6;  // clipping certainly scales
  StepRunner runner(s.lm.model, *s.method, task, tc, 10, 0);
  RowsDataset rows({0});
  {
    torch::NoGradGuard ng;
    s.embedding[100].fill_(kNaN);
  }
  EXPECT_TRUE(runner.step(rows.collate({0, 1, 2, 3}), 1).skipped);
  EXPECT_EQ(p.after_backward_calls, 0);
  EXPECT_FALSE(runner.step(rows.collate({4, 5, 6, 7}), 1).skipped);
  EXPECT_EQ(p.after_backward_calls, 1);
  EXPECT_GT(p.norm_at_hook, 1e-3);                 // the backward's gradients
  EXPECT_NEAR(p.norm_before_step, 1e-6, 1e-7);     // clipped after the hook
  EXPECT_FALSE(runner.step(rows.collate({4, 5, 6, 7}), 1).skipped);
  EXPECT_EQ(p.after_backward_calls, 2);
}

TEST(NonFinite, TrainerSkipsCountsAndStopsAfterMaxBadSteps) {
  // Some rows poisoned: their batches are skipped and counted; the run finishes with finite weights.
  {
    TempDir d;
    Poisonable s = make_setup(d);
    {
      torch::NoGradGuard ng;
      s.embedding[100].fill_(kNaN);
    }
    RowsTask task;
    RowsDataset train_rows({0, 1}), eval_rows({});
    TrainConfig tc;
    tc.out_dir = d.file("run");
    tc.epochs = 2;
    tc.batch_size = 4;
    tc.lr = 1e-2;
    tc.progress = false;
    TrainResult r = train(s.lm, *s.method, task, train_rows, eval_rows, tc);
    ASSERT_EQ(r.epochs.size(), 2u);
    for (auto& e : r.epochs) {
      const int64_t sk = e["skipped_steps"].get<int64_t>();
      EXPECT_GE(sk, 1) << e.dump();  // rows 0 and 1 lie in one or two of the four batches
      EXPECT_LE(sk, 2) << e.dump();
      EXPECT_TRUE(std::isfinite(e["train_loss"].get<double>())) << e.dump();
    }
    EXPECT_TRUE(file_exists(d.file("run/last/adapter_model.safetensors")));
  }
  // Every row poisoned: --max-bad-steps 2 → the third skipped step in a row stops the run, nothing saved.
  {
    TempDir d;
    Poisonable s = make_setup(d);
    {
      torch::NoGradGuard ng;
      s.embedding.fill_(kNaN);
    }
    RowsTask task;
    RowsDataset rows({});
    TrainConfig tc;
    tc.out_dir = d.file("run");
    tc.epochs = 2;
    tc.batch_size = 4;
    tc.max_bad_steps = 2;
    tc.progress = false;
    std::string msg;
    try {
      train(s.lm, *s.method, task, rows, rows, tc);
    } catch (const Error& e) {
      msg = e.what();
    }
    EXPECT_NE(msg.find("training stopped at step 3: 3 step(s) in a row had a non-finite loss or gradient"),
              std::string::npos)
        << msg;
    EXPECT_FALSE(file_exists(d.file("run/best/adapter_model.safetensors")));
    EXPECT_FALSE(file_exists(d.file("run/last/adapter_model.safetensors")));
  }
  TrainConfig bad;
  bad.out_dir = "x";
  bad.max_bad_steps = -1;
  EXPECT_THROW(bad.validate(), Error);
}
