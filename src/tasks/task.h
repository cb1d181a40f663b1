// The seam between the trainer and a task (GLUE, SQuAD, image classification), as tuners/method.h is
// for methods. A task = a reader of its files into a dataset the trainer can batch + the model head it
// needs + per-sample loss + "correct" mask (GR-LoRA's S) + metrics + the columns its report shows. The
// trainer, evaluate(), GR-LoRA and the sweep call these and never name a task:
//
//   make_task(name)                       the registry (src/tasks/registry.cpp)
//   task.prepare(options)                 (image-folder only: count its class folders)
//   task.load_options(seed)               the head the model is loaded with (labels, regression, QA span)
//   task.resolve_files(options)           the files load() will read (checked; the sweep records them)
//   task.load(split, model, options)      reader + features → a TaskDataset (lengths + collate)
//   per step: outputs = model(batch)      [B, C] class logits, or [B, T, 2] start/end logits
//             task.per_sample_loss(outputs, labels), task.correct(outputs, labels, tau)
//   evaluate: task.collector(ds) → add(outputs, batch) per batch → finish() → metrics
//
// One folder per kind: src/tasks/glue, src/tasks/squad, src/tasks/image.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace lorakit {

struct LoadedModel;
struct LoadOptions;

struct Batch {
  at::Tensor input_ids, attention_mask, token_type_ids;  // [B, T] int64, T = longest in the batch
  at::Tensor pixel_values;                               // image models: [B, C, H, W] float (ids unused)
  // [B] int64 (classification) or float32 (regression); [B, 2] int64 start/end tokens (span QA)
  at::Tensor labels;
  std::vector<size_t> indices;  // positions in the dataset
};

// Rows the trainer batches: GLUE examples, SQuAD windows (features), images.
class TaskDataset {
 public:
  virtual ~TaskDataset() = default;
  virtual size_t size() const = 0;
  // Per row, the token count (for length-grouped batches; images: all equal).
  virtual const std::vector<size_t>& lengths() const = 0;
  // The rows `idx` as one batch, text padded to the longest among them (dynamic padding).
  virtual Batch collate(const std::vector<size_t>& idx) const = 0;
  // Training-time randomness (augmentation) for the coming epoch; default: none.
  virtual void set_epoch(uint64_t seed) const {}
  // Whether collate() draws (augmentation): a row's input then differs from epoch to epoch.
  virtual bool random_rows() const { return false; }
  // The state of what collate() draws from in training (augmentation), as text, for a training
  // checkpoint taken mid-epoch; "" when nothing is drawn.
  virtual std::string rng_state() const { return ""; }
  virtual void set_rng_state(const std::string& state) const {}
};

// One evaluation pass: add() every batch's outputs, then finish() → metric name → value.
class MetricCollector {
 public:
  virtual ~MetricCollector() = default;
  virtual void add(const at::Tensor& outputs, const Batch& b) = 0;
  virtual std::map<std::string, double> finish() = 0;
};

enum class Split { Train, Eval };

// What the data flags say (train / eval / sweep): where the files are and how to cut them.
struct TaskOptions {
  std::string data;                 // --data: the task's folder or root; "" = the task's default
  std::string train_file, eval_file;  // override the files found under `data`
  int64_t max_seq_len = 128;
  int64_t max_train_samples = -1, max_eval_samples = -1;  // <= 0: all
  bool random_subsample = false;    // max_train_samples picks random rows (data_seed) instead of the first
  uint64_t data_seed = 0;
  // SQuAD
  int64_t doc_stride = -1;  // < 0: min(128, max_seq_len / 4)
  int64_t n_best = 20;
  int64_t max_answer_len = 30;
  // Images
  bool augment = false;  // random crop (4-pixel padding) + horizontal flip on training images
  // Set by the task while loading: what it read, for logs and train_config.json.
  mutable std::vector<std::string> notes;
};

class Task {
 public:
  virtual ~Task() = default;
  virtual std::string name() const = 0;  // canonical: "mrpc", "squad", "fashion-mnist", ...
  virtual std::string kind() const = 0;  // "glue" | "squad" | "image"
  virtual std::string main_metric() const = 0;
  // The metrics finish() returns, in report order (the task's report columns).
  virtual std::vector<std::string> metric_names() const = 0;
  virtual bool is_regression() const { return false; }
  // Reads what the head depends on from the data, before head_options (image-folder: its class folders).
  virtual void prepare(const TaskOptions& o) {}
  // The head the model must carry (LoadOptions: num_labels, regression, question answering).
  virtual void head_options(LoadOptions& lo) const = 0;
  // Refuses (lorakit::Error, in words) a model this task cannot run on (a text task on ViT, ...).
  virtual void check_model(const LoadedModel& lm) const = 0;
  virtual std::unique_ptr<TaskDataset> load(Split split, const LoadedModel& lm, const TaskOptions& o) const = 0;
  // Where load() will read, checked before anything runs (lorakit::Error naming what is missing): given
  // train_file / eval_file must exist; a task that reads one file per split (GLUE) fills them in from
  // `data`. Tasks that read a folder (images, SQuAD's article split) leave them empty. The sweep records
  // the result in every run's spec. `need_train` false (evaluation only): the training split is not looked for.
  virtual void resolve_files(TaskOptions& o, bool need_train = true) const;
  // outputs: what the model returned for the batch; labels: Batch::labels. [B] each.
  virtual at::Tensor per_sample_loss(const at::Tensor& outputs, const at::Tensor& labels) const = 0;
  virtual at::Tensor correct(const at::Tensor& outputs, const at::Tensor& labels, double tau) const = 0;
  virtual std::unique_ptr<MetricCollector> collector(const TaskDataset& ds) const = 0;
};

// The registry: GLUE task names (any spelling glue_task() accepts), "squad", "fashion-mnist", "mnist",
// "cifar10", "cifar100". Unknown names: lorakit::Error listing the known ones.
std::unique_ptr<Task> make_task(const std::string& name);
std::vector<std::string> task_names();
// The canonical name of a task (e.g. "MRPC" → "mrpc", "Fashion_MNIST" → "fashion-mnist").
std::string canonical_task_name(const std::string& name);

}  // namespace lorakit
