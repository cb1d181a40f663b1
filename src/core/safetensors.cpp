#include "core/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "core/errors.h"
#include "core/fileutil.h"

namespace lorakit::st {
namespace {

constexpr uint64_t kMaxHeader = 100ull * 1024 * 1024;  // same cap as the reference implementation

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw Error(path + ": invalid safetensors file: " + what);
}

size_t element_size(const std::string& dtype) {
  static const std::map<std::string, size_t> sizes = {
      {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8}, {"I32", 4},
      {"I16", 2}, {"I8", 1},  {"U8", 1},  {"BOOL", 1}};
  auto it = sizes.find(dtype);
  return it == sizes.end() ? 0 : it->second;
}

}  // namespace

at::ScalarType dtype_from_string(const std::string& s) {
  static const std::map<std::string, at::ScalarType> m = {
      {"F64", at::kDouble}, {"F32", at::kFloat}, {"F16", at::kHalf}, {"BF16", at::kBFloat16},
      {"I64", at::kLong},   {"I32", at::kInt},   {"I16", at::kShort}, {"I8", at::kChar},
      {"U8", at::kByte},    {"BOOL", at::kBool}};
  auto it = m.find(s);
  if (it == m.end()) throw Error("unknown safetensors dtype '" + s + "'");
  return it->second;
}

std::string dtype_to_string(at::ScalarType t) {
  switch (t) {
    case at::kDouble: return "F64";
    case at::kFloat: return "F32";
    case at::kHalf: return "F16";
    case at::kBFloat16: return "BF16";
    case at::kLong: return "I64";
    case at::kInt: return "I32";
    case at::kShort: return "I16";
    case at::kChar: return "I8";
    case at::kByte: return "U8";
    case at::kBool: return "BOOL";
    default: throw Error(std::string("dtype ") + c10::toString(t) + " cannot be stored in safetensors");
  }
}

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(path + ": cannot open: " + std::strerror(errno));
  struct stat stbuf {};
  if (fstat(fd, &stbuf) != 0 || !S_ISREG(stbuf.st_mode)) {
    ::close(fd);
    throw Error(path + ": not a regular file");
  }
  size_ = static_cast<size_t>(stbuf.st_size);
  if (size_ < 8) {
    ::close(fd);
    fail(path, "file is " + std::to_string(size_) + " bytes, shorter than the 8-byte header length");
  }
  map_ = mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map_ == MAP_FAILED) {
    map_ = nullptr;
    throw Error(path + ": mmap failed: " + std::strerror(errno));
  }
  try {
    const auto* bytes = static_cast<const unsigned char*>(map_);
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[i];
    if (n > kMaxHeader) fail(path, "header length " + std::to_string(n) + " exceeds the 100 MiB limit");
    if (n > size_ - 8)
      fail(path, "header length " + std::to_string(n) + " runs past the end of the file (" +
                     std::to_string(size_) + " bytes)");
    if (n == 0 || bytes[8] != '{') fail(path, "header is not a JSON object");
    data_start_ = 8 + n;
    const uint64_t data_size = size_ - data_start_;
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
          metadata_[k] = s.get<std::string>();
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
      const size_t esize = element_size(ti.dtype);
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
      infos_.emplace(name, std::move(ti));
    }
    std::sort(ranges.begin(), ranges.end());
    uint64_t cursor = 0;
    for (auto& [b, e] : ranges) {
      if (b < cursor) fail(path, "tensor data ranges overlap at byte " + std::to_string(b));
      if (b > cursor) fail(path, "gap in tensor data between bytes " + std::to_string(cursor) + " and " + std::to_string(b));
      cursor = e;
    }
    if (cursor != data_size)
      fail(path, "data section has " + std::to_string(data_size) + " bytes but tensors cover " + std::to_string(cursor));
  } catch (...) {
    munmap(map_, size_);
    map_ = nullptr;
    throw;
  }
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) munmap(map_, size_);
}

std::vector<std::string> SafetensorsFile::keys() const {
  std::vector<std::string> k;
  for (auto& [n, _] : infos_) k.push_back(n);
  std::stable_sort(k.begin(), k.end(), [&](const std::string& a, const std::string& b) {
    return infos_.at(a).begin < infos_.at(b).begin;
  });
  return k;
}

const TensorInfo& SafetensorsFile::info(const std::string& name) const {
  auto it = infos_.find(name);
  if (it == infos_.end()) throw Error(path_ + ": no tensor named '" + name + "'");
  return it->second;
}

at::Tensor SafetensorsFile::load(const std::string& name) const {
  const TensorInfo& ti = info(name);
  at::Tensor t = at::empty(ti.shape, at::TensorOptions().dtype(dtype_from_string(ti.dtype)));
  if (ti.end > ti.begin)
    std::memcpy(t.data_ptr(), static_cast<const char*>(map_) + data_start_ + ti.begin, ti.end - ti.begin);
  return t;
}

NamedTensors load_file(const std::string& path) {
  SafetensorsFile f(path);
  NamedTensors out;
  for (auto& k : f.keys()) out.emplace_back(k, f.load(k));
  return out;
}

void save_file(const std::string& path, const NamedTensors& tensors,
               const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<at::Tensor> contiguous;
  uint64_t offset = 0;
  std::map<std::string, int> seen;
  for (auto& [name, t0] : tensors) {
    if (seen.count(name)) throw Error(path + ": duplicate tensor name '" + name + "'");
    seen[name] = 1;
    at::Tensor t = t0.detach().to(at::kCPU).contiguous();
    const uint64_t nbytes = static_cast<uint64_t>(t.numel()) * t.element_size();
    header[name] = {{"dtype", dtype_to_string(t.scalar_type())},
                    {"shape", t.sizes().vec()},
                    {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
    contiguous.push_back(t);
  }
  std::string hs = header.dump();
  while ((hs.size() + 8) % 8 != 0) hs.push_back(' ');  // align data to 8 bytes, as the reference writer does
  write_file_atomically(path, [&](std::ostream& os) {
    uint64_t n = hs.size();
    unsigned char len[8];
    for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>((n >> (8 * i)) & 0xff);
    os.write(reinterpret_cast<const char*>(len), 8);
    os.write(hs.data(), static_cast<std::streamsize>(hs.size()));
    for (auto& t : contiguous)
      os.write(static_cast<const char*>(t.data_ptr()), static_cast<std::streamsize>(t.numel() * t.element_size()));
  });
}

}  // namespace lorakit::st
