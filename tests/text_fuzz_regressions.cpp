// Regression tests for what fuzzing lorakit's parsers found (docs/reliability.md, "Fuzzing"): each
// input that crashed a harness, or ended in something other than a lorakit::Error naming its file,
// now gives that clear error. The LibTorch side's are in tests/test_fuzz_regressions.cpp.
#include <gtest/gtest.h>

#include <string>

#include "support/text_files.h"
#include "text/glue.h"
#include "text/tokenizer.h"

using lorakit::text_testing::TempDir;
using lorakit::text_testing::write_file;

namespace {

// fn() must throw a lorakit::Error (any subclass) whose message contains every one of `needles`.
template <class Fn>
void expect_lorakit_error(Fn&& fn, std::initializer_list<std::string> needles) {
  try {
    fn();
    ADD_FAILURE() << "expected a lorakit::Error";
  } catch (const lorakit::Error& e) {
    for (const auto& n : needles) EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected a lorakit::Error, got another exception: " << e.what();
  }
}

}  // namespace

// glue_tsv, first seed: GLUE reader errors were std::runtime_error (GlueError), not lorakit::Error.
TEST(FuzzRegressions, GlueErrorsAreLorakitErrors) {
  TempDir d;
  const std::string p = d.file("dev.tsv");
  write_file(p, "index\tsentence\n0\ta film .\n");  // SST-2 without its label column
  expect_lorakit_error([&] { lorakit::data::read_glue_file(lorakit::data::glue_task("sst2"), p, lorakit::data::LabelMode::Required); },
                       {p, "header has no column 'label'"});
  expect_lorakit_error([&] { lorakit::data::glue_task("nope"); }, {"unknown GLUE task 'nope'"});
}

// vocab_txt: a vocabulary without [PAD] gave "pad token '[PAD]' is not in the vocabulary", naming no file
// (the same for [CLS], [SEP], [MASK], which are looked up when first used).
TEST(FuzzRegressions, MissingSpecialTokensNameTheVocabulary) {
  TempDir d;
  write_file(d.file("vocab.txt"), "[UNK]\nhello\n");
  const auto tok = lorakit::text::load_tokenizer(d.str());
  const std::string vocab = d.file("vocab.txt");
  expect_lorakit_error([&] { tok->pad_id(); }, {"pad token '[PAD]'", vocab});
  expect_lorakit_error([&] { tok->encode("hello", nullptr, 0); }, {"token '[", "is not in the vocabulary of '" + vocab});
}

// vocab_txt (smoke run): a token holding a NUL byte ("[UNK\u0000]" in tokenizer_config.json) cut the
// error message short at the NUL, before the file name.
TEST(FuzzRegressions, NulInATokenDoesNotHideTheFileName) {
  TempDir d;
  write_file(d.file("vocab.txt"), "[PAD]\n[UNK]\n[CLS]\n[SEP]\n");
  write_file(d.file("tokenizer_config.json"), R"({"unk_token": {"content": "[UNK\u0000]"}})");
  expect_lorakit_error([&] { lorakit::text::load_tokenizer(d.str()); }, {"[UNK\\0]", d.file("vocab.txt")});
}

// Found reviewing the tokenizer_json harness (a 9.6 GB malloc in the libFuzzer build): a tokenizer.json
// vocab id of 300000000 sized the id table to it. Ids may now lie at most 2^16 past the tokens listed.
TEST(FuzzRegressions, WordPieceIdsCannotSizeTheTableToGigabytes) {
  TempDir d;
  const std::string p = d.file("tokenizer.json");
  write_file(p, R"({"model": {"type": "WordPiece", "unk_token": "[UNK]", "vocab": {"[UNK]": 0, "huge": 300000000}}})");
  expect_lorakit_error([&] { lorakit::text::load_tokenizer(d.str()); }, {p, "'huge' has the id 300000000, out of range"});
  write_file(p, R"({"model": {"type": "WordPiece", "unk_token": "[UNK]", "vocab": {"[UNK]": 0, "neg": -1}}})");
  expect_lorakit_error([&] { lorakit::text::load_tokenizer(d.str()); }, {p, "'neg' has the id -1"});
}

// The same for vocab.json: its cap was 2^26, a 2 GiB table for a 60-byte file.
TEST(FuzzRegressions, BpeIdsCannotSizeTheTableToGigabytes) {
  TempDir d;
  write_file(d.file("vocab.json"), R"({"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "a": 4, "b": 5, "ab": 67108863})");
  write_file(d.file("merges.txt"), "#version: 0.2\na b\n");
  expect_lorakit_error([&] { lorakit::text::load_tokenizer(d.str()); }, {d.file("vocab.json"), "the id 67108863 of 'ab' is out of range"});
}
