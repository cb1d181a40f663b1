// Evaluation metrics for GLUE (standard library only).
//
// Conventions, for every function here:
//   * predictions and labels must have the same length, otherwise
//     std::invalid_argument is thrown.
//   * Degenerate inputs give 0.0, never NaN: an empty input (all metrics), a
//     zero denominator in F1 (no true and no predicted positives), a zero
//     denominator in MCC (only one class predicted or present), fewer than two
//     points or zero variance in Pearson / Spearman. This matches sklearn's
//     zero_division=0 / MCC behaviour; scipy would return NaN for a constant
//     input to pearsonr/spearmanr — we return 0 instead.
//   * The one exception: a NaN or infinite value in the input of pearson /
//     spearman gives NaN (garbage in; e.g. a diverged regression head), so
//     that it is visible rather than silently 0.
//   * Class labels are compared as exact double values (class indices).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "text/glue.h"

namespace lorakit::data {

// Fraction of positions where predictions[i] == labels[i].
double accuracy(const std::vector<double>& predictions, const std::vector<double>& labels);

// F1 of the positive class 1 (a value == 1 is positive, anything else
// negative): 2TP / (2TP + FP + FN), 0 when that denominator is 0.
double f1_binary(const std::vector<double>& predictions, const std::vector<double>& labels);

// Matthews correlation coefficient, multiclass generalisation as
// sklearn.metrics.matthews_corrcoef (Gorodkin's R_K):
//   (c·s − Σ_k p_k t_k) / sqrt((s² − Σ_k p_k²)(s² − Σ_k t_k²))
// with c correct, s samples, p_k predicted and t_k true counts of class k.
// Equals the usual (TP·TN − FP·FN)/sqrt(...) for two classes.
double matthews_corrcoef(const std::vector<double>& predictions,
                         const std::vector<double>& labels);

// Pearson correlation, clipped to [-1, 1].
double pearson(const std::vector<double>& x, const std::vector<double>& y);

// Spearman rank correlation: Pearson of the ranks, ties given their average
// rank (as scipy.stats.spearmanr).
double spearman(const std::vector<double>& x, const std::vector<double>& y);

// Average (1-based) ranks; tied values share the mean of their positions.
std::vector<double> average_ranks(const std::vector<double>& v);

// The task's GLUE metrics (keys = task.metric_names):
//   cola: {"mcc"}
//   sst2, mnli, qnli, rte, wnli: {"accuracy"}
//   mrpc, qqp: {"accuracy", "f1", "acc_and_f1" = (accuracy + f1) / 2}
//   stsb: {"pearson", "spearmanr", "corr" = (pearson + spearmanr) / 2}
// predictions are class indices (argmax) for classification tasks and scores
// for stsb. Throws std::invalid_argument on a length mismatch or a NaN label
// (unlabeled examples cannot be scored).
std::map<std::string, double> compute_glue_metrics(const TaskInfo& task,
                                                   const std::vector<double>& predictions,
                                                   const std::vector<double>& labels);

}  // namespace lorakit::data
