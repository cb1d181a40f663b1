// Header-only helpers for the text-library tests (lorakit_text_tests links no LibTorch and not
// tests/support/helpers.cpp): a temporary directory, whole-file reads and writes, an error check.
#pragma once
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "text/tokenizer.h"

namespace lorakit::text_testing {

// A fresh directory under the system temp dir, removed with everything in it on destruction.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    const auto stamp = std::chrono::steady_clock::now().time_since_epoch().count();
    path_ = std::filesystem::temp_directory_path() /
            ("lorakit_text_" + std::to_string(stamp) + "_" + std::to_string(counter++));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  std::string str() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

inline void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  ASSERT_TRUE(out.good()) << path;
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// fn() must throw a TokenizerError whose message contains `needle`.
template <class Fn>
void expect_error_mentioning(Fn&& fn, const std::string& needle) {
  try {
    fn();
    ADD_FAILURE() << "expected TokenizerError mentioning '" << needle << "'";
  } catch (const lorakit::text::TokenizerError& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

// encode(a, &b, 0) must be encode_ids(ids of a, ids of b) (tokenize_with_offsets' ids), with b's ids at
// b_begin, and likewise encode(a, nullptr, 0) for the single sequence (b_begin 0). Returns the pair's b_begin.
inline size_t expect_encode_ids_is_encode(const lorakit::text::Tokenizer& tok, const std::string& a,
                                          const std::string& b) {
  auto ids = [&](const std::string& t) {
    std::vector<int64_t> out;
    for (const auto& x : tok.tokenize_with_offsets(t)) out.push_back(x.id);
    return out;
  };
  const std::vector<int64_t> ia = ids(a), ib = ids(b);
  const auto pair = tok.encode(a, &b, 0), pair_ids = tok.encode_ids(ia, &ib);
  EXPECT_EQ(pair_ids.input_ids, pair.input_ids);
  EXPECT_EQ(pair_ids.token_type_ids, pair.token_type_ids);
  EXPECT_EQ(pair_ids.attention_mask, pair.attention_mask);
  EXPECT_EQ(pair_ids.b_begin, pair.b_begin);
  EXPECT_LE(pair.b_begin + ib.size(), pair.input_ids.size());
  if (pair.b_begin + ib.size() <= pair.input_ids.size()) {
    EXPECT_EQ(std::vector<int64_t>(pair.input_ids.begin() + static_cast<long>(pair.b_begin),
                                   pair.input_ids.begin() + static_cast<long>(pair.b_begin + ib.size())),
              ib);
  }
  const auto single = tok.encode(a, nullptr, 0), single_ids = tok.encode_ids(ia, nullptr);
  EXPECT_EQ(single_ids.input_ids, single.input_ids);
  EXPECT_EQ(single_ids.token_type_ids, single.token_type_ids);
  EXPECT_EQ(single.b_begin, 0u);
  EXPECT_EQ(single_ids.b_begin, 0u);
  return pair.b_begin;
}

}  // namespace lorakit::text_testing
