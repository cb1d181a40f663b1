// Shared pieces of lorakit's fuzz harnesses (fuzz/harnesses/*.cpp).
//
// A harness is written once, as
//
//   LORAKIT_FUZZ_TARGET(name) { ... data, size ... return 0; }
//
// and built two ways: by fuzz/CMakeLists.txt (clang, -fsanitize=fuzzer,address,undefined) as a
// libFuzzer binary, where the macro defines LLVMFuzzerTestOneInput; and by the main CMakeLists.txt
// into one smoke binary (fuzz/smoke_main.cpp, -DLORAKIT_FUZZ_SMOKE), where it registers the body
// under `name` so that every harness shares one executable.
//
// The rule every harness checks: bad input ends in a lorakit::Error whose message names the file (or
// the source name given to an in-memory parser). expect_clean() swallows exactly that; any other
// exception escapes (libFuzzer reports it as a crash: a parser bug), and an Error that does not name
// its file aborts too.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "core/errors.h"

namespace lorakit::fuzz {

using Entry = int (*)(const uint8_t* data, size_t size);

struct Registration {
  Registration(const char* name, Entry entry);
};
// The smoke binary's harnesses, in registration order.
struct Registered {
  const char* name;
  Entry entry;
};
std::vector<Registered>& registry();

// Aborts (a crash to libFuzzer, a failure to the smoke driver) with a message on stderr.
[[noreturn]] inline void fail(const std::string& what) {
  std::fprintf(stderr, "lorakit fuzz: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

// Runs `f`; a lorakit::Error is the expected outcome for bad input, but it must mention `must_name`
// (the file's path or the parser's source name). Anything else propagates.
template <class F>
bool expect_clean(F&& f, const std::string& must_name) {
  try {
    f();
    return true;
  } catch (const lorakit::Error& e) {
    if (!must_name.empty() && std::string_view(e.what()).find(must_name) == std::string_view::npos)
      fail("lorakit::Error does not name '" + must_name + "': " + e.what());
    return false;
  }
}

// The input split at each occurrence of kSeparator (multi-file formats: vocab.json + merges.txt, ...).
inline constexpr std::string_view kSeparator = "\n---8<---\n";
std::vector<std::string> split_input(const uint8_t* data, size_t size, size_t max_parts);

// A per-process, per-harness scratch folder, $TMPDIR/lorakit-fuzz-<pid>/<harness> (all removed at
// exit), for parsers that take paths. write() replaces a file's bytes; remove() deletes one so that
// "absent" is an input too.
class Scratch {
 public:
  static const Scratch& get(const std::string& harness);
  const std::string& dir() const { return dir_; }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }
  std::string write(const std::string& name, const std::string& bytes) const;
  void remove(const std::string& name) const;
  // Writes parts[i] to names[i]; a missing part removes that file.
  void write_parts(const std::vector<std::string>& names, const std::vector<std::string>& parts) const;

 private:
  explicit Scratch(const std::string& harness);
  std::string dir_;
};

}  // namespace lorakit::fuzz

#ifdef LORAKIT_FUZZ_SMOKE
#define LORAKIT_FUZZ_TARGET(name)                                                                 \
  static int lorakit_fuzz_##name(const uint8_t* data, size_t size);                              \
  static const ::lorakit::fuzz::Registration lorakit_fuzz_reg_##name(#name, lorakit_fuzz_##name); \
  static int lorakit_fuzz_##name(const uint8_t* data, size_t size)
#else
#define LORAKIT_FUZZ_TARGET(name) extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
#endif
