// IDX reader: files the test writes (plain and gzipped, valid and corrupt) and the real Fashion-MNIST
// files of Debian's dataset-fashion-mnist, checked against Python's gzip module.
#include <gtest/gtest.h>

#include <zlib.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "core/errors.h"
#include "core/fileutil.h"
#include "support/helpers.h"
#include "tasks/image/idx.h"

using namespace lorakit;
using namespace lorakit::data;
using lorakit::testing::TempDir;

namespace {

std::string idx_bytes(const std::vector<uint32_t>& dims, const std::vector<uint8_t>& data, uint8_t type = 0x08) {
  std::string s = {0, 0, static_cast<char>(type), static_cast<char>(dims.size())};
  for (uint32_t d : dims)
    for (int sh : {24, 16, 8, 0}) s.push_back(static_cast<char>((d >> sh) & 0xff));
  s.append(data.begin(), data.end());
  return s;
}

void write_plain(const std::string& path, const std::string& bytes) { std::ofstream(path, std::ios::binary) << bytes; }

void write_gz(const std::string& path, const std::string& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())), static_cast<int>(bytes.size()));
  gzclose(f);
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

const char* kFashion = "/usr/share/datasets/fashion-mnist";

}  // namespace

TEST(Idx, ReadsPlainAndGzippedFilesAndLimits) {
  TempDir d;
  std::vector<uint8_t> px(3 * 2 * 4);
  for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<uint8_t>(i * 7);
  write_plain(d.file("im"), idx_bytes({3, 2, 4}, px));
  write_gz(d.file("im.gz"), idx_bytes({3, 2, 4}, px));
  write_gz(d.file("lb.gz"), idx_bytes({3}, {2, 0, 1}));
  for (const char* name : {"im", "im.gz"}) {
    IdxArray a = read_idx(d.file(name));
    EXPECT_EQ(a.dims, (std::vector<int64_t>{3, 2, 4})) << name;
    EXPECT_EQ(a.data, px) << name;
  }
  IdxArray two = read_idx(d.file("im.gz"), 2);
  EXPECT_EQ(two.dims[0], 2);
  EXPECT_EQ(two.data, std::vector<uint8_t>(px.begin(), px.begin() + 16));
  IdxImages im = read_idx_images(d.file("im.gz"), d.file("lb.gz"), 0, 3);
  EXPECT_EQ(im.count, 3);
  EXPECT_EQ(im.rows, 2);
  EXPECT_EQ(im.cols, 4);
  EXPECT_EQ(im.labels, (std::vector<int64_t>{2, 0, 1}));
}

TEST(Idx, CorruptFilesNameTheFileAndTheOffset) {
  TempDir d;
  std::vector<uint8_t> px(2 * 3 * 3, 5);
  auto write_err = [&](const std::string& name, const std::string& bytes) {
    write_plain(d.file(name), bytes);
    return error_of([&] { read_idx(d.file(name)); });
  };
  std::string full = idx_bytes({2, 3, 3}, px);
  std::string e = write_err("short", full.substr(0, full.size() - 4));
  EXPECT_NE(e.find(d.file("short") + ": truncated at byte 30"), std::string::npos) << e;
  EXPECT_NE(e.find("34 bytes in all"), std::string::npos) << e;
  e = write_err("long", full + "xx");
  EXPECT_NE(e.find("data continues past byte 34"), std::string::npos) << e;
  e = write_err("magic", "\x01\x00\x08\x01" + std::string(8, '\0'));
  EXPECT_NE(e.find("not an IDX file"), std::string::npos) << e;
  e = write_err("float", idx_bytes({1}, {0, 0, 0, 0}, 0x0D));
  EXPECT_NE(e.find("data type 0x0d is not supported"), std::string::npos) << e;
  e = write_err("hdr", std::string("\x00\x00", 2));
  EXPECT_NE(e.find("truncated at byte 0"), std::string::npos) << e;
  e = write_err("dims", idx_bytes({2, 3, 3}, {}).substr(0, 9));
  EXPECT_NE(e.find("inside the dimension sizes"), std::string::npos) << e;
  e = error_of([&] { read_idx(d.file("absent")); });
  EXPECT_NE(e.find("cannot open"), std::string::npos) << e;
  // A gzip stream cut short: an error, not a silently short array.
  write_gz(d.file("full.gz"), full);
  std::ifstream in(d.file("full.gz"), std::ios::binary);
  std::string gz((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  write_plain(d.file("cut.gz"), gz.substr(0, gz.size() / 2));
  e = error_of([&] { read_idx(d.file("cut.gz")); });
  EXPECT_NE(e.find(d.file("cut.gz")), std::string::npos) << e;
  // Images and labels that disagree.
  write_plain(d.file("im"), full);
  write_plain(d.file("lb3"), idx_bytes({3}, {0, 1, 2}));
  e = error_of([&] { read_idx_images(d.file("im"), d.file("lb3")); });
  EXPECT_NE(e.find("holds 2 images but"), std::string::npos) << e;
  write_plain(d.file("lb2"), idx_bytes({2}, {0, 11}));
  e = error_of([&] { read_idx_images(d.file("im"), d.file("lb2"), 0, 10); });
  EXPECT_NE(e.find("label 11 of item 1 is not below 10"), std::string::npos) << e;
  e = error_of([&] { read_idx_images(d.file("lb2"), d.file("lb2")); });
  EXPECT_NE(e.find("has 3 dimensions [N, rows, cols], this one 1"), std::string::npos) << e;
}

TEST(Idx, RealFashionMnistMatchesPythonGzip) {
  const std::string im = std::string(kFashion) + "/t10k-images-idx3-ubyte.gz",
                    lb = std::string(kFashion) + "/t10k-labels-idx1-ubyte.gz";
  ASSERT_TRUE(file_exists(im)) << im << " missing: scripts/setup installs dataset-fashion-mnist";
  IdxImages t = read_idx_images(im, lb, 0, 10);
  EXPECT_EQ(t.count, 10000);
  EXPECT_EQ(t.rows, 28);
  EXPECT_EQ(t.cols, 28);
  int64_t sum = 0;
  for (uint8_t v : t.pixels) sum += v;
  TempDir d;
  auto r = lorakit::testing::run_command(
      "/usr/bin/python3 -c \"import gzip, json; i = gzip.open('" + im + "').read(); l = gzip.open('" + lb +
      "').read(); print(json.dumps({'n': int.from_bytes(i[4:8], 'big'), 'sum': sum(i[16:]), 'labels': list(l[8:20]),"
      " 'hist': [l[8:].count(k) for k in range(10)]}))\"");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto j = nlohmann::json::parse(r.output);
  EXPECT_EQ(j["n"].get<int64_t>(), t.count);
  EXPECT_EQ(j["sum"].get<int64_t>(), sum);
  EXPECT_EQ(j["labels"].get<std::vector<int64_t>>(), std::vector<int64_t>(t.labels.begin(), t.labels.begin() + 12));
  std::vector<int64_t> hist(10, 0);
  for (int64_t l : t.labels) ++hist[l];
  EXPECT_EQ(j["hist"].get<std::vector<int64_t>>(), hist);
  // The training file, first 100 items only.
  IdxImages tr = read_idx_images(std::string(kFashion) + "/train-images-idx3-ubyte.gz",
                                 std::string(kFashion) + "/train-labels-idx1-ubyte.gz", 100, 10);
  EXPECT_EQ(tr.count, 100);
  EXPECT_EQ(tr.pixels.size(), 100u * 28 * 28);
}
