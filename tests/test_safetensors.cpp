#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include "core/errors.h"
#include "core/safetensors.h"
#include "support/helpers.h"

using namespace lorakit;
using lorakit::testing::TempDir;

namespace {

// Builds a safetensors file by hand: header JSON text + raw data bytes.
std::string make_file(const std::string& header, const std::string& data, int64_t forced_len = -1) {
  uint64_t n = forced_len >= 0 ? static_cast<uint64_t>(forced_len) : header.size();
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + data;
}

void expect_error(const std::string& bytes, const std::string& needle) {
  TempDir d;
  const std::string p = d.file("bad.safetensors");
  lorakit::testing::write_bytes(p, bytes);
  try {
    st::SafetensorsFile f(p);
    FAIL() << "expected an error containing '" << needle << "'";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find(p), std::string::npos) << msg;
    EXPECT_NE(msg.find(needle), std::string::npos) << msg;
  }
}

}  // namespace

TEST(Safetensors, RoundTripAllDtypes) {
  TempDir d;
  st::NamedTensors ts = {
      {"f32", at::randn({3, 4})},
      {"f64", at::randn({2, 2}, at::kDouble)},
      {"bf16", at::randn({5}).to(at::kBFloat16)},
      {"f16", at::randn({2, 3}).to(at::kHalf)},
      {"i64", at::arange(7, at::kLong)},
      {"i32", at::arange(4, at::kInt).view({2, 2})},
      {"u8", at::arange(6, at::kByte)},
      {"bool", at::ones({3}, at::kBool)},
      {"empty", at::empty({0, 4})},
      {"scalar", at::full({}, 3.5)},
      {"strided", at::randn({4, 6}).t()},  // non-contiguous input is written contiguously
  };
  st::save_file(d.file("x.safetensors"), ts, {{"format", "pt"}});
  st::SafetensorsFile f(d.file("x.safetensors"));
  EXPECT_EQ(f.metadata().at("format"), "pt");
  ASSERT_EQ(f.keys().size(), ts.size());
  for (auto& [name, t] : ts) {
    at::Tensor r = f.load(name);
    EXPECT_EQ(r.scalar_type(), t.scalar_type()) << name;
    EXPECT_EQ(r.sizes(), t.sizes()) << name;
    EXPECT_TRUE(at::equal(r, t.contiguous())) << name;
  }
  // keys() come back in data order, which is the order written.
  EXPECT_EQ(f.keys().front(), "f32");
  EXPECT_EQ(f.info("f32").begin, 0u);
  EXPECT_EQ(f.info("f32").end, 48u);
}

TEST(Safetensors, ReadsFileWrittenByIndependentWriter) {
  TempDir d;
  // Written by tests/oracle/st_io.py (Python), read by lorakit.
  auto r = lorakit::testing::run_command(
      "cd " + lorakit::testing::source_dir() + "/tests/oracle && /usr/bin/python3 -c \"import torch, st_io; "
      "st_io.save('" + d.file("py.safetensors") + "', {'a': torch.arange(6, dtype=torch.float32).reshape(2,3), "
      "'b': torch.tensor([1,-2], dtype=torch.int64)})\"");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  st::SafetensorsFile f(d.file("py.safetensors"));
  EXPECT_TRUE(at::equal(f.load("a"), at::arange(6, at::kFloat).view({2, 3})));
  EXPECT_EQ(f.load("b")[1].item<int64_t>(), -2);
}

TEST(Safetensors, RejectsCorruptFiles) {
  const std::string ok_header = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  const std::string data8(8, '\0');
  expect_error(std::string("abc"), "shorter than the 8-byte header");
  expect_error(make_file(ok_header, data8, 1000), "runs past the end");
  expect_error(make_file(ok_header, data8, int64_t(1) << 40), "exceeds the 100 MiB");
  expect_error(make_file("not json at all", ""), "not a JSON object");
  expect_error(make_file("{\"a\": [1,2", ""), "not valid JSON");
  expect_error(make_file(R"({"a":{"dtype":"F99","shape":[2],"data_offsets":[0,8]}})", data8), "unknown dtype 'F99'");
  expect_error(make_file(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", data8), "shape x dtype");
  expect_error(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,16]}})", data8), "out of range");
  expect_error(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", data8), "begin > end");
  expect_error(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                         R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                         data8),
               "overlap");
  expect_error(make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", data8), "gap");
  expect_error(make_file(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,8]}})", data8), "non-negative");
  expect_error(make_file(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,8]}})", data8),
               "overflows");
  expect_error(make_file(R"({"a":{"dtype":"F32","shape":[2]}})", data8), "data_offsets");
  expect_error(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", data8 + "xx"), "cover");
  expect_error(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", data8.substr(0, 4)), "out of range");
}

TEST(Safetensors, MissingFileNamesPath) {
  try {
    st::SafetensorsFile f("/nonexistent/dir/model.safetensors");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/dir/model.safetensors"), std::string::npos);
  }
}

TEST(Safetensors, FailedWriteLeavesExistingFileUntouched) {
  TempDir d;
  const std::string p = d.file("keep.safetensors");
  st::save_file(p, {{"a", at::ones({2})}});
  const std::string before = lorakit::testing::read_bytes(p);
  // Complex tensors cannot be stored: the writer must fail without touching the file.
  EXPECT_THROW(st::save_file(p, {{"a", at::ones({2})}, {"c", at::ones({2}, at::kComplexFloat)}}), Error);
  EXPECT_EQ(lorakit::testing::read_bytes(p), before);
  EXPECT_THROW(st::save_file(p, {{"a", at::ones({2})}, {"a", at::ones({3})}}), Error);  // duplicate names
  EXPECT_EQ(lorakit::testing::read_bytes(p), before);
}
