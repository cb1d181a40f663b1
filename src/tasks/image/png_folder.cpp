#include "tasks/image/png_folder.h"

#include <ATen/ATen.h>
#include <png.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "core/errors.h"
#include "core/fileutil.h"

namespace lorakit::data {
namespace fs = std::filesystem;

std::vector<std::string> image_folder_classes(const std::string& split_dir) {
  if (!dir_exists(split_dir)) throw Error(split_dir + ": no such folder (an image folder holds <class>/*.png)");
  std::vector<std::string> classes;
  for (auto& e : fs::directory_iterator(split_dir))
    if (e.is_directory()) classes.push_back(e.path().filename().string());
  std::sort(classes.begin(), classes.end());
  if (classes.empty()) throw Error(split_dir + ": no class folders (an image folder holds <class>/*.png)");
  return classes;
}

std::string image_folder_eval_dir(const std::string& root) {
  for (const char* s : {"test", "validation", "val"})
    if (dir_exists(join_path(root, s))) return join_path(root, s);
  throw Error(root + ": no test/, validation/ or val/ folder for evaluation");
}

namespace {

// Decodes one PNG to [channels, h, w] uint8.
at::Tensor decode_png(const std::string& path, int64_t channels) {
  png_image img{};
  img.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_file(&img, path.c_str()))
    throw Error(path + ": not a readable PNG (" + std::string(img.message) + ")");
  img.format = channels == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
  const int64_t h = img.height, w = img.width;
  if (h <= 0 || w <= 0 || h > 16384 || w > 16384) {
    png_image_free(&img);
    throw Error(path + ": image size " + std::to_string(w) + "x" + std::to_string(h) + " is out of range");
  }
  std::vector<uint8_t> buf(PNG_IMAGE_SIZE(img));
  png_color black{0, 0, 0};
  if (!png_image_finish_read(&img, &black, buf.data(), 0, nullptr)) {
    std::string m = img.message;
    png_image_free(&img);
    throw Error(path + ": corrupt PNG (" + m + ")");
  }
  at::Tensor t = at::from_blob(buf.data(), {h, w, channels}, at::kByte).clone();
  return t.permute({2, 0, 1}).contiguous();
}

}  // namespace

ImageSet read_image_folder(const std::string& split_dir, const std::vector<std::string>& classes, int64_t channels,
                           int64_t height, int64_t width, int64_t limit) {
  if (channels != 1 && channels != 3)
    throw Error("image folder " + split_dir + ": the model takes " + std::to_string(channels) +
                " channels; PNG folders are read as 1 (grey) or 3 (RGB)");
  std::vector<std::pair<std::string, int64_t>> files;
  for (auto& cls : image_folder_classes(split_dir)) {
    auto it = std::find(classes.begin(), classes.end(), cls);
    if (it == classes.end())
      throw Error(join_path(split_dir, cls) + ": class '" + cls + "' is not one of the training split's classes");
    std::vector<std::string> names;
    for (auto& e : fs::directory_iterator(join_path(split_dir, cls)))
      if (e.is_regular_file()) names.push_back(e.path().string());
    std::sort(names.begin(), names.end());
    for (auto& n : names) files.emplace_back(n, static_cast<int64_t>(it - classes.begin()));
  }
  if (limit > 0 && static_cast<int64_t>(files.size()) > limit) files.resize(static_cast<size_t>(limit));
  if (files.empty()) throw Error(split_dir + ": no images");
  ImageSet s;
  s.channels = channels;
  s.height = height;
  s.width = width;
  s.pixels.reserve(files.size() * channels * height * width);
  namespace F = torch::nn::functional;
  for (auto& [path, label] : files) {
    at::Tensor im = decode_png(path, channels);
    if (im.size(1) != height || im.size(2) != width) {
      at::Tensor x = F::interpolate(im.unsqueeze(0).to(at::kFloat), F::InterpolateFuncOptions()
                                                                        .size(std::vector<int64_t>{height, width})
                                                                        .mode(torch::kBilinear)
                                                                        .align_corners(false)
                                                                        .antialias(true));
      im = x.round().clamp(0, 255).to(at::kByte).squeeze(0).contiguous();
    }
    const uint8_t* p = im.data_ptr<uint8_t>();
    s.pixels.insert(s.pixels.end(), p, p + im.numel());
    s.labels.push_back(label);
    ++s.count;
  }
  return s;
}

void write_png(const std::string& path, const std::vector<uint8_t>& pixels, int64_t height, int64_t width,
               int64_t channels) {
  if (static_cast<int64_t>(pixels.size()) != height * width * channels) throw Error(path + ": pixel count mismatch");
  png_image img{};
  img.version = PNG_IMAGE_VERSION;
  img.width = static_cast<png_uint_32>(width);
  img.height = static_cast<png_uint_32>(height);
  img.format = channels == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
  if (!png_image_write_to_file(&img, path.c_str(), 0, pixels.data(), 0, nullptr))
    throw Error(path + ": cannot write PNG (" + std::string(img.message) + ")");
}

}  // namespace lorakit::data
