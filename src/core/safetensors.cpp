#include "core/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "core/errors.h"
#include "core/fileutil.h"
#include "core/safetensors_header.h"

namespace lorakit::st {

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
  if (size_ < 8) {  // parse_header says so too; mmap of an empty file would fail first
    ::close(fd);
    throw Error(path + ": invalid safetensors file: file is " + std::to_string(size_) +
                " bytes, shorter than the 8-byte header length");
  }
  map_ = mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map_ == MAP_FAILED) {
    map_ = nullptr;
    throw Error(path + ": mmap failed: " + std::strerror(errno));
  }
  try {
    Header h = parse_header(static_cast<const unsigned char*>(map_), size_, path);
    data_start_ = h.data_start;
    infos_ = std::move(h.tensors);
    metadata_ = std::move(h.metadata);
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
