// IDX files (MNIST / Fashion-MNIST): the reader for issue 12's image tasks. Standard library + zlib;
// gzipped files (as Debian's dataset-fashion-mnist installs them) are read transparently.
//
// Layout: 2 zero bytes, a type byte (0x08 unsigned byte — the only type MNIST-family files use; the
// others are refused by name), a dimension count, then that many big-endian uint32 sizes, then the
// data, row-major. Every error names the file and, for truncation, the byte offset where data ran out.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/errors.h"

namespace lorakit::data {

struct IdxArray {
  std::vector<int64_t> dims;  // e.g. {60000, 28, 28} for images, {60000} for labels
  std::vector<uint8_t> data;  // product(dims) bytes, row-major
  int64_t count() const { return dims.empty() ? 0 : dims[0]; }
};

// Reads the whole file (or only its first `limit` items along dim 0 when limit > 0).
IdxArray read_idx(const std::string& path, int64_t limit = 0);

struct IdxImages {
  int64_t count = 0, rows = 0, cols = 0;
  std::vector<uint8_t> pixels;  // count × rows × cols, 0..255
  std::vector<int64_t> labels;  // count
};

// An images file ([N, rows, cols]) and its labels file ([N]): the counts must agree and every label
// must be below `num_classes` (when > 0).
IdxImages read_idx_images(const std::string& images_path, const std::string& labels_path, int64_t limit = 0,
                          int64_t num_classes = 0);

}  // namespace lorakit::data
