#include "core/fileutil.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/errors.h"

namespace lorakit {

void write_file_atomically(const std::string& path, const std::function<void(std::ostream&)>& fill) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream os(tmp, std::ios::binary | std::ios::trunc);
    if (!os) throw Error(path + ": cannot write (" + std::strerror(errno) + ")");
    try {
      fill(os);
    } catch (...) {
      os.close();
      std::remove(tmp.c_str());
      throw;
    }
    errno = 0;
    os.flush();
    if (os) os.close();
    if (!os) {
      const std::string why = errno ? std::strerror(errno) : "disk full?";
      os.close();
      std::remove(tmp.c_str());
      throw Error(path + ": write failed (" + why + "); the previous file, if any, is unchanged");
    }
  }
  // On disk before it takes the old file's place (a crash leaves the old or the new, never a torn one).
  const int fd = ::open(tmp.c_str(), O_RDONLY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::string why = std::strerror(errno);
    std::remove(tmp.c_str());
    throw Error(path + ": cannot rename temp file into place: " + why);
  }
}

void write_text_atomically(const std::string& path, const std::string& text) {
  write_file_atomically(path, [&](std::ostream& os) { os << text; });
}

std::string read_text_file(const std::string& path) {
  if (dir_exists(path)) throw Error(path + ": is a directory, expected a file");
  std::ifstream is(path, std::ios::binary);
  if (!is) throw Error(path + ": cannot open (" + std::strerror(errno) + ")");
  std::ostringstream ss;
  ss << is.rdbuf();
  return ss.str();
}

bool file_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool dir_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

void make_dirs(const std::string& path) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) throw Error(path + ": cannot create directory: " + ec.message());
}

std::string join_path(const std::string& a, const std::string& b) {
  if (a.empty()) return b;
  if (a.back() == '/') return a + b;
  return a + "/" + b;
}

}  // namespace lorakit
