#include "tasks/glue/task.h"

#include <algorithm>
#include <numeric>
#include <random>

#include "core/errors.h"
#include "core/fileutil.h"
#include "models/checkpoint.h"
#include "tasks/classification.h"
#include "tasks/glue/dataset.h"
#include "text/metrics.h"
#include "text/tokenizer.h"

namespace lorakit {

std::string glue_task_file(const std::string& data0, const data::TaskInfo& task, const std::string& file) {
  const std::string data = data0.empty() ? "../shared/data/glue" : data0;
  const std::string in_task = join_path(join_path(data, task.dir_name), file);
  if (file_exists(in_task)) return in_task;
  const std::string direct = join_path(data, file);
  if (file_exists(direct)) return direct;
  throw Error("cannot find " + file + " for task " + task.name + " under " + data + " (tried " + in_task + " and " +
              direct + ")");
}

std::vector<data::Example> read_glue_subset(const data::TaskInfo& task, const std::string& path, int64_t limit,
                                            bool random, uint64_t data_seed, data::LabelMode mode) {
  std::vector<data::Example> ex;
  try {
    ex = data::read_glue_file(task, path, mode);
  } catch (const data::GlueError& e) {
    throw Error(e.what());
  }
  if (limit <= 0 || static_cast<int64_t>(ex.size()) <= limit) return ex;
  if (!random) {
    ex.resize(limit);
    return ex;
  }
  std::vector<size_t> idx(ex.size());
  std::iota(idx.begin(), idx.end(), size_t{0});
  std::mt19937_64 rng(data_seed);
  for (size_t i = idx.size() - 1; i > 0; --i) {  // Fisher–Yates with our own draw: same on every libstdc++
    const size_t j = static_cast<size_t>(rng() % (i + 1));
    std::swap(idx[i], idx[j]);
  }
  idx.resize(limit);
  std::sort(idx.begin(), idx.end());  // keep the file's order
  std::vector<data::Example> out;
  out.reserve(idx.size());
  for (size_t i : idx) out.push_back(ex[i]);
  return out;
}

namespace {

class GlueTask : public Task {
 public:
  explicit GlueTask(const data::TaskInfo& t) : t_(t) {}
  std::string name() const override { return t_.name; }
  std::string kind() const override { return "glue"; }
  std::string main_metric() const override { return t_.main_metric; }
  std::vector<std::string> metric_names() const override { return t_.metric_names; }
  bool is_regression() const override { return t_.is_regression; }

  void head_options(LoadOptions& lo) const override {
    lo.num_labels = t_.num_labels;
    lo.regression = t_.is_regression;
    lo.sentence_pair = t_.has_pair;
    lo.head = "sequence-classification";
  }

  void check_model(const LoadedModel& lm) const override {
    if (lm.config.is_vit())
      throw Error(lm.dir + " is an image model (model_type vit); GLUE task " + t_.name + " needs a text model");
  }

  void resolve_files(TaskOptions& o, bool need_train) const override {
    Task::resolve_files(o, need_train);
    if (need_train && o.train_file.empty()) o.train_file = glue_task_file(o.data, t_, t_.train_file);
    if (o.eval_file.empty()) o.eval_file = glue_task_file(o.data, t_, t_.eval_files.at(0));
  }

  std::unique_ptr<TaskDataset> load(Split split, const LoadedModel& lm, const TaskOptions& o) const override {
    check_model(lm);
    const bool train = split == Split::Train;
    TaskOptions where = o;
    resolve_files(where, train);
    const std::string path = train ? where.train_file : where.eval_file;
    auto rows = read_glue_subset(t_, path, train ? o.max_train_samples : o.max_eval_samples,
                                 train && o.random_subsample, o.data_seed);
    auto tok = text::load_tokenizer(lm.dir);
    o.notes.push_back((train ? "train: " : "eval: ") + path + " (" + std::to_string(rows.size()) + " rows)");
    return std::make_unique<EncodedDataset>(rows, *tok, static_cast<size_t>(o.max_seq_len), t_.is_regression);
  }

  at::Tensor per_sample_loss(const at::Tensor& outputs, const at::Tensor& labels) const override {
    return lorakit::per_sample_loss(outputs, labels, t_.is_regression);
  }
  at::Tensor correct(const at::Tensor& outputs, const at::Tensor& labels, double tau) const override {
    return correct_mask(outputs, labels, t_.is_regression, tau);
  }
  std::unique_ptr<MetricCollector> collector(const TaskDataset& ds) const override {
    const auto* enc = dynamic_cast<const EncodedDataset*>(&ds);
    if (!enc) throw Error("GLUE task " + t_.name + ": evaluation data is not a GLUE dataset");
    const data::TaskInfo t = t_;
    return std::make_unique<PredictionCollector>(
        enc->size(), enc->labels(), t_.is_regression,
        [t](const std::vector<double>& p, const std::vector<double>& l) { return data::compute_glue_metrics(t, p, l); });
  }

 private:
  const data::TaskInfo& t_;
};

}  // namespace

std::unique_ptr<Task> make_glue_task(const std::string& name) {
  try {
    return std::make_unique<GlueTask>(data::glue_task(name));
  } catch (const data::GlueError& e) {
    throw Error(e.what());
  }
}

}  // namespace lorakit
