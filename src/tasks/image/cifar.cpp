#include "tasks/image/cifar.h"

#include <fstream>
#include <iterator>

#include "core/fileutil.h"

namespace lorakit::data {

void read_cifar_file(const std::string& path, CifarKind kind, CifarImages& out, int64_t limit) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open CIFAR file");
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const int64_t label_bytes = kind == CifarKind::Cifar10 ? 1 : 2;
  const int64_t record = label_bytes + kCifarPixels;
  const int64_t n = static_cast<int64_t>(bytes.size());
  if (n == 0) throw Error(path + ": empty CIFAR file");
  if (n % record != 0)
    throw Error(path + ": truncated or not a CIFAR" + std::string(kind == CifarKind::Cifar10 ? "-10" : "-100") +
                " binary file: " + std::to_string(n) + " bytes is not a whole number of " + std::to_string(record) +
                "-byte records (the record at byte offset " + std::to_string(n - n % record) + " breaks off)");
  const int64_t classes = kind == CifarKind::Cifar10 ? 10 : kind == CifarKind::Cifar100Fine ? 100 : 20;
  for (int64_t off = 0; off < n; off += record) {
    if (limit > 0 && out.count >= limit) break;
    const uint8_t label = kind == CifarKind::Cifar100Fine ? bytes[off + 1] : bytes[off];
    if (label >= classes)
      throw Error(path + ": byte offset " + std::to_string(kind == CifarKind::Cifar100Fine ? off + 1 : off) +
                  ": label " + std::to_string(label) + " is not below " + std::to_string(classes));
    out.labels.push_back(label);
    out.pixels.insert(out.pixels.end(), bytes.begin() + off + label_bytes, bytes.begin() + off + record);
    ++out.count;
  }
}

std::vector<std::string> cifar_split_files(const std::string& dir, CifarKind kind, bool train) {
  std::vector<std::string> names;
  if (kind == CifarKind::Cifar10) {
    if (train)
      for (int i = 1; i <= 5; ++i) names.push_back("data_batch_" + std::to_string(i) + ".bin");
    else
      names.push_back("test_batch.bin");
  } else {
    names.push_back(train ? "train.bin" : "test.bin");
  }
  std::vector<std::string> out;
  for (auto& f : names) {
    const std::string p = join_path(dir, f);
    if (!file_exists(p)) throw Error(dir + ": no " + f + " (a CIFAR binary folder holds " + names.front() + (names.size() > 1 ? " ..." : "") + ")");
    out.push_back(p);
  }
  return out;
}

}  // namespace lorakit::data
