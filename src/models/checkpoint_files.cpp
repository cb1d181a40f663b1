#include "models/checkpoint_files.h"

#include <nlohmann/json.hpp>
#include <set>

#include "core/errors.h"

namespace lorakit {

std::map<std::string, std::vector<std::string>> parse_safetensors_index(const std::string& text,
                                                                        const std::string& index) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(index + ": not valid JSON: " + e.what());
  }
  if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
    throw Error(index + ": missing object 'weight_map'");
  std::map<std::string, std::vector<std::string>> by_shard;
  for (auto& [name, shard] : j["weight_map"].items()) {
    if (!shard.is_string()) throw Error(index + ": weight_map['" + name + "'] is not a file name");
    const std::string s = shard.get<std::string>();
    if (s.find('/') != std::string::npos || s == ".." || s.empty())
      throw Error(index + ": shard name '" + s + "' must be a plain file name");
    by_shard[s].push_back(name);
  }
  return by_shard;
}

namespace {

struct Reader {
  const std::string& bytes;
  const std::string& path;
  [[noreturn]] void fail(const std::string& what) const {
    throw Error(path + ": invalid pytorch_model.bin zip: " + what);
  }
  // `n` little-endian bytes at `at`; the caller has checked the range.
  uint64_t le(uint64_t at, int n) const {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(bytes[at + i]);
    return v;
  }
  bool fits(uint64_t at, uint64_t n) const { return at <= bytes.size() && n <= bytes.size() - at; }
  void need(uint64_t at, uint64_t n, const std::string& what) const {
    if (!fits(at, n))
      fail(what + " at byte " + std::to_string(at) + " (" + std::to_string(n) + " bytes) runs past the end of the file (" +
           std::to_string(bytes.size()) + " bytes)");
  }
};

constexpr uint32_t kEocd = 0x06054b50, kZip64Locator = 0x07064b50, kZip64Eocd = 0x06064b50, kCentral = 0x02014b50,
                   kLocal = 0x04034b50;
constexpr uint64_t k32 = 0xFFFFFFFFu;

}  // namespace

std::vector<ZipEntry> list_torch_zip(const std::string& bytes, const std::string& path) {
  const Reader r{bytes, path};
  const uint64_t size = bytes.size();
  if (size < 22) r.fail("file is " + std::to_string(size) + " bytes, too short for a zip archive");
  // End of central directory: the last 22 bytes, or up to 65535 bytes of comment before them.
  uint64_t eocd = size - 22;
  for (;;) {
    if (r.le(eocd, 4) == kEocd && eocd + 22 + r.le(eocd + 20, 2) == size) break;
    if (eocd == 0 || size - 22 - eocd >= 0xFFFF) r.fail("no end-of-central-directory record");
    --eocd;
  }
  if (r.le(eocd + 4, 2) != 0 || r.le(eocd + 6, 2) != 0) r.fail("multi-disk archives are not supported");
  uint64_t count = r.le(eocd + 10, 2), cd_size = r.le(eocd + 12, 4), cd_offset = r.le(eocd + 16, 4);
  uint64_t cd_end_limit = eocd;  // the central directory ends before the records that describe it
  if (eocd >= 20 && r.le(eocd - 20, 4) == kZip64Locator) {
    const uint64_t z = r.le(eocd - 20 + 8, 8);
    if (z > eocd - 20 || eocd - 20 - z < 56 || r.le(z, 4) != kZip64Eocd)
      r.fail("the zip64 locator points at byte " + std::to_string(z) + ", which holds no zip64 end-of-central-directory record");
    if (r.le(z + 16, 4) != 0 || r.le(z + 20, 4) != 0) r.fail("multi-disk archives are not supported");
    count = r.le(z + 32, 8);
    cd_size = r.le(z + 40, 8);
    cd_offset = r.le(z + 48, 8);
    cd_end_limit = z;
  }
  if (cd_offset > cd_end_limit || cd_size > cd_end_limit - cd_offset)
    r.fail("central directory [" + std::to_string(cd_offset) + ", +" + std::to_string(cd_size) +
           ") lies outside the file");
  if (count == 0) r.fail("the archive is empty");
  if (count > cd_size / 46)
    r.fail(std::to_string(count) + " entries cannot fit in a " + std::to_string(cd_size) + "-byte central directory");

  std::vector<ZipEntry> out;
  out.reserve(static_cast<size_t>(count));
  std::set<std::string> names;
  std::string folder;
  uint64_t p = cd_offset;
  const uint64_t cd_end = cd_offset + cd_size;
  for (uint64_t i = 0; i < count; ++i) {
    const std::string where = "central directory entry " + std::to_string(i);
    if (cd_end - p < 46) r.fail(where + " runs past the end of the central directory");
    if (r.le(p, 4) != kCentral) r.fail(where + " at byte " + std::to_string(p) + " has no central header signature");
    ZipEntry e;
    e.method = static_cast<uint16_t>(r.le(p + 10, 2));
    e.compressed_size = r.le(p + 20, 4);
    e.size = r.le(p + 24, 4);
    const uint64_t nlen = r.le(p + 28, 2), xlen = r.le(p + 30, 2), clen = r.le(p + 32, 2);
    uint64_t local = r.le(p + 42, 4);
    if (cd_end - p - 46 < nlen + xlen + clen) r.fail(where + ": its name and extra fields run past the central directory");
    e.name = bytes.substr(p + 46, nlen);
    // Zip64 extended information (extra field 0x0001): 8-byte values for the fields saturated above.
    for (uint64_t x = p + 46 + nlen, xe = x + xlen; xe - x >= 4;) {
      const uint64_t id = r.le(x, 2), len = r.le(x + 2, 2);
      if (len > xe - x - 4) r.fail(where + ": extra field runs past its end");
      if (id == 1) {
        uint64_t q = x + 4, left = len;
        auto take = [&](uint64_t& field) {
          if (field != k32) return;
          if (left < 8) r.fail(where + ": zip64 extra field is too short");
          field = r.le(q, 8);
          q += 8;
          left -= 8;
        };
        take(e.size);
        take(e.compressed_size);
        take(local);
      }
      x += 4 + len;
    }
    const std::string label = "entry '" + e.name + "'";
    if (e.name.empty() || e.name.find('\0') != std::string::npos) r.fail(where + " has an empty or NUL-holding name");
    if (e.name[0] == '/' || e.name.find('\\') != std::string::npos) r.fail(label + ": not a relative path");
    for (size_t b = 0; b <= e.name.size();) {  // no ".." component
      size_t s = e.name.find('/', b);
      if (s == std::string::npos) s = e.name.size();
      if (e.name.compare(b, s - b, "..") == 0) r.fail(label + ": a '..' path component");
      b = s + 1;
    }
    const size_t slash = e.name.find('/');
    if (slash == std::string::npos || slash == 0 || slash + 1 == e.name.size())
      r.fail(label + ": torch.save puts every entry as <folder>/<record>");
    if (folder.empty()) folder = e.name.substr(0, slash + 1);
    if (e.name.compare(0, folder.size(), folder) != 0)
      r.fail(label + " is not under '" + folder + "', the folder of the first entry");
    if (!names.insert(e.name).second) r.fail(label + " appears twice");
    if (e.method != 0 && e.method != 8)
      r.fail(label + ": compression method " + std::to_string(e.method) + " (only stored and deflated)");
    if (e.method == 0 && e.size != e.compressed_size)
      r.fail(label + ": stored, but its sizes differ (" + std::to_string(e.compressed_size) + " and " +
             std::to_string(e.size) + " bytes)");
    if (e.method == 8 && e.size / 1032 > e.compressed_size)
      r.fail(label + ": claims " + std::to_string(e.size) + " bytes from " + std::to_string(e.compressed_size) +
             " deflated bytes, more than deflate can produce");
    // The local header: its own name and extra lengths place the data.
    r.need(local, 30, label + ": local header");
    if (local + 30 > cd_offset) r.fail(label + ": local header at byte " + std::to_string(local) + " overlaps the central directory");
    if (r.le(local, 4) != kLocal) r.fail(label + ": no local header signature at byte " + std::to_string(local));
    if (r.le(local + 8, 2) != e.method) r.fail(label + ": local and central headers disagree on the compression method");
    const uint64_t lnlen = r.le(local + 26, 2), lxlen = r.le(local + 28, 2);
    if (lnlen != nlen || bytes.compare(local + 30, nlen, e.name) != 0)
      r.fail(label + ": local and central headers disagree on the name");
    e.data_offset = local + 30 + lnlen + lxlen;
    if (e.data_offset > cd_offset || e.compressed_size > cd_offset - e.data_offset)
      r.fail(label + ": data [" + std::to_string(e.data_offset) + ", +" + std::to_string(e.compressed_size) +
             ") runs into the central directory at byte " + std::to_string(cd_offset));
    out.push_back(std::move(e));
    p += 46 + nlen + xlen + clen;
  }
  if (!names.count(folder + "data.pkl")) r.fail("no " + folder + "data.pkl (not a torch.save archive)");
  return out;
}

}  // namespace lorakit
