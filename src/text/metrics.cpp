#include "text/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>

namespace lorakit::data {
namespace {

void check_sizes(const char* fn, size_t a, size_t b) {
  if (a != b)
    throw std::invalid_argument(std::string(fn) + ": predictions and labels differ in length (" +
                                std::to_string(a) + " vs " + std::to_string(b) + ")");
}

bool all_finite(const std::vector<double>& v) {
  for (double d : v)
    if (!std::isfinite(d)) return false;
  return true;
}

}  // namespace

double accuracy(const std::vector<double>& predictions, const std::vector<double>& labels) {
  check_sizes("accuracy", predictions.size(), labels.size());
  if (predictions.empty()) return 0.0;
  size_t correct = 0;
  for (size_t i = 0; i < predictions.size(); ++i)
    if (predictions[i] == labels[i]) ++correct;
  return static_cast<double>(correct) / static_cast<double>(predictions.size());
}

double f1_binary(const std::vector<double>& predictions, const std::vector<double>& labels) {
  check_sizes("f1_binary", predictions.size(), labels.size());
  size_t tp = 0, fp = 0, fn = 0;
  for (size_t i = 0; i < predictions.size(); ++i) {
    const bool p = predictions[i] == 1.0, t = labels[i] == 1.0;
    if (p && t) ++tp;
    else if (p) ++fp;
    else if (t) ++fn;
  }
  const size_t denom = 2 * tp + fp + fn;
  if (denom == 0) return 0.0;
  return 2.0 * static_cast<double>(tp) / static_cast<double>(denom);
}

double matthews_corrcoef(const std::vector<double>& predictions,
                         const std::vector<double>& labels) {
  check_sizes("matthews_corrcoef", predictions.size(), labels.size());
  if (predictions.empty()) return 0.0;
  // Per-class counts; classes are the union of the values seen. NaN keys
  // would break std::map's ordering, so map them to one extra bucket.
  std::map<double, std::pair<long double, long double>> counts;  // class -> (predicted, true)
  long double nan_p = 0, nan_t = 0;
  long double correct = 0;
  const long double s = static_cast<long double>(predictions.size());
  for (size_t i = 0; i < predictions.size(); ++i) {
    const double p = predictions[i], t = labels[i];
    if (std::isnan(p)) nan_p += 1; else counts[p].first += 1;
    if (std::isnan(t)) nan_t += 1; else counts[t].second += 1;
    if (p == t) correct += 1;
  }
  long double sum_pt = nan_p * nan_t, sum_pp = nan_p * nan_p, sum_tt = nan_t * nan_t;
  for (const auto& [k, pt] : counts) {
    (void)k;
    sum_pt += pt.first * pt.second;
    sum_pp += pt.first * pt.first;
    sum_tt += pt.second * pt.second;
  }
  const long double cov_ytyp = correct * s - sum_pt;
  const long double cov_ypyp = s * s - sum_pp;
  const long double cov_ytyt = s * s - sum_tt;
  const long double denom = cov_ypyp * cov_ytyt;
  if (denom <= 0) return 0.0;
  const double r = static_cast<double>(cov_ytyp / std::sqrt(denom));
  return std::clamp(r, -1.0, 1.0);
}

double pearson(const std::vector<double>& x, const std::vector<double>& y) {
  check_sizes("pearson", x.size(), y.size());
  if (!all_finite(x) || !all_finite(y)) return std::numeric_limits<double>::quiet_NaN();
  const size_t n = x.size();
  if (n < 2) return 0.0;
  long double mx = 0, my = 0;
  for (size_t i = 0; i < n; ++i) {
    mx += x[i];
    my += y[i];
  }
  mx /= n;
  my /= n;
  long double sxy = 0, sxx = 0, syy = 0;
  for (size_t i = 0; i < n; ++i) {
    const long double dx = x[i] - mx, dy = y[i] - my;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  if (sxx <= 0 || syy <= 0) return 0.0;
  const double r = static_cast<double>(sxy / std::sqrt(sxx * syy));
  return std::clamp(r, -1.0, 1.0);
}

std::vector<double> average_ranks(const std::vector<double>& v) {
  const size_t n = v.size();
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  // NaN would break the strict weak ordering; order NaNs last (callers that
  // care reject them beforehand).
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (std::isnan(v[a])) return false;
    if (std::isnan(v[b])) return true;
    return v[a] < v[b];
  });
  std::vector<double> ranks(n);
  size_t i = 0;
  while (i < n) {
    size_t j = i + 1;
    while (j < n && v[order[j]] == v[order[i]]) ++j;
    // positions i..j-1 (0-based) -> ranks i+1..j, mean = (i+1+j)/2
    const double r = (static_cast<double>(i + 1) + static_cast<double>(j)) / 2.0;
    for (size_t k = i; k < j; ++k) ranks[order[k]] = r;
    i = j;
  }
  return ranks;
}

double spearman(const std::vector<double>& x, const std::vector<double>& y) {
  check_sizes("spearman", x.size(), y.size());
  if (!all_finite(x) || !all_finite(y)) return std::numeric_limits<double>::quiet_NaN();
  return pearson(average_ranks(x), average_ranks(y));
}

std::map<std::string, double> compute_glue_metrics(const TaskInfo& task,
                                                   const std::vector<double>& predictions,
                                                   const std::vector<double>& labels) {
  check_sizes(("compute_glue_metrics(" + task.name + ")").c_str(), predictions.size(),
              labels.size());
  for (size_t i = 0; i < labels.size(); ++i)
    if (std::isnan(labels[i]))
      throw std::invalid_argument("compute_glue_metrics(" + task.name + "): label " +
                                  std::to_string(i) + " is NaN (unlabeled example)");
  std::map<std::string, double> m;
  if (task.name == "cola") {
    m["mcc"] = matthews_corrcoef(predictions, labels);
  } else if (task.name == "stsb") {
    const double p = pearson(predictions, labels), s = spearman(predictions, labels);
    m["pearson"] = p;
    m["spearmanr"] = s;
    m["corr"] = (p + s) / 2.0;
  } else if (task.name == "mrpc" || task.name == "qqp") {
    const double a = accuracy(predictions, labels), f = f1_binary(predictions, labels);
    m["accuracy"] = a;
    m["f1"] = f;
    m["acc_and_f1"] = (a + f) / 2.0;
  } else if (task.name == "sst2" || task.name == "mnli" || task.name == "qnli" ||
             task.name == "rte" || task.name == "wnli") {
    m["accuracy"] = accuracy(predictions, labels);
  } else {
    throw std::invalid_argument("compute_glue_metrics: unknown task '" + task.name + "'");
  }
  return m;
}

}  // namespace lorakit::data
