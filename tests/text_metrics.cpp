// Metrics against hand-computed values (arithmetic in the comments).
#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>

#include "text/glue.h"
#include "text/metrics.h"

using namespace lorakit::data;
using V = std::vector<double>;

namespace {
// preds / labels used by several tests.
//   idx    0 1 2 3 4
//   pred   0 1 1 0 1
//   label  0 1 0 0 0
// correct at 0,1,3 -> accuracy 3/5 = 0.6
// TP = 1 (idx1), FP = 2 (idx2, idx4), FN = 0 -> F1 = 2*1 / (2*1 + 2 + 0) = 0.5
const V kPred = {0, 1, 1, 0, 1};
const V kLab = {0, 1, 0, 0, 0};

// x = 1..5, y = 2,4,5,4,5
//   mean x = 3, mean y = 20/5 = 4
//   dx = -2,-1,0,1,2   dy = -2,0,1,0,1
//   Sxy = 4+0+0+0+2 = 6, Sxx = 10, Syy = 4+0+1+0+1 = 6
//   pearson = 6 / sqrt(60) = 0.774596669...
// ranks(y): 2 -> 1; 4,4 -> (2+3)/2 = 2.5; 5,5 -> (4+5)/2 = 4.5
//   ry = 1,2.5,4.5,2.5,4.5, mean 3, dy = -2,-0.5,1.5,-0.5,1.5
//   Sxy = 4+0.5+0-0.5+3 = 7, Syy = 4+0.25+2.25+0.25+2.25 = 9, Sxx = 10
//   spearman = 7 / sqrt(90) = 0.737864787...
const V kX = {1, 2, 3, 4, 5};
const V kY = {2, 4, 5, 4, 5};
const double kPearson = 6.0 / std::sqrt(60.0);
const double kSpearman = 7.0 / std::sqrt(90.0);

// Binary confusion matrix TP=6, TN=3, FP=1, FN=2 (n = 12):
//   MCC = (TP*TN - FP*FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN))
//       = (18 - 2) / sqrt(7 * 8 * 4 * 5) = 16 / sqrt(1120) = 0.478091443...
void confusion(V& pred, V& lab) {
  auto add = [&](double p, double t, int k) {
    for (int i = 0; i < k; ++i) {
      pred.push_back(p);
      lab.push_back(t);
    }
  };
  add(1, 1, 6);  // TP
  add(0, 0, 3);  // TN
  add(1, 0, 1);  // FP
  add(0, 1, 2);  // FN
}
}  // namespace

TEST(MetricsBasic, AccuracyAndF1) {
  EXPECT_DOUBLE_EQ(accuracy(kPred, kLab), 0.6);
  EXPECT_DOUBLE_EQ(f1_binary(kPred, kLab), 0.5);
  // all correct
  EXPECT_DOUBLE_EQ(accuracy(kLab, kLab), 1.0);
  EXPECT_DOUBLE_EQ(f1_binary(kLab, kLab), 1.0);
  // TP=6, FP=1, FN=2: F1 = 12 / (12 + 1 + 2) = 0.8; accuracy = 9/12 = 0.75
  V p, t;
  confusion(p, t);
  EXPECT_DOUBLE_EQ(f1_binary(p, t), 12.0 / 15.0);
  EXPECT_DOUBLE_EQ(accuracy(p, t), 0.75);
  // multiclass accuracy: 2 of 4
  EXPECT_DOUBLE_EQ(accuracy({0, 1, 2, 2}, {0, 2, 2, 1}), 0.5);
}

TEST(MetricsMcc, BinaryKnownConfusionMatrix) {
  V p, t;
  confusion(p, t);
  EXPECT_NEAR(matthews_corrcoef(p, t), 16.0 / std::sqrt(1120.0), 1e-12);
  EXPECT_NEAR(matthews_corrcoef(p, t), 0.478091443733757, 1e-12);
  // perfect and perfectly inverted
  EXPECT_DOUBLE_EQ(matthews_corrcoef({0, 1, 1, 0}, {0, 1, 1, 0}), 1.0);
  EXPECT_DOUBLE_EQ(matthews_corrcoef({1, 0, 0, 1}, {0, 1, 1, 0}), -1.0);
  // kPred/kLab: TP=1, TN=2, FP=2, FN=0 ->
  //   (1*2 - 2*0) / sqrt((1+2)(1+0)(2+2)(2+0)) = 2 / sqrt(24) = 0.408248290...
  EXPECT_NEAR(matthews_corrcoef(kPred, kLab), 2.0 / std::sqrt(24.0), 1e-12);
}

TEST(MetricsMcc, Multiclass) {
  // true  0 0 1 1 2 2
  // pred  0 1 1 2 2 0
  // s = 6, correct c = 3 (idx 0, 2, 4), t_k = (2,2,2), p_k = (2,2,2)
  // num = c*s - sum p_k t_k = 18 - 12 = 6
  // den = sqrt((36 - 12) * (36 - 12)) = 24  -> 0.25
  EXPECT_NEAR(matthews_corrcoef({0, 1, 1, 2, 2, 0}, {0, 0, 1, 1, 2, 2}), 0.25, 1e-12);
  // Unbalanced: true 0 0 0 1 2, pred 0 0 1 1 1
  // s = 5, c = 3 (idx 0,1,3), t = (3,1,1), p = (2,3,0)
  // num = 15 - (2*3 + 3*1 + 0*1) = 15 - 9 = 6
  // s^2 - sum p^2 = 25 - (4+9+0) = 12; s^2 - sum t^2 = 25 - (9+1+1) = 14
  // MCC = 6 / sqrt(168) = 0.462910049...
  EXPECT_NEAR(matthews_corrcoef({0, 0, 1, 1, 1}, {0, 0, 0, 1, 2}), 6.0 / std::sqrt(168.0),
              1e-12);
}

TEST(MetricsCorrelation, PearsonAndSpearmanWithTies) {
  EXPECT_NEAR(pearson(kX, kY), kPearson, 1e-12);
  EXPECT_NEAR(pearson(kX, kY), 0.7745966692414834, 1e-12);
  EXPECT_NEAR(spearman(kX, kY), kSpearman, 1e-12);
  EXPECT_NEAR(spearman(kX, kY), 0.7378647873726218, 1e-12);
  // symmetric
  EXPECT_NEAR(spearman(kY, kX), kSpearman, 1e-12);
  // affine maps: pearson +-1; spearman of any monotone map: 1
  EXPECT_NEAR(pearson(kX, {3, 5, 7, 9, 11}), 1.0, 1e-12);
  EXPECT_NEAR(pearson(kX, {0, -1, -2, -3, -4}), -1.0, 1e-12);
  EXPECT_NEAR(spearman(kX, {1, 4, 9, 16, 1000}), 1.0, 1e-12);
  EXPECT_NEAR(spearman(kX, {5, 4, 3, 2, 1}), -1.0, 1e-12);
}

TEST(MetricsCorrelation, AverageRanks) {
  EXPECT_EQ(average_ranks({10, 30, 20}), (V{1, 3, 2}));
  // values 5,1,5,9,5 sorted: 1 (rank 1), 5,5,5 (ranks 2,3,4 -> 3), 9 (rank 5)
  EXPECT_EQ(average_ranks({5, 1, 5, 9, 5}), (V{3, 1, 3, 5, 3}));
  EXPECT_EQ(average_ranks({2, 2}), (V{1.5, 1.5}));
  EXPECT_TRUE(average_ranks({}).empty());
}

TEST(MetricsDegenerate, ZeroNotNaN) {
  const V e;
  EXPECT_EQ(accuracy(e, e), 0.0);
  EXPECT_EQ(f1_binary(e, e), 0.0);
  EXPECT_EQ(matthews_corrcoef(e, e), 0.0);
  EXPECT_EQ(pearson(e, e), 0.0);
  EXPECT_EQ(spearman(e, e), 0.0);
  // one point
  EXPECT_EQ(pearson({1}, {2}), 0.0);
  // zero variance on either side
  EXPECT_EQ(pearson({1, 1, 1}, {1, 2, 3}), 0.0);
  EXPECT_EQ(pearson({1, 2, 3}, {4, 4, 4}), 0.0);
  EXPECT_EQ(spearman({7, 7, 7}, {1, 2, 3}), 0.0);
  // F1 with no positives at all: 2TP+FP+FN = 0
  EXPECT_EQ(f1_binary({0, 0}, {0, 0}), 0.0);
  // MCC with a single predicted class (s^2 - sum p^2 = 0), and single true class
  EXPECT_EQ(matthews_corrcoef({1, 1, 1}, {0, 1, 0}), 0.0);
  EXPECT_EQ(matthews_corrcoef({0, 1, 0}, {1, 1, 1}), 0.0);
  EXPECT_EQ(matthews_corrcoef({1, 1}, {1, 1}), 0.0);
  // Non-finite inputs to correlations are reported as NaN, not hidden.
  EXPECT_TRUE(std::isnan(pearson({1, NAN, 3}, {1, 2, 3})));
  EXPECT_TRUE(std::isnan(spearman({1, 2, 3}, {1, INFINITY, 3})));
}

TEST(MetricsDegenerate, LengthMismatchThrows) {
  EXPECT_THROW(accuracy({1, 0}, {1}), std::invalid_argument);
  EXPECT_THROW(f1_binary({1}, {}), std::invalid_argument);
  EXPECT_THROW(matthews_corrcoef({1}, {1, 0}), std::invalid_argument);
  EXPECT_THROW(pearson({1, 2}, {1, 2, 3}), std::invalid_argument);
  EXPECT_THROW(spearman({1, 2}, {1}), std::invalid_argument);
  EXPECT_THROW(compute_glue_metrics(glue_task("sst2"), {1, 0}, {1}), std::invalid_argument);
}

TEST(MetricsGlue, PerTaskKeysAndValues) {
  const auto mrpc = compute_glue_metrics(glue_task("mrpc"), kPred, kLab);
  ASSERT_EQ(mrpc.size(), 3u);
  EXPECT_DOUBLE_EQ(mrpc.at("accuracy"), 0.6);
  EXPECT_DOUBLE_EQ(mrpc.at("f1"), 0.5);
  EXPECT_DOUBLE_EQ(mrpc.at("acc_and_f1"), 0.55);  // (0.6 + 0.5) / 2
  EXPECT_EQ(compute_glue_metrics(glue_task("qqp"), kPred, kLab), mrpc);

  const auto stsb = compute_glue_metrics(glue_task("STS-B"), kX, kY);
  ASSERT_EQ(stsb.size(), 3u);
  EXPECT_NEAR(stsb.at("pearson"), kPearson, 1e-12);
  EXPECT_NEAR(stsb.at("spearmanr"), kSpearman, 1e-12);
  EXPECT_NEAR(stsb.at("corr"), (kPearson + kSpearman) / 2, 1e-12);

  V p, t;
  confusion(p, t);
  const auto cola = compute_glue_metrics(glue_task("cola"), p, t);
  ASSERT_EQ(cola.size(), 1u);
  EXPECT_NEAR(cola.at("mcc"), 16.0 / std::sqrt(1120.0), 1e-12);

  for (const char* name : {"sst2", "mnli", "qnli", "rte", "wnli"}) {
    const auto m = compute_glue_metrics(glue_task(name), kPred, kLab);
    ASSERT_EQ(m.size(), 1u) << name;
    EXPECT_DOUBLE_EQ(m.at("accuracy"), 0.6) << name;
  }
  // Every task returns exactly its declared metric_names, main_metric among them.
  for (const auto& name : glue_task_names()) {
    const TaskInfo& task = glue_task(name);
    const auto m = compute_glue_metrics(task, kX, kY);
    EXPECT_EQ(m.size(), task.metric_names.size()) << name;
    for (const auto& k : task.metric_names) EXPECT_TRUE(m.count(k)) << name << " " << k;
    EXPECT_TRUE(m.count(task.main_metric)) << name;
  }
}

TEST(MetricsGlue, UnlabeledAndEmpty) {
  EXPECT_THROW(compute_glue_metrics(glue_task("sst2"), {1}, {NAN}), std::invalid_argument);
  const auto m = compute_glue_metrics(glue_task("mrpc"), {}, {});
  EXPECT_EQ(m.at("accuracy"), 0.0);
  EXPECT_EQ(m.at("f1"), 0.0);
  EXPECT_EQ(m.at("acc_and_f1"), 0.0);
  const auto s = compute_glue_metrics(glue_task("stsb"), {}, {});
  EXPECT_EQ(s.at("corr"), 0.0);
}
