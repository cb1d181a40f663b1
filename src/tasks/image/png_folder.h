// The image-folder layout (torchvision's ImageFolder, Hugging Face's "imagefolder"): one folder per
// class, PNG files inside, read with libpng's simplified API.
//
//   <data>/train/<class_name>/*.png      training images
//   <data>/test/<class_name>/*.png       evaluation images (or <data>/validation/, <data>/val/)
//
// Classes are the training split's sub-folders in byte order of their names; class i = the i-th. An
// evaluation class that training lacks, a file that is not a PNG, or a PNG libpng cannot decode is an
// error naming the file. Every image is decoded to `channels` (1: grey, 3: RGB; alpha is composed onto
// black) and resized to height × width as PIL does before ViTImageProcessor rescales: bilinear with
// antialiasing, rounded back to 8 bits.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "tasks/image/task.h"

namespace lorakit::data {

// The class folders of a split directory (sorted); an Error when it has none.
std::vector<std::string> image_folder_classes(const std::string& split_dir);
// The evaluation split of an image-folder root: test/, else validation/, else val/.
std::string image_folder_eval_dir(const std::string& root);

// The images of `split_dir` (files sorted by class, then name; at most `limit` when > 0).
ImageSet read_image_folder(const std::string& split_dir, const std::vector<std::string>& classes, int64_t channels,
                           int64_t height, int64_t width, int64_t limit = 0);

// Writes `pixels` (height × width × channels, row-major, 8-bit) as a PNG (used by tests and tools).
void write_png(const std::string& path, const std::vector<uint8_t>& pixels, int64_t height, int64_t width,
               int64_t channels);

}  // namespace lorakit::data
