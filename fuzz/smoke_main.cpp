// The fuzz harnesses' smoke run for the normal test suite (no clang, no libFuzzer): every seed of a
// harness's corpus, then deterministic mutations of them (bit flips, byte substitutions, truncations,
// insertions, repeats, deletions, splices, numbers swapped for extreme ones) until a time or run budget
// is spent.
//
//   lorakit_fuzz_smoke [--seconds S] [--max-runs N] HARNESS CORPUS_DIR...
//   lorakit_fuzz_smoke --list
//
// A harness that aborts, crashes, hangs (10 s on one input) or lets an exception other than
// lorakit::Error escape fails the run;
// the input is written to ./fuzz-smoke-HARNESS-crash.bin (rerun it with the libFuzzer binary, or
// with this one: lorakit_fuzz_smoke HARNESS fuzz-smoke-HARNESS-crash.bin).
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "harness.h"

namespace {

namespace fs = std::filesystem;

// The input being run, for the crash handler.
const std::string* g_current = nullptr;
char g_crash_path[512] = {};

void save_current() {
  if (!g_current) return;
  const int fd = ::open(g_crash_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return;
  const char* p = g_current->data();
  size_t left = g_current->size();
  while (left > 0) {
    const ssize_t w = ::write(fd, p, left);
    if (w <= 0) break;
    p += w;
    left -= static_cast<size_t>(w);
  }
  ::close(fd);
}

extern "C" void on_signal(int sig) {
  save_current();
  const char hang[] = "lorakit_fuzz_smoke: one input ran for more than 10 s\n";
  if (sig == SIGALRM) (void)!::write(2, hang, sizeof hang - 1);
  const char msg[] = "lorakit_fuzz_smoke: crash; input saved to ";
  (void)!::write(2, msg, sizeof msg - 1);
  (void)!::write(2, g_crash_path, std::strlen(g_crash_path));
  (void)!::write(2, "\n", 1);
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

struct Rng {  // splitmix64: the same mutations on every machine
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  size_t below(size_t n) { return n == 0 ? 0 : static_cast<size_t>(next() % n); }
};

const char* const kTokens[] = {"0", "-1", "1e400", "4294967296", "18446744073709551616", "9223372036854775807",
                               "null", "true", "\"\"", "[]", "{}", "\"a\"", ",", ":", "\t", "\n", "\r\n",
                               "\xef\xbb\xbf", "\xff", "\\u0000", "..", "/", "[UNK]", "[PAD]", "<s>"};

void mutate_once(std::string& s, const std::vector<std::string>& seeds, Rng& r) {
  switch (r.below(10)) {
    case 0:  // bit flip
      if (!s.empty()) s[r.below(s.size())] ^= static_cast<char>(1u << r.below(8));
      break;
    case 1: {  // an interesting byte
      static const unsigned char bytes[] = {0, 1, 0x7f, 0x80, 0xff, '"', '{', '}', '[', ']', '0', '9', '\n', '\t', ' '};
      if (!s.empty()) s[r.below(s.size())] = static_cast<char>(bytes[r.below(sizeof bytes)]);
      break;
    }
    case 2:  // truncate
      s.resize(r.below(s.size() + 1));
      break;
    case 3:  // insert a random byte
      s.insert(s.begin() + static_cast<std::ptrdiff_t>(r.below(s.size() + 1)), static_cast<char>(r.below(256)));
      break;
    case 4: {  // repeat a chunk
      if (s.empty()) break;
      const size_t at = r.below(s.size()), len = 1 + r.below(std::min<size_t>(64, s.size() - at));
      const std::string chunk = s.substr(at, len);
      const size_t times = 1 + r.below(8);
      for (size_t i = 0; i < times && s.size() < (1u << 20); ++i) s.insert(at, chunk);
      break;
    }
    case 5: {  // delete a chunk
      if (s.empty()) break;
      const size_t at = r.below(s.size());
      s.erase(at, 1 + r.below(std::min<size_t>(64, s.size() - at)));
      break;
    }
    case 6: {  // splice with another seed
      const std::string& o = seeds[r.below(seeds.size())];
      const size_t a = r.below(s.size() + 1), b = r.below(o.size() + 1);
      s = s.substr(0, a) + o.substr(b);
      break;
    }
    case 7: {  // swap a run of digits for an extreme number, or insert a token
      const char* t = kTokens[r.below(std::size(kTokens))];
      size_t at = r.below(s.size() + 1);
      size_t end = at;
      while (end < s.size() && (std::isdigit(static_cast<unsigned char>(s[end])) != 0)) ++end;
      s.replace(at, end - at, t);
      break;
    }
    case 8: {  // overwrite 1, 2, 4 or 8 bytes with an extreme little-endian value
      static const uint64_t vals[] = {0, 1, 0xFF, 0xFFFF, 0xFFFFFFFFull, 0x7FFFFFFFull, 0x80000000ull, ~0ull, 1ull << 40};
      const size_t w = size_t{1} << r.below(4);
      if (s.size() < w) break;
      const size_t at = r.below(s.size() - w + 1);
      const uint64_t v = vals[r.below(std::size(vals))];
      for (size_t i = 0; i < w; ++i) s[at + i] = static_cast<char>((v >> (8 * i)) & 0xFF);
      break;
    }
    default: {  // the multi-file separator
      const std::string sep(lorakit::fuzz::kSeparator);
      s.insert(r.below(s.size() + 1), sep);
      break;
    }
  }
}

constexpr unsigned kInputTimeout = 10;  // seconds; an input that takes longer is a hang (SIGALRM)

int run_one(lorakit::fuzz::Entry entry, const std::string& input) {
  g_current = &input;
  ::alarm(kInputTimeout);
  entry(reinterpret_cast<const uint8_t*>(input.data()), input.size());
  ::alarm(0);
  g_current = nullptr;
  return 0;
}

std::string read_bytes(const fs::path& p) {
  std::ifstream is(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(is), std::istreambuf_iterator<char>());
}

int usage() {
  std::fprintf(stderr, "usage: lorakit_fuzz_smoke [--seconds S] [--max-runs N] HARNESS CORPUS_DIR_OR_FILE...\n"
                       "       lorakit_fuzz_smoke --list\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 2;
  uint64_t max_runs = 1000000;
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--list") {
      for (const auto& h : lorakit::fuzz::registry()) std::printf("%s\n", h.name);
      return 0;
    }
    if (a == "--seconds" && i + 1 < argc) {
      seconds = std::atof(argv[++i]);
    } else if (a == "--max-runs" && i + 1 < argc) {
      max_runs = std::strtoull(argv[++i], nullptr, 10);
    } else {
      args.push_back(a);
    }
  }
  if (args.size() < 2) return usage();
  const std::string name = args[0];
  lorakit::fuzz::Entry entry = nullptr;
  for (const auto& h : lorakit::fuzz::registry())
    if (name == h.name) entry = h.entry;
  if (!entry) {
    std::fprintf(stderr, "lorakit_fuzz_smoke: no harness '%s' (--list)\n", name.c_str());
    return 2;
  }
  std::snprintf(g_crash_path, sizeof g_crash_path, "fuzz-smoke-%s-crash.bin", name.c_str());
  for (int sig : {SIGABRT, SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGALRM}) std::signal(sig, on_signal);

  std::vector<std::string> seeds;
  for (size_t i = 1; i < args.size(); ++i) {
    std::error_code ec;
    if (fs::is_directory(args[i], ec)) {
      std::vector<fs::path> files;
      for (const auto& e : fs::directory_iterator(args[i])) if (e.is_regular_file()) files.push_back(e.path());
      std::sort(files.begin(), files.end());
      for (const auto& f : files) seeds.push_back(read_bytes(f));
    } else if (fs::is_regular_file(args[i], ec)) {
      seeds.push_back(read_bytes(args[i]));
    } else {
      std::fprintf(stderr, "lorakit_fuzz_smoke: no corpus at %s\n", args[i].c_str());
      return 2;
    }
  }
  if (seeds.empty()) {
    std::fprintf(stderr, "lorakit_fuzz_smoke: empty corpus for %s\n", name.c_str());
    return 2;
  }

  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  uint64_t runs = 0;
  try {
    for (const auto& s : seeds) {
      run_one(entry, s);
      ++runs;
    }
    Rng rng{0x6c6f72616b6974ull};  // "lorakit"
    std::string input;
    while (runs < max_runs && elapsed() < seconds) {
      input = seeds[rng.below(seeds.size())];
      const size_t n = 1 + rng.below(4);
      for (size_t k = 0; k < n; ++k) mutate_once(input, seeds, rng);
      run_one(entry, input);
      ++runs;
    }
  } catch (const std::exception& e) {
    save_current();
    std::fprintf(stderr, "lorakit_fuzz_smoke: %s: an exception that is not a lorakit::Error escaped: %s\n"
                         "input saved to %s\n", name.c_str(), e.what(), g_crash_path);
    return 1;
  }
  std::printf("%s: %llu runs (%zu seeds + mutations) in %.2f s, no crash\n", name.c_str(),
              static_cast<unsigned long long>(runs), seeds.size(), elapsed());
  return 0;
}
