#include "support/helpers.h"

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "models/use_lite.h"

namespace lorakit::testing {

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/lorakit-test-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (!mkdtemp(buf.data())) throw std::runtime_error("mkdtemp failed");
  path_ = buf.data();
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string source_dir() { return LORAKIT_SOURCE_DIR; }
std::string shared_dir() { return LORAKIT_SHARED_DIR; }
std::string vocab_file() { return shared_dir() + "/data/vocab/bert-base-uncased-vocab.txt"; }

RunResult run_command(const std::string& cmdline) {
  std::string full = cmdline + " 2>&1";
  FILE* p = popen(full.c_str(), "r");
  if (!p) throw std::runtime_error("popen failed: " + cmdline);
  std::string out;
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  int status = pclose(p);
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  return {code, out};
}

RunResult run_cli(const std::string& args) { return run_command(std::string(LORAKIT_CLI) + " " + args); }

RunResult init_tiny_model(const std::string& out, const std::string& flags) {
  return run_cli("init-model --vocab " + vocab_file() + " --hidden 32 --heads 2 --intermediate 64 " + flags +
                 " --out " + out);
}

RunResult train_tiny_mrpc(const TempDir& dir, const std::string& method_flags) {
  RunResult r = init_tiny_model(dir.file("model"), "--layers 2 --max-position 64");
  if (r.exit_code != 0) return r;
  return run_cli("train --model " + dir.file("model") + " --task mrpc --data " + shared_dir() + "/data/glue " +
                 method_flags +
                 " --epochs 2 --lr 5e-3 --max-train-samples 128 --max-eval-samples 48 --max-seq-len 48"
                 " --batch-size 16 --threads 1 --no-progress --out " + dir.file("run"));
}

RunResult run_oracle(const std::string& script, const std::string& args) {
  return run_command("/usr/bin/python3 " + source_dir() + "/tests/oracle/" + script + " " + args);
}

const std::string& use_lite_dir(std::string* error) {
  static std::string dir, err;
  static bool done = false;
  if (!done) {
    done = true;
    dir = use_lite_default_dir();
    if (!std::filesystem::exists(dir + "/model.json") || !std::filesystem::exists(dir + "/vocab.json")) {
      auto r = run_command(source_dir() + "/scripts/fetch-use-lite");
      std::string last;
      std::istringstream is(r.output);
      for (std::string line; std::getline(is, line);)
        if (!line.empty()) last = line;
      if (r.exit_code != 0 || !std::filesystem::exists(last + "/model.json")) {
        err = "scripts/fetch-use-lite failed (exit " + std::to_string(r.exit_code) + "):\n" + r.output;
        dir.clear();
      } else {
        dir = last;
      }
    }
  }
  if (error) *error = err;
  return dir;
}

void write_text(const std::string& path, const std::string& text) { write_bytes(path, text); }

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream os(path, std::ios::binary | std::ios::trunc);
  os.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

nlohmann::json last_json_object(const std::string& output) {
  auto pos = output.rfind("\n{");
  pos = pos == std::string::npos ? output.find('{') : pos + 1;
  return nlohmann::json::parse(output.substr(pos));
}

std::vector<nlohmann::json> read_jsonl(const std::string& path) {
  std::vector<nlohmann::json> out;
  std::ifstream is(path);
  std::string line;
  while (std::getline(is, line))
    if (!line.empty()) out.push_back(nlohmann::json::parse(line));
  return out;
}

std::string read_bytes(const std::string& path) {
  std::ifstream is(path, std::ios::binary);
  std::ostringstream ss;
  ss << is.rdbuf();
  return ss.str();
}

}  // namespace lorakit::testing
