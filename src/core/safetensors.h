// Safetensors: 8-byte little-endian header length N, N bytes of JSON header, then raw little-endian
// tensor data. Reading maps the file and validates every offset; writing goes to a temp file that is
// renamed into place.
#pragma once
#include <ATen/core/Tensor.h>

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/safetensors_header.h"  // TensorInfo, parse_header (no LibTorch)

namespace lorakit::st {

class SafetensorsFile {
 public:
  // Opens, maps and validates `path`; throws lorakit::Error naming the file and the problem.
  explicit SafetensorsFile(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  std::vector<std::string> keys() const;  // in file (offset) order
  bool contains(const std::string& name) const { return infos_.count(name) != 0; }
  const TensorInfo& info(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // A tensor that owns a copy of the bytes (the mapping may be closed afterwards).
  at::Tensor load(const std::string& name) const;

 private:
  std::string path_;
  void* map_ = nullptr;
  size_t size_ = 0;
  size_t data_start_ = 0;
  std::map<std::string, TensorInfo> infos_;
  std::map<std::string, std::string> metadata_;
};

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

// Whole-file helpers.
NamedTensors load_file(const std::string& path);
void save_file(const std::string& path, const NamedTensors& tensors,
               const std::map<std::string, std::string>& metadata = {});

// Safetensors dtype string <-> ATen scalar type. Throws lorakit::Error for unknown names.
at::ScalarType dtype_from_string(const std::string& s);
std::string dtype_to_string(at::ScalarType t);

}  // namespace lorakit::st
