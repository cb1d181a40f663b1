#include "core/safetensors_header.h"

#include <algorithm>
#include <limits>
#include <utility>

#include <nlohmann/json.hpp>

#include "core/errors.h"

namespace lorakit::st {
namespace {

constexpr uint64_t kMaxHeader = 100ull * 1024 * 1024;  // same cap as the reference implementation

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw Error(path + ": invalid safetensors file: " + what);
}

}  // namespace

size_t dtype_size(const std::string& dtype) {
  static const std::map<std::string, size_t> sizes = {
      {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8}, {"I32", 4},
      {"I16", 2}, {"I8", 1},  {"U8", 1},  {"BOOL", 1}};
  auto it = sizes.find(dtype);
  return it == sizes.end() ? 0 : it->second;
}

Header parse_header(const unsigned char* bytes, size_t size, const std::string& path) {
  if (size < 8) fail(path, "file is " + std::to_string(size) + " bytes, shorter than the 8-byte header length");
  Header out;
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[i];
  if (n > kMaxHeader) fail(path, "header length " + std::to_string(n) + " exceeds the 100 MiB limit");
  if (n > size - 8)
    fail(path, "header length " + std::to_string(n) + " runs past the end of the file (" + std::to_string(size) +
                   " bytes)");
  if (n == 0 || bytes[8] != '{') fail(path, "header is not a JSON object");
  out.data_start = 8 + n;
  const uint64_t data_size = size - out.data_start;
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(bytes + 8, bytes + 8 + n);
  } catch (const nlohmann::json::exception& e) {
    fail(path, std::string("header is not valid JSON: ") + e.what());
  }
  if (!header.is_object()) fail(path, "header is not a JSON object");
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (auto& [name, v] : header.items()) {
    if (name == "__metadata__") {
      if (!v.is_object()) fail(path, "__metadata__ is not an object");
      for (auto& [k, s] : v.items()) {
        if (!s.is_string()) fail(path, "__metadata__['" + k + "'] is not a string");
        out.metadata[k] = s.get<std::string>();
      }
      continue;
    }
    const std::string where = "tensor '" + name + "': ";
    if (!v.is_object()) fail(path, where + "entry is not an object");
    if (!v.contains("dtype") || !v["dtype"].is_string()) fail(path, where + "missing string 'dtype'");
    if (!v.contains("shape") || !v["shape"].is_array()) fail(path, where + "missing array 'shape'");
    if (!v.contains("data_offsets") || !v["data_offsets"].is_array() || v["data_offsets"].size() != 2)
      fail(path, where + "'data_offsets' must be [begin, end]");
    TensorInfo ti;
    ti.dtype = v["dtype"].get<std::string>();
    const size_t esize = dtype_size(ti.dtype);
    if (esize == 0) fail(path, where + "unknown dtype '" + ti.dtype + "'");
    uint64_t numel = 1;
    for (auto& d : v["shape"]) {
      if (!d.is_number_unsigned()) fail(path, where + "shape entries must be non-negative integers");
      const uint64_t dim = d.get<uint64_t>();
      if (dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
          (dim != 0 && numel > std::numeric_limits<uint64_t>::max() / dim))
        fail(path, where + "shape overflows");
      numel *= dim;
      ti.shape.push_back(static_cast<int64_t>(dim));
    }
    for (auto& o : v["data_offsets"])
      if (!o.is_number_unsigned()) fail(path, where + "data_offsets must be non-negative integers");
    ti.begin = v["data_offsets"][0].get<uint64_t>();
    ti.end = v["data_offsets"][1].get<uint64_t>();
    if (ti.begin > ti.end) fail(path, where + "data_offsets begin > end");
    if (ti.end > data_size)
      fail(path, where + "data_offsets [" + std::to_string(ti.begin) + ", " + std::to_string(ti.end) +
                     "] out of range: data section has " + std::to_string(data_size) + " bytes");
    if (numel > std::numeric_limits<uint64_t>::max() / esize || numel * esize != ti.end - ti.begin)
      fail(path, where + "shape x dtype is " + std::to_string(numel) + " x " + std::to_string(esize) +
                     " bytes but data_offsets span " + std::to_string(ti.end - ti.begin) + " bytes");
    ranges.emplace_back(ti.begin, ti.end);
    out.tensors.emplace(name, std::move(ti));
  }
  std::sort(ranges.begin(), ranges.end());
  uint64_t cursor = 0;
  for (auto& [b, e] : ranges) {
    if (b < cursor) fail(path, "tensor data ranges overlap at byte " + std::to_string(b));
    if (b > cursor)
      fail(path, "gap in tensor data between bytes " + std::to_string(cursor) + " and " + std::to_string(b));
    cursor = e;
  }
  if (cursor != data_size)
    fail(path, "data section has " + std::to_string(data_size) + " bytes but tensors cover " + std::to_string(cursor));
  return out;
}

}  // namespace lorakit::st
