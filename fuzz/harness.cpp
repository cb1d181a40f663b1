#include "harness.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>

namespace lorakit::fuzz {

std::vector<Registered>& registry() {
  static std::vector<Registered> r;
  return r;
}

Registration::Registration(const char* name, Entry entry) { registry().push_back({name, entry}); }

std::vector<std::string> split_input(const uint8_t* data, size_t size, size_t max_parts) {
  const std::string_view all(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> parts;
  size_t start = 0;
  while (parts.size() + 1 < max_parts) {
    const size_t at = all.find(kSeparator, start);
    if (at == std::string_view::npos) break;
    parts.emplace_back(all.substr(start, at - start));
    start = at + kSeparator.size();
  }
  parts.emplace_back(all.substr(start));
  return parts;
}

namespace {
const std::string& process_dir() {
  static const std::string dir = [] {
    const char* tmp = std::getenv("TMPDIR");
    std::string d = std::string(tmp && *tmp ? tmp : "/tmp") + "/lorakit-fuzz-" + std::to_string(::getpid());
    std::error_code ec;
    std::filesystem::remove_all(d, ec);
    static std::string to_remove;
    to_remove = d;
    std::atexit([] {
      std::error_code e;
      std::filesystem::remove_all(to_remove, e);
    });
    return d;
  }();
  return dir;
}
}  // namespace

const Scratch& Scratch::get(const std::string& harness) {
  static std::map<std::string, std::unique_ptr<Scratch>> all;
  auto& s = all[harness];
  if (!s) s.reset(new Scratch(harness));
  return *s;
}

Scratch::Scratch(const std::string& harness) : dir_(process_dir() + "/" + harness) {
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (!std::filesystem::is_directory(dir_, ec)) fail("cannot create scratch folder " + dir_);
}

std::string Scratch::write(const std::string& name, const std::string& bytes) const {
  const std::string p = path(name);
  std::ofstream os(p, std::ios::binary | std::ios::trunc);
  os.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  os.close();
  if (!os) fail("cannot write " + p);
  return p;
}

void Scratch::remove(const std::string& name) const { ::unlink(path(name).c_str()); }

void Scratch::write_parts(const std::vector<std::string>& names, const std::vector<std::string>& parts) const {
  for (size_t i = 0; i < names.size(); ++i) {
    if (i < parts.size())
      write(names[i], parts[i]);
    else
      remove(names[i]);
  }
}

}  // namespace lorakit::fuzz
