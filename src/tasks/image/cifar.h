// CIFAR-10 / CIFAR-100 "binary version" files (the layout of cifar-10-batches-bin/ and cifar-100-binary/).
//
//   CIFAR-10:  records of 1 label byte (0..9) + 3072 pixel bytes; files data_batch_1..5.bin, test_batch.bin
//   CIFAR-100: records of 1 coarse label byte (0..19) + 1 fine label byte (0..99) + 3072 pixel bytes;
//              files train.bin, test.bin
//   pixels: 1024 red, 1024 green, 1024 blue, each 32 × 32 row-major (so [3, 32, 32] per record).
//
// Errors (lorakit::Error) name the file and the byte offset: a size that is not a whole number of
// records (a truncated file: the offset where the last record breaks off), a label out of range.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/errors.h"

namespace lorakit::data {

struct CifarImages {
  int64_t count = 0;
  std::vector<uint8_t> pixels;  // count × 3 × 32 × 32
  std::vector<int64_t> labels;  // fine labels for CIFAR-100 unless coarse
};

enum class CifarKind { Cifar10, Cifar100Fine, Cifar100Coarse };

constexpr int64_t kCifarPixels = 3 * 32 * 32;

// Appends the records of `path` (at most `limit` in all when limit > 0) to `out`.
void read_cifar_file(const std::string& path, CifarKind kind, CifarImages& out, int64_t limit = 0);

// The standard files of a CIFAR folder for a split: CIFAR-10 train = data_batch_1..5.bin, eval =
// test_batch.bin; CIFAR-100 train.bin / test.bin. Missing files: an Error naming the folder and file.
std::vector<std::string> cifar_split_files(const std::string& dir, CifarKind kind, bool train);

}  // namespace lorakit::data
