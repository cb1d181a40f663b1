// The byte-level half of the safetensors reader, without LibTorch: the 8-byte header length, the JSON
// header, dtypes, shapes and data offsets, all validated against the file's size. SafetensorsFile
// (core/safetensors.h) maps a file and hands its bytes to parse_header; fuzz/harnesses/safetensors.cpp
// hands it bytes in memory.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace lorakit::st {

struct TensorInfo {
  std::string dtype;            // "F32", "BF16", ...
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte offsets into the data section
};

struct Header {
  uint64_t data_start = 0;  // 8 + the header length: where the data section starts in the file
  std::map<std::string, TensorInfo> tensors;
  std::map<std::string, std::string> metadata;
};

// `bytes` / `size`: the whole file. Checks that every tensor's data_offsets lie inside the data section,
// agree with shape x dtype, and that the tensors cover the data section exactly (no gap, no overlap).
// Throws lorakit::Error "<path>: invalid safetensors file: <what>".
Header parse_header(const unsigned char* bytes, size_t size, const std::string& path);

// Bytes per element of a safetensors dtype name; 0 for a name lorakit does not read.
size_t dtype_size(const std::string& dtype);

}  // namespace lorakit::st
