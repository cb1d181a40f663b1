#pragma once
#include <stdexcept>
#include <string>

namespace lorakit {
// Every user-facing failure (bad file, bad flag, bad shape) is a lorakit::Error with a message that
// names the file or option and what is wrong. The CLI prints it and exits non-zero.
struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};
}  // namespace lorakit
