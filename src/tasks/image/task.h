// Image classification as a lorakit::Task: Fashion-MNIST / MNIST (IDX, tasks/image/idx.h), CIFAR-10 /
// CIFAR-100 fine or coarse (binary, tasks/image/cifar.h), on an image model (ViT).
//
//   task             --data default                        train files / eval files
//   fashion-mnist    /usr/share/datasets/fashion-mnist     train-images-idx3-ubyte(.gz) + labels / t10k-*
//   mnist            (none)                                 same names
//   cifar10          (none)                                 data_batch_1..5.bin / test_batch.bin
//   cifar100         (none)                                 train.bin / test.bin (fine labels)
//   cifar100-coarse  (none)                                 train.bin / test.bin (coarse labels)
//   image-folder     (none)                                 train/<class>/*.png / test/<class>/*.png (png_folder.h)
//
// Pre-processing follows the model's preprocessor_config.json (ViTImageProcessor): resize to its size
// (bilinear, antialiased), grey → as many channels as the model takes, rescale 1/255, normalise with
// image_mean / image_std. With TaskOptions::augment, training images are first randomly cropped from a
// 4-pixel zero-padded copy and flipped horizontally with probability 1/2 (the draws follow set_epoch's
// seed, so a run is reproducible).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "tasks/task.h"

namespace lorakit {

// nullptr when `name` (canonical) is not an image task.
std::unique_ptr<Task> make_image_task(const std::string& name);
std::vector<std::string> image_task_names();

// In-memory images as read from the files: uint8 [N, C, H, W], labels [N].
struct ImageSet {
  int64_t count = 0, channels = 1, height = 0, width = 0;
  std::vector<uint8_t> pixels;
  std::vector<int64_t> labels;
};

// Batches of an ImageSet for a model: pixel_values via the model's image processor.
std::unique_ptr<TaskDataset> make_image_dataset(ImageSet images, const LoadedModel& lm, bool augment);

}  // namespace lorakit
