#include "tasks/image/task.h"

#include <ATen/ATen.h>

#include <random>
#include <sstream>

#include "core/errors.h"
#include "core/fileutil.h"
#include "models/checkpoint.h"
#include "models/vit.h"
#include "tasks/classification.h"
#include "tasks/image/cifar.h"
#include "tasks/image/idx.h"
#include "tasks/image/png_folder.h"
#include "text/batching.h"
#include "text/metrics.h"

namespace lorakit {
namespace {

struct ImageTaskInfo {
  std::string name;
  int64_t classes;
  std::string default_dir;  // "" = --data is required
};

const std::vector<ImageTaskInfo>& image_tasks() {
  static const std::vector<ImageTaskInfo> t = {
      {"fashion-mnist", 10, "/usr/share/datasets/fashion-mnist"},
      {"mnist", 10, ""},
      {"cifar10", 10, ""},
      {"cifar100", 100, ""},
      {"cifar100-coarse", 20, ""},
      {"image-folder", 0, ""},  // classes: the training split's folders (prepare)
  };
  return t;
}

class ImageDataset : public TaskDataset {
 public:
  ImageDataset(ImageSet s, ImageProcessorConfig proc, int64_t model_channels, bool augment)
      : s_(std::move(s)), proc_(std::move(proc)), channels_(model_channels), augment_(augment),
        lengths_(static_cast<size_t>(s_.count), 1) {
    if (s_.channels != channels_ && s_.channels != 1)
      throw Error("the images have " + std::to_string(s_.channels) + " channels, the model takes " +
                  std::to_string(channels_));
  }
  size_t size() const override { return static_cast<size_t>(s_.count); }
  const std::vector<size_t>& lengths() const override { return lengths_; }
  void set_epoch(uint64_t seed) const override { rng_.seed(seed); }
  bool random_rows() const override { return augment_; }
  std::string rng_state() const override {
    if (!augment_) return "";
    std::ostringstream os;
    os << rng_;
    return os.str();
  }
  void set_rng_state(const std::string& state) const override {
    if (!augment_ || state.empty()) return;
    std::istringstream is(state);
    is >> rng_;
    if (!is) throw Error("training checkpoint: the augmentation generator's state does not parse");
  }

  Batch collate(const std::vector<size_t>& idx) const override {
    const int64_t B = static_cast<int64_t>(idx.size()), C = s_.channels, H = s_.height, W = s_.width;
    const int64_t per = C * H * W;
    at::Tensor raw = at::empty({B, C, H, W}, at::kByte);
    uint8_t* dst = raw.data_ptr<uint8_t>();
    at::Tensor labels = at::empty({B}, at::kLong);
    auto lab = labels.accessor<int64_t, 1>();
    for (int64_t r = 0; r < B; ++r) {
      const size_t i = idx[static_cast<size_t>(r)];
      const uint8_t* src = s_.pixels.data() + static_cast<int64_t>(i) * per;
      if (augment_) {
        // Random crop of the 4-pixel zero-padded image, then a horizontal flip half the time.
        const int64_t dy = static_cast<int64_t>(data::uniform_below(rng_, 9)) - 4;
        const int64_t dx = static_cast<int64_t>(data::uniform_below(rng_, 9)) - 4;
        const bool flip = data::uniform_below(rng_, 2) == 1;
        for (int64_t c = 0; c < C; ++c)
          for (int64_t y = 0; y < H; ++y)
            for (int64_t x = 0; x < W; ++x) {
              const int64_t sy = y + dy, sx0 = x + dx, sx = flip ? W - 1 - sx0 : sx0;
              const bool in = sy >= 0 && sy < H && sx0 >= 0 && sx0 < W;
              dst[r * per + (c * H + y) * W + x] = in ? src[(c * H + sy) * W + sx] : 0;
            }
      } else {
        std::copy(src, src + per, dst + r * per);
      }
      lab[r] = s_.labels[i];
    }
    at::Tensor x = raw;
    if (C == 1 && channels_ != 1) x = x.expand({B, channels_, H, W});
    Batch b;
    b.pixel_values = proc_.preprocess(x);
    b.labels = labels;
    b.indices = idx;
    return b;
  }
  const std::vector<int64_t>& labels() const { return s_.labels; }

 private:
  ImageSet s_;
  ImageProcessorConfig proc_;
  int64_t channels_;
  bool augment_;
  std::vector<size_t> lengths_;
  mutable std::mt19937_64 rng_{0};
};

std::string idx_file(const std::string& dir, const std::string& stem) {
  for (const char* ext : {".gz", ""}) {
    const std::string p = join_path(dir, stem + ext);
    if (file_exists(p)) return p;
  }
  throw Error(dir + ": no " + stem + " or " + stem + ".gz (an MNIST-layout folder holds train-images-idx3-ubyte, "
              "train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte)");
}

class ImageTask : public Task {
 public:
  explicit ImageTask(ImageTaskInfo t) : t_(std::move(t)) {}
  std::string name() const override { return t_.name; }
  std::string kind() const override { return "image"; }
  std::string main_metric() const override { return "accuracy"; }
  std::vector<std::string> metric_names() const override { return {"accuracy"}; }
  void prepare(const TaskOptions& o) override {
    if (t_.name != "image-folder") return;
    if (o.data.empty()) throw Error("task image-folder needs --data (a folder with train/<class>/*.png and test/<class>/*.png)");
    classes_ = data::image_folder_classes(join_path(o.data, "train"));
  }
  void head_options(LoadOptions& lo) const override {
    if (t_.name == "image-folder" && classes_.empty())
      throw Error("task image-folder: its classes are read from --data (train/<class>/): none read yet");
    lo.num_labels = t_.name == "image-folder" ? static_cast<int64_t>(classes_.size()) : t_.classes;
    lo.regression = false;
    lo.sentence_pair = false;
    lo.head = "sequence-classification";
  }
  void check_model(const LoadedModel& lm) const override {
    if (!lm.model->takes_pixels())
      throw Error(lm.dir + " is a text model (model_type " + lm.config.model_type + "); image task " + t_.name +
                  " needs an image model (vit)");
  }

  std::unique_ptr<TaskDataset> load(Split split, const LoadedModel& lm, const TaskOptions& o) const override {
    check_model(lm);
    const bool train = split == Split::Train;
    const int64_t limit = train ? o.max_train_samples : o.max_eval_samples;
    ImageSet s = read(train, o, limit, lm);
    o.notes.push_back(std::string(train ? "train: " : "eval: ") + std::to_string(s.count) + " images " +
                      std::to_string(s.channels) + "x" + std::to_string(s.height) + "x" + std::to_string(s.width));
    return make_image_dataset(std::move(s), lm, train && o.augment);
  }

  at::Tensor per_sample_loss(const at::Tensor& outputs, const at::Tensor& labels) const override {
    return lorakit::per_sample_loss(outputs, labels, false);
  }
  at::Tensor correct(const at::Tensor& outputs, const at::Tensor& labels, double) const override {
    return correct_mask(outputs, labels, false);
  }
  std::unique_ptr<MetricCollector> collector(const TaskDataset& ds) const override {
    const auto* im = dynamic_cast<const ImageDataset*>(&ds);
    if (!im) throw Error("image task " + t_.name + ": evaluation data is not an image dataset");
    std::vector<double> labels(im->labels().begin(), im->labels().end());
    return std::make_unique<PredictionCollector>(
        im->size(), labels, false, [](const std::vector<double>& p, const std::vector<double>& l) {
          return std::map<std::string, double>{{"accuracy", data::accuracy(p, l)}};
        });
  }

 private:
  ImageSet read(bool train, const TaskOptions& o, int64_t limit, const LoadedModel& lm) const {
    const std::string given = train ? o.train_file : o.eval_file;
    std::string dir = !o.data.empty() ? o.data : t_.default_dir;
    if (dir.empty() && given.empty())
      throw Error("task " + t_.name + " needs --data (the folder holding its files)");
    if (t_.name == "image-folder") {
      if (!given.empty()) throw Error("task image-folder: give --data, the folder with train/ and test/");
      if (classes_.empty()) throw Error("task image-folder: prepare() was not called with --data");
      const auto proc = ImageProcessorConfig::for_model(lm.dir, lm.config);
      return data::read_image_folder(train ? join_path(dir, "train") : data::image_folder_eval_dir(dir), classes_,
                                     lm.config.num_channels, proc.height, proc.width, limit);
    }
    if (!given.empty() && t_.name.rfind("cifar", 0) != 0)
      throw Error("task " + t_.name + ": --train-file / --eval-file name one file, but an IDX split is two (images "
                  "and labels): give --data, the folder");
    ImageSet s;
    if (t_.name.rfind("cifar", 0) == 0) {
      const data::CifarKind kind = t_.name == "cifar10"    ? data::CifarKind::Cifar10
                                   : t_.name == "cifar100" ? data::CifarKind::Cifar100Fine
                                                           : data::CifarKind::Cifar100Coarse;
      data::CifarImages c;
      const auto files = given.empty() ? data::cifar_split_files(dir, kind, train) : std::vector<std::string>{given};
      for (auto& f : files) data::read_cifar_file(f, kind, c, limit);
      s.count = c.count;
      s.channels = 3;
      s.height = s.width = 32;
      s.pixels = std::move(c.pixels);
      s.labels = std::move(c.labels);
    } else {
      if (!dir_exists(dir)) throw Error(dir + ": no such folder (task " + t_.name + ")");
      const std::string pre = train ? "train" : "t10k";
      data::IdxImages im = data::read_idx_images(idx_file(dir, pre + "-images-idx3-ubyte"),
                                                 idx_file(dir, pre + "-labels-idx1-ubyte"), limit, t_.classes);
      s.count = im.count;
      s.channels = 1;
      s.height = im.rows;
      s.width = im.cols;
      s.pixels = std::move(im.pixels);
      s.labels = std::move(im.labels);
    }
    if (s.count == 0) throw Error("task " + t_.name + ": no images read from " + (given.empty() ? dir : given));
    return s;
  }

  ImageTaskInfo t_;
  std::vector<std::string> classes_;  // image-folder
};

}  // namespace

std::unique_ptr<TaskDataset> make_image_dataset(ImageSet images, const LoadedModel& lm, bool augment) {
  return std::make_unique<ImageDataset>(std::move(images), ImageProcessorConfig::for_model(lm.dir, lm.config),
                                        lm.config.num_channels, augment);
}

std::unique_ptr<Task> make_image_task(const std::string& name) {
  for (auto& t : image_tasks())
    if (t.name == name) return std::make_unique<ImageTask>(t);
  return nullptr;
}

std::vector<std::string> image_task_names() {
  std::vector<std::string> n;
  for (auto& t : image_tasks()) n.push_back(t.name);
  return n;
}

}  // namespace lorakit
