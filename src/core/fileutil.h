#pragma once
#include <functional>
#include <ostream>
#include <string>

namespace lorakit {
// Writes through `fill` into a temp file beside `path`, flushes, then renames it over `path`, so a
// reader never sees a half-written file and a failure leaves the old file untouched.
void write_file_atomically(const std::string& path, const std::function<void(std::ostream&)>& fill);
void write_text_atomically(const std::string& path, const std::string& text);
std::string read_text_file(const std::string& path);  // throws lorakit::Error naming the file
bool file_exists(const std::string& path);
bool dir_exists(const std::string& path);
void make_dirs(const std::string& path);
std::string join_path(const std::string& a, const std::string& b);
}  // namespace lorakit
