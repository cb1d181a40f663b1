#include "tasks/image/idx.h"

#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <memory>

namespace lorakit::data {
namespace {

struct GzFile {
  gzFile f = nullptr;
  explicit GzFile(const std::string& path) : f(gzopen(path.c_str(), "rb")) {}
  ~GzFile() {
    if (f) gzclose(f);
  }
};

// Reads exactly n bytes at `offset` (uncompressed position); false at a clean or truncated end.
size_t read_bytes(gzFile f, void* out, size_t n, const std::string& path) {
  size_t got = 0;
  while (got < n) {
    const unsigned chunk = static_cast<unsigned>(std::min<size_t>(n - got, 1u << 30));
    const int r = gzread(f, static_cast<char*>(out) + got, chunk);
    if (r < 0) {
      int errnum = 0;
      const char* msg = gzerror(f, &errnum);
      throw Error(path + ": cannot decompress after byte " + std::to_string(got) + " of this read (" + (msg ? msg : "?") +
                  "): corrupt or truncated gzip");
    }
    if (r == 0) break;
    got += static_cast<size_t>(r);
  }
  return got;
}

}  // namespace

IdxArray read_idx(const std::string& path, int64_t limit) {
  GzFile g(path);
  if (!g.f) throw Error(path + ": cannot open");
  unsigned char head[4];
  if (read_bytes(g.f, head, 4, path) != 4) throw Error(path + ": truncated at byte 0: an IDX file starts with 4 header bytes");
  if (head[0] != 0 || head[1] != 0) throw Error(path + ": not an IDX file (the first two bytes must be zero)");
  if (head[2] != 0x08)
    throw Error(path + ": IDX data type 0x" + (head[2] < 16 ? "0" : "") +
                [&] { char b[3]; std::snprintf(b, sizeof b, "%x", head[2]); return std::string(b); }() +
                " is not supported (MNIST-family files hold unsigned bytes, type 0x08)");
  const int nd = head[3];
  if (nd < 1 || nd > 4) throw Error(path + ": IDX file with " + std::to_string(nd) + " dimensions (expected 1 to 4)");
  IdxArray a;
  uint64_t total = 1;
  for (int i = 0; i < nd; ++i) {
    unsigned char b[4];
    if (read_bytes(g.f, b, 4, path) != 4)
      throw Error(path + ": truncated at byte " + std::to_string(4 + 4 * i) + " inside the dimension sizes");
    const uint64_t d = (uint64_t{b[0]} << 24) | (uint64_t{b[1]} << 16) | (uint64_t{b[2]} << 8) | b[3];
    if (d == 0 && i > 0) throw Error(path + ": dimension " + std::to_string(i) + " has size 0");
    a.dims.push_back(static_cast<int64_t>(d));
    if (i > 0) total *= d;
  }
  if (total > (uint64_t{1} << 24)) throw Error(path + ": one item of " + std::to_string(total) + " bytes is implausibly large");
  const int64_t n = limit > 0 ? std::min<int64_t>(limit, a.dims[0]) : a.dims[0];
  const uint64_t want = static_cast<uint64_t>(n) * total;
  if (want > (uint64_t{1} << 34)) throw Error(path + ": " + std::to_string(want) + " bytes of data is implausibly large");
  // Read in chunks, growing the buffer as data arrives: a header that claims more items than the file
  // holds costs no more memory than the file's own data (not the gigabytes it claims).
  constexpr uint64_t kChunk = uint64_t{1} << 20;
  uint64_t got = 0;
  while (got < want) {
    const uint64_t n = std::min(kChunk, want - got);
    a.data.resize(static_cast<size_t>(got + n));
    const size_t r = read_bytes(g.f, a.data.data() + got, static_cast<size_t>(n), path);
    got += r;
    if (r < n) {
      a.data.resize(static_cast<size_t>(got));
      break;
    }
  }
  const uint64_t header = 4 + 4 * static_cast<uint64_t>(nd);
  if (got != want)
    throw Error(path + ": truncated at byte " + std::to_string(header + got) + ": the header says " +
                std::to_string(a.dims[0]) + " items of " + std::to_string(total) + " bytes (" +
                std::to_string(header + static_cast<uint64_t>(a.dims[0]) * total) + " bytes in all)");
  if (limit <= 0) {
    unsigned char extra;
    if (read_bytes(g.f, &extra, 1, path) != 0)
      throw Error(path + ": data continues past byte " + std::to_string(header + want) + ", where the header says it ends");
  }
  a.dims[0] = n;
  return a;
}

IdxImages read_idx_images(const std::string& images_path, const std::string& labels_path, int64_t limit,
                          int64_t num_classes) {
  IdxArray im = read_idx(images_path, limit);
  IdxArray lb = read_idx(labels_path, limit);
  if (im.dims.size() != 3)
    throw Error(images_path + ": an images file has 3 dimensions [N, rows, cols], this one " + std::to_string(im.dims.size()));
  if (lb.dims.size() != 1)
    throw Error(labels_path + ": a labels file has 1 dimension [N], this one " + std::to_string(lb.dims.size()));
  if (im.dims[0] != lb.dims[0])
    throw Error(images_path + " holds " + std::to_string(im.dims[0]) + " images but " + labels_path + " " +
                std::to_string(lb.dims[0]) + " labels");
  IdxImages out;
  out.count = im.dims[0];
  out.rows = im.dims[1];
  out.cols = im.dims[2];
  out.pixels = std::move(im.data);
  out.labels.assign(lb.data.begin(), lb.data.end());
  if (num_classes > 0)
    for (size_t i = 0; i < out.labels.size(); ++i)
      if (out.labels[i] >= num_classes)
        throw Error(labels_path + ": label " + std::to_string(out.labels[i]) + " of item " + std::to_string(i) +
                    " is not below " + std::to_string(num_classes));
  return out;
}

}  // namespace lorakit::data
