#pragma once
#include <stdexcept>
#include <string>

namespace lorakit {
// Every user-facing failure (bad file, bad flag, bad shape) is a lorakit::Error with a message that
// names the file or option and what is wrong. The CLI prints it and exits non-zero.
struct Error : std::runtime_error {
  // A NUL byte (from a file's own text: a token, a key) would end what() early and hide the rest of
  // the message, the file name included: it is written as "\0".
  explicit Error(const std::string& what) : std::runtime_error(printable(what)) {}
  explicit Error(const char* what) : Error(std::string(what)) {}

 private:
  static std::string printable(const std::string& s) {
    if (s.find('\0') == std::string::npos) return s;
    std::string out;
    for (char c : s) {
      if (c == '\0') out += "\\0";
      else out += c;
    }
    return out;
  }
};
}  // namespace lorakit
