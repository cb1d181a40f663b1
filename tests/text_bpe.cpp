// Tests for lorakit::text::BpeTokenizer on the real roberta-base vocabulary.
//
// Where the expected ids come from: tests/oracle/bpe_ref.py, an independent Python implementation
// of GPT-2's published encoder algorithm (bytes_to_unicode, the pre-tokenization regex run by the
// `regex` module, BPE by merge rank) with RoBERTa's conventions, printed them; a sample was checked
// by hand against vocab.json (e.g. "ĠHello" 20920, "Ġ" 1437, "Ċ" 50118, "'s" 18, "<mask>" 50264, and
// 🤗 = F0 9F A4 97 -> "ĠðŁ" 8103 "¤" 10470 "Ĺ" 6800). The oracle tests below also run bpe_ref.py
// on every sentence of the GLUE dev files and on these texts and require identical ids and offsets.
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "text/bpe_tokenizer.h"
#include "text/glue.h"
#include "text/tokenizer.h"
#include "text/unicode.h"
#include "text/unigram_tokenizer.h"
#include "support/text_files.h"

namespace fs = std::filesystem;
using lorakit::text::BpeTokenizer;
using lorakit::text::Token;
using lorakit::text::TokenizerError;
using nlohmann::json;
using Ids = std::vector<int64_t>;
using Spans = std::vector<std::pair<size_t, size_t>>;

using lorakit::text_testing::expect_error_mentioning;
using lorakit::text_testing::read_file;
using lorakit::text_testing::TempDir;
using lorakit::text_testing::write_file;
namespace {

std::string roberta_dir() { return std::string(LORAKIT_SHARED_DIR) + "/data/vocab/roberta-base"; }
std::string vocab_path() { return roberta_dir() + "/vocab.json"; }
std::string merges_path() { return roberta_dir() + "/merges.txt"; }

const BpeTokenizer& roberta() {
  static const BpeTokenizer tok = BpeTokenizer::from_files(vocab_path(), merges_path());
  return tok;
}


Ids encode(const std::string& a, const std::string* b = nullptr, size_t max_length = 0) {
  return roberta().encode(a, b, max_length).input_ids;
}

Spans spans_of(const std::vector<Token>& toks) {
  Spans s;
  for (const auto& t : toks) s.emplace_back(t.start, t.end);
  return s;
}

struct OracleRequest {
  std::string a;
  std::optional<std::string> b;
  size_t max_length = 0;
};
struct OracleAnswer {
  Ids ids;
  std::vector<std::array<int64_t, 3>> tokens;  // id, start, end of a's tokens
};

// Runs tests/oracle/bpe_ref.py with Debian's python3 (python3-regex) over the requests.
std::vector<OracleAnswer> run_oracle(const std::vector<OracleRequest>& reqs) {
  TempDir dir;
  {
    std::ofstream out(dir.file("req.jsonl"), std::ios::binary);
    for (const auto& r : reqs) {
      json j = {{"a", r.a}, {"max_length", r.max_length}};
      j["b"] = r.b ? json(*r.b) : json(nullptr);
      out << j.dump() << "\n";
    }
  }
  const std::string cmd = "/usr/bin/python3 '" + std::string(LORAKIT_SOURCE_DIR) + "/tests/oracle/bpe_ref.py' '" +
                          vocab_path() + "' '" + merges_path() + "' < '" + dir.file("req.jsonl") + "' > '" +
                          dir.file("ans.jsonl") + "'";
  const int rc = std::system(cmd.c_str());
  EXPECT_EQ(rc, 0) << "oracle failed (needs /usr/bin/python3 with python3-regex): " << cmd;
  std::vector<OracleAnswer> out;
  std::ifstream in(dir.file("ans.jsonl"));
  std::string line;
  while (std::getline(in, line)) {
    const json j = json::parse(line);
    OracleAnswer a;
    a.ids = j.at("ids").get<Ids>();
    for (const auto& t : j.at("tokens")) a.tokens.push_back({t[0].get<int64_t>(), t[1].get<int64_t>(), t[2].get<int64_t>()});
    out.push_back(std::move(a));
  }
  EXPECT_EQ(out.size(), reqs.size());
  return out;
}

// Compares the C++ tokenizer with the oracle: returns the number of differing requests (details of
// the first few go to the test log).
size_t compare_with_oracle(const std::vector<OracleRequest>& reqs) {
  const auto answers = run_oracle(reqs);
  if (answers.size() != reqs.size()) return reqs.size();
  size_t diffs = 0;
  for (size_t i = 0; i < reqs.size(); ++i) {
    const auto& r = reqs[i];
    const Ids ids = roberta().encode(r.a, r.b ? &*r.b : nullptr, r.max_length).input_ids;
    std::vector<std::array<int64_t, 3>> toks;
    for (const auto& t : roberta().tokenize_with_offsets(r.a))
      toks.push_back({t.id, static_cast<int64_t>(t.start), static_cast<int64_t>(t.end)});
    if (ids != answers[i].ids || toks != answers[i].tokens) {
      if (++diffs <= 5) ADD_FAILURE() << "differs from bpe_ref.py: '" << r.a << "'" << (r.b ? " / '" + *r.b + "'" : "");
    }
  }
  return diffs;
}

struct Case {
  std::string text;
  Ids ids;  // encode(text) with <s> ... </s>
};

// Tricky texts, ids from bpe_ref.py (see the top of this file).
const std::vector<Case>& tricky_cases() {
  static const std::vector<Case> cases = {
      {"Hello world!", {0, 31414, 232, 328, 2}},
      {" Hello", {0, 20920, 2}},                                // leading space: "ĠHello"
      {"Hello ", {0, 31414, 1437, 2}},                          // trailing space: a lone "Ġ"
      {"Hello   world", {0, 31414, 1437, 1437, 232, 2}},        // \s+(?!\S) leaves one space for "Ġworld"
      {"   ", {0, 1437, 1437, 1437, 2}},
      {"", {0, 2}},
      {"line one\nline two\r\n\ttabbed\n\n", {0, 1902, 65, 50118, 1902, 80, 50121, 50118, 50117, 34108, 5134, 50140, 2}},
      {"I love 🤗 and 😀!", {0, 100, 657, 8103, 10470, 6800, 8, 17841, 7471, 328, 2}},
      {"👍🏽 👨‍👩‍👧", {0, 31193, 8384, 6569, 9357, 10809, 26964, 11423, 17, 8384, 31193, 15375, 17, 8384, 31193, 6248, 2}},
      {"你好，世界", {0, 47856, 21402, 48975, 10809, 43251, 4394, 14285, 46015, 25448, 49127, 14285, 2}},
      {"日本語のテキスト", {0, 47954, 8210, 44636, 11582, 48537, 17772, 48018, 49312, 49587, 49615, 2}},
      {"café naïve Ångström résumé", {0, 438, 2001, 1140, 39300, 952, 5782, 2590, 6031, 3671, 119, 15367, 18581, 1140, 2}},
      {"cafe\xCC\x81", {0, 438, 20120, 44025, 10172, 2}},  // e + combining acute: no normalisation
      {"$1,234.56 €99 ¥1000 £5", {0, 1629, 134, 6, 28621, 4, 4419, 4480, 2831, 30844, 20078, 984, 245, 2}},
      {"It's, I've, you're, we'll, he'd, I'm, don't",
       {0, 243, 18, 6, 38, 348, 6, 47, 214, 6, 52, 581, 6, 37, 1017, 6, 38, 437, 6, 218, 75, 2}},
      {"IT'S 'S 's", {0, 2068, 108, 104, 128, 104, 128, 29, 2}},  // contractions are lower-case only
      {"supercalifragilisticexpialidocious", {0, 16101, 11762, 1594, 18937, 718, 661, 2463, 44813, 2617, 808, 42148, 2}},
      {"12345678901234567890", {0, 19644, 1898, 4111, 5046, 2663, 1922, 1898, 37628, 3248, 2}},
      {"Hello <mask> world", {0, 31414, 50264, 232, 2}},  // <mask> takes the space on its left
      {"<s>inside</s>", {0, 0, 36615, 2, 2}},
      {"a<pad>b<unk>c", {0, 102, 1, 428, 3, 438, 2}},
      {"x  \t<mask>y", {0, 1178, 50264, 219, 2}},
      {"<s > <mask", {0, 41552, 29, 8061, 28696, 43776, 2}},  // not special tokens
      {"a\xC2\xA0" "b a\xE3\x80\x80" "b a\xE2\x80\x89" "b", {0, 102, 50141, 428, 10, 48516, 7471, 428, 10, 17, 23171, 428, 2}},
  };
  return cases;
}

}  // namespace

// ------------------------------------------------------------------------------------------------
// loading

TEST(BpeTokenizerLoad, RealRobertaVocabulary) {
  const auto& tok = roberta();
  EXPECT_EQ(tok.vocab_size(), 50265u);
  EXPECT_EQ(tok.num_merges(), 50000u);
  EXPECT_EQ(tok.cls_id(), 0);
  EXPECT_EQ(tok.bos_id(), 0);
  EXPECT_EQ(tok.pad_id(), 1);
  EXPECT_EQ(tok.sep_id(), 2);
  EXPECT_EQ(tok.eos_id(), 2);
  EXPECT_EQ(tok.unk_id(), 3);
  EXPECT_EQ(tok.mask_id(), 50264);
  EXPECT_EQ(tok.token_to_id("Ġthe"), 5);
  EXPECT_EQ(tok.id_to_token(5), "Ġthe");
  EXPECT_EQ(tok.token_to_id("definitely not a token"), 3);
  EXPECT_EQ(tok.id_to_token(999999), "<unk>");
  EXPECT_EQ(tok.special_prefix().at(0).id, 0);
  EXPECT_EQ(tok.special_suffix().at(0).id, 2);
}

// ------------------------------------------------------------------------------------------------
// pre-tokenization and tokenization

TEST(BpeTokenizerPretokenize, Gpt2RegexSplitsDerivedByHand) {
  // Checked by hand against the regex alternatives (and with the `regex` module).
  using lorakit::text::unicode::decode_utf8;
  EXPECT_EQ(BpeTokenizer::pretokenize(decode_utf8("Hello  world's 12ab !!  \n x\t")),
            (Spans{{0, 5}, {5, 6}, {6, 12}, {12, 14}, {14, 17}, {17, 19}, {19, 22}, {22, 25}, {25, 27}, {27, 28}}));
  // U+001C is not White_Space (an "other"), U+00A0 and U+3000 are; 'LL is no contraction; ½ and Ⅳ
  // are numbers (No, Nl).
  EXPECT_EQ(BpeTokenizer::pretokenize(decode_utf8("a\x1c" "b\xC2\xA0 c\xE3\x80\x80\xE3\x80\x80" "d'llx'LL 3\xC2\xBD\xE2\x85\xA3")),
            (Spans{{0, 1}, {1, 2}, {2, 3}, {3, 4}, {4, 6}, {6, 7}, {7, 8}, {8, 9}, {9, 12}, {12, 13}, {13, 14}, {14, 16}, {16, 20}}));
  EXPECT_TRUE(BpeTokenizer::pretokenize(U"").empty());
  EXPECT_EQ(BpeTokenizer::pretokenize(U" "), (Spans{{0, 1}}));
  EXPECT_EQ(BpeTokenizer::pretokenize(U"a\n"), (Spans{{0, 1}, {1, 2}}));
}

TEST(BpeTokenizerTokenize, TrickyTextsGiveHandCheckedIds) {
  for (const auto& c : tricky_cases()) EXPECT_EQ(encode(c.text), c.ids) << "'" << c.text << "'";
}

TEST(BpeTokenizerTokenize, TokenStringsAreByteLevel) {
  EXPECT_EQ(roberta().tokenize("Hello world\n"), (std::vector<std::string>{"Hello", "Ġworld", "Ċ"}));
  EXPECT_EQ(roberta().tokenize("café"), (std::vector<std::string>{"c", "af", "Ã©"}));
  EXPECT_EQ(roberta().tokenize("a <mask>"), (std::vector<std::string>{"a", "<mask>"}));
}

TEST(BpeTokenizerTokenize, InvalidUtf8BecomesReplacementCharacter) {
  EXPECT_EQ(roberta().tokenize_to_ids("a\xFF" "b"), roberta().tokenize_to_ids("a\xEF\xBF\xBD" "b"));
  EXPECT_EQ(roberta().tokenize_to_ids("\xE2\x82"), roberta().tokenize_to_ids("\xEF\xBF\xBD"));
  EXPECT_FALSE(roberta().tokenize_to_ids("\xC0\xAF").empty());
}

TEST(BpeTokenizerTokenize, VeryLongWordsMatchReferenceQuickly) {
  // 20000 pseudo-random letters (no spaces): one pre-token, BPE must stay fast (no quadratic scan).
  std::string word;
  uint32_t x = 12345;
  for (int i = 0; i < 20000; ++i) {
    x = x * 1103515245u + 12345u;
    word.push_back(static_cast<char>('a' + (x >> 16) % 26));
  }
  const auto t0 = std::chrono::steady_clock::now();
  const Ids ids = roberta().tokenize_to_ids(word);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(secs, 2.0);
  EXPECT_GT(ids.size(), 3000u);
  const std::string repeated(5000, 'z');
  EXPECT_EQ(compare_with_oracle({{word.substr(0, 3000)}, {repeated}, {"x" + repeated + " y"}}), 0u);
}

TEST(BpeTokenizerTokenize, CacheAndThreadsGiveTheSameIds) {
  const auto& dev = lorakit::data::read_glue_file(lorakit::data::glue_task("sst2"),
                                                  std::string(LORAKIT_SHARED_DIR) + "/data/glue/SST-2/dev.tsv");
  std::vector<Ids> fresh;
  {
    const BpeTokenizer tok = BpeTokenizer::from_files(vocab_path(), merges_path());  // cold cache
    for (const auto& ex : dev) fresh.push_back(tok.tokenize_to_ids(ex.text_a));
  }
  std::vector<std::vector<Ids>> per_thread(4);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < per_thread.size(); ++t) {
    threads.emplace_back([&, t] {
      for (const auto& ex : dev) per_thread[t].push_back(roberta().tokenize_to_ids(ex.text_a));
    });
  }
  for (auto& th : threads) th.join();
  for (const auto& r : per_thread) EXPECT_EQ(r, fresh);
}

TEST(BpeTokenizerTokenize, AddPrefixSpaceLikeRobertaTokenizerFast) {
  BpeTokenizer::Options opt;
  opt.add_prefix_space = true;
  const auto tok = BpeTokenizer::from_files(vocab_path(), merges_path(), opt);
  EXPECT_EQ(tok.tokenize_to_ids("Hello world"), (Ids{20920, 232}));  // "ĠHello" "Ġworld"
  EXPECT_EQ(tok.tokenize_to_ids(" Hello"), (Ids{20920}));            // already starts with a space
  EXPECT_EQ(spans_of(tok.tokenize_with_offsets("Hello world")), (Spans{{0, 5}, {6, 11}}));
}

// ------------------------------------------------------------------------------------------------
// offsets

TEST(BpeTokenizerOffsets, TrimmedCodePointOffsetsLikeRobertaTokenizerFast) {
  const auto& tok = roberta();
  // Leading spaces are not part of a token's span; a lone "Ġ" gets an empty span at its end.
  EXPECT_EQ(spans_of(tok.tokenize_with_offsets("Hello world!")), (Spans{{0, 5}, {6, 11}, {11, 12}}));
  EXPECT_EQ(spans_of(tok.tokenize_with_offsets("Hello   world")), (Spans{{0, 5}, {6, 6}, {7, 7}, {8, 13}}));
  EXPECT_EQ(spans_of(tok.tokenize_with_offsets("   ")), (Spans{{1, 1}, {2, 2}, {3, 3}}));
  // Code points, not bytes: "é" is one char; pieces of a multi-byte char share its span.
  EXPECT_EQ(spans_of(tok.tokenize_with_offsets("café naïve")), (Spans{{0, 1}, {1, 3}, {3, 4}, {5, 10}}));
  EXPECT_EQ(spans_of(tok.tokenize_with_offsets("I love 🤗")), (Spans{{0, 1}, {2, 6}, {7, 8}, {7, 8}, {7, 8}}));
  // Newlines are not trimmed (only the space byte is).
  EXPECT_EQ(spans_of(tok.tokenize_with_offsets("a\n\nb")), (Spans{{0, 1}, {1, 2}, {2, 3}, {3, 4}}));
  EXPECT_EQ(spans_of(tok.tokenize_with_offsets("a\n\n")), (Spans{{0, 1}, {1, 3}}));  // "ĊĊ" at the end
  // Special tokens: their literal span; <mask> includes the whitespace it stripped.
  EXPECT_EQ(spans_of(tok.tokenize_with_offsets("Hello <mask> world")), (Spans{{0, 5}, {5, 12}, {13, 18}}));
  EXPECT_EQ(spans_of(tok.tokenize_with_offsets("<s>inside</s>")), (Spans{{0, 3}, {3, 9}, {9, 13}}));
  const auto toks = tok.tokenize_with_offsets("x  \t<mask>y");
  ASSERT_EQ(toks.size(), 3u);
  EXPECT_EQ(toks[1].text, "<mask>");
  EXPECT_EQ(spans_of(toks), (Spans{{0, 1}, {1, 10}, {10, 11}}));
}

// ------------------------------------------------------------------------------------------------
// encode

TEST(BpeTokenizerEncode, SingleAndPairLayout) {
  const std::string b = "A dog ran away quickly.";
  const auto enc = roberta().encode("The cat sat.", &b, 0);
  EXPECT_EQ(enc.input_ids, (Ids{0, 133, 4758, 4005, 4, 2, 2, 250, 2335, 2075, 409, 1335, 4, 2}));
  EXPECT_EQ(enc.token_type_ids, Ids(14, 0));
  EXPECT_EQ(enc.attention_mask, Ids(14, 1));
  const auto single = roberta().encode("The cat sat.", nullptr, 0);
  EXPECT_EQ(single.input_ids, (Ids{0, 133, 4758, 4005, 4, 2}));
  EXPECT_EQ(single.token_type_ids, Ids(6, 0));
}

TEST(BpeTokenizerEncode, EncodeIdsIsEncodesLayout) {
  // <s> The cat sat . </s></s> | b from index 1 + 4 + 2.
  EXPECT_EQ(lorakit::text_testing::expect_encode_ids_is_encode(roberta(), "The cat sat.", "A dog ran away quickly."), 7u);
  const Ids a = {133}, b = {250, 4};
  const auto e = roberta().encode_ids(a, &b);
  EXPECT_EQ(e.input_ids, (Ids{0, 133, 2, 2, 250, 4, 2}));
  EXPECT_EQ(e.token_type_ids, Ids(7, 0));
  EXPECT_EQ(e.b_begin, 4u);
}

TEST(BpeTokenizerEncode, LongestFirstTruncation) {
  const std::string b = "A dog ran away quickly.";
  // 4 + 6 tokens + 4 specials = 14 -> 10: b loses 2 (longer), then 1 (tie -> b), then a loses 1.
  EXPECT_EQ(encode("The cat sat.", &b, 10), (Ids{0, 133, 4758, 4005, 2, 2, 250, 2335, 2075, 2}));
  EXPECT_EQ(encode("one two three four five", nullptr, 4), (Ids{0, 1264, 80, 2}));
  const std::string y = "y", g = "g";
  EXPECT_EQ(encode("x", &y, 4), (Ids{0, 2, 2, 2}));
  EXPECT_EQ(encode("a b c d e f", &g, 8), (Ids{0, 102, 741, 740, 2, 2, 571, 2}));
  EXPECT_EQ(encode("one two", nullptr, 2), (Ids{0, 2}));
  EXPECT_EQ(encode("one two", nullptr, 100), (Ids{0, 1264, 80, 2}));  // no truncation needed
  EXPECT_THROW(roberta().encode("x", nullptr, 1), TokenizerError);
  EXPECT_THROW(roberta().encode("x", &y, 3), TokenizerError);  // a pair has 4 special tokens
}

// ------------------------------------------------------------------------------------------------
// agreement with the independent reference

TEST(BpeTokenizerOracle, TrickyTextsMatchReference) {
  std::vector<OracleRequest> reqs;
  for (const auto& c : tricky_cases()) reqs.push_back({c.text, std::nullopt, 0});
  reqs.push_back({"The cat sat.", std::string("A dog ran away quickly."), 10});
  reqs.push_back({"a b c d e f", std::string("g"), 8});
  reqs.push_back({"one two three four five", std::nullopt, 4});
  EXPECT_EQ(compare_with_oracle(reqs), 0u);
  // The literal table above is what the oracle says.
  const auto answers = run_oracle(reqs);
  ASSERT_EQ(answers.size(), reqs.size());
  for (size_t i = 0; i < tricky_cases().size(); ++i) EXPECT_EQ(answers[i].ids, tricky_cases()[i].ids) << tricky_cases()[i].text;
}

TEST(BpeTokenizerOracle, EveryGlueDevSentenceMatchesReference) {
  using lorakit::data::glue_task;
  using lorakit::data::read_glue_file;
  const std::string glue = std::string(LORAKIT_SHARED_DIR) + "/data/glue/";
  std::vector<OracleRequest> reqs;
  size_t sentences = 0;
  for (const auto& [task, dir] : std::vector<std::pair<std::string, std::string>>{
           {"cola", "CoLA"}, {"sst2", "SST-2"}, {"mrpc", "MRPC"}, {"stsb", "STS-B"}}) {
    for (const auto& ex : read_glue_file(glue_task(task), glue + dir + "/dev.tsv")) {
      reqs.push_back({ex.text_a, std::nullopt, 0});
      ++sentences;
      if (ex.has_b) {
        reqs.push_back({ex.text_b, std::nullopt, 0});
        reqs.push_back({ex.text_a, ex.text_b, 40});  // pairs with truncation
        ++sentences;
      }
    }
  }
  EXPECT_GT(sentences, 5600u);
  EXPECT_EQ(compare_with_oracle(reqs), 0u) << "over " << reqs.size() << " requests";
}

// ------------------------------------------------------------------------------------------------
// files: errors, save, tokenizer.json, load_tokenizer

TEST(BpeTokenizerFiles, ErrorsNameTheFile) {
  TempDir dir;
  const std::string v = dir.file("vocab.json"), m = dir.file("merges.txt");
  const std::string good_vocab = R"({"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "a": 4, "b": 5, "ab": 6, "<mask>": 7})";
  write_file(m, "#version: 0.2\na b\n");
  expect_error_mentioning([&] { BpeTokenizer::from_files(v, m); }, v);  // missing vocab.json
  write_file(v, "{ not json");
  expect_error_mentioning([&] { BpeTokenizer::from_files(v, m); }, v);
  write_file(v, R"([["a", 0.0]])");  // an array (USE-lite layout), not an object
  expect_error_mentioning([&] { BpeTokenizer::from_files(v, m); }, v);
  write_file(v, R"({"<s>": 0, "a": "1"})");  // string id
  expect_error_mentioning([&] { BpeTokenizer::from_files(v, m); }, v);
  write_file(v, R"({"<s>": 0, "a": 1.5})");
  expect_error_mentioning([&] { BpeTokenizer::from_files(v, m); }, v);
  write_file(v, R"({"<s>": 0, "a": -1})");
  expect_error_mentioning([&] { BpeTokenizer::from_files(v, m); }, v);

  write_file(v, good_vocab);
  EXPECT_EQ(BpeTokenizer::from_files(v, m).tokenize_to_ids("ab a"), (Ids{6, 3, 4}));  // no "Ġ": unk
  fs::remove(m);
  expect_error_mentioning([&] { BpeTokenizer::from_files(v, m); }, m);  // missing merges.txt
  write_file(m, "a b\n");  // no header
  expect_error_mentioning([&] { BpeTokenizer::from_files(v, m); }, "#version");
  expect_error_mentioning([&] { BpeTokenizer::from_files(v, m); }, m);
  write_file(m, "");
  expect_error_mentioning([&] { BpeTokenizer::from_files(v, m); }, m);
  write_file(m, "#version: 0.2\na b c\n");
  expect_error_mentioning([&] { BpeTokenizer::from_files(v, m); }, m + "' line 2");
  write_file(m, "#version: 0.2\nab\n");
  expect_error_mentioning([&] { BpeTokenizer::from_files(v, m); }, "line 2");
  write_file(m, "#version: 0.2\na b\na  b\n");
  expect_error_mentioning([&] { BpeTokenizer::from_files(v, m); }, "line 3");
  write_file(m, "#version: 0.2\na c\n");  // part not in the vocabulary
  expect_error_mentioning([&] { BpeTokenizer::from_files(v, m); }, "'c'");
  write_file(m, "#version: 0.2\nb a\n");  // result "ba" not in the vocabulary
  expect_error_mentioning([&] { BpeTokenizer::from_files(v, m); }, "'ba'");
  expect_error_mentioning([&] { BpeTokenizer::from_files(v, m); }, m);

  write_file(m, "#version: 0.2\na b\n");
  for (const char* missing : {"<s>", "</s>", "<pad>", "<unk>"}) {
    json j = json::parse(good_vocab);
    j.erase(missing);
    write_file(v, j.dump());
    expect_error_mentioning([&] { BpeTokenizer::from_files(v, m); }, std::string("'") + missing + "'");
  }
  json no_mask = json::parse(good_vocab);
  no_mask.erase("<mask>");
  write_file(v, no_mask.dump());
  const auto tok = BpeTokenizer::from_files(v, m);  // <mask> is optional
  EXPECT_THROW(tok.mask_id(), TokenizerError);
}

TEST(BpeTokenizerFiles, CrlfAndBlankLinesInMerges) {
  TempDir dir;
  write_file(dir.file("vocab.json"), R"({"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "a": 4, "b": 5, "ab": 6, "abab": 7})");
  write_file(dir.file("merges.txt"), "#version: 0.2\r\na b\r\n\r\nab ab\r\n");
  const auto tok = BpeTokenizer::from_files(dir.file("vocab.json"), dir.file("merges.txt"));
  EXPECT_EQ(tok.num_merges(), 2u);
  EXPECT_EQ(tok.tokenize_to_ids("ababab"), (Ids{7, 6}));  // GPT-2: all "a b", then "ab ab" left to right
  EXPECT_EQ(tok.tokenize_to_ids("aaa"), (Ids{4, 4, 4}));
}

TEST(BpeTokenizerFiles, SaveWritesLoadableRobertaFiles) {
  TempDir dir;
  roberta().save(dir.str());
  EXPECT_EQ(read_file(dir.file("merges.txt")), read_file(merges_path()));  // byte for byte
  EXPECT_EQ(json::parse(read_file(dir.file("vocab.json"))), json::parse(read_file(vocab_path())));
  const json cfg = json::parse(read_file(dir.file("tokenizer_config.json")));
  EXPECT_EQ(cfg.at("tokenizer_class"), "RobertaTokenizer");
  EXPECT_EQ(cfg.at("add_prefix_space"), false);
  const json map = json::parse(read_file(dir.file("special_tokens_map.json")));
  EXPECT_EQ(map.at("cls_token"), "<s>");
  EXPECT_EQ(map.at("mask_token").at("lstrip"), true);
  EXPECT_FALSE(fs::exists(dir.file("added_tokens.json")));
  EXPECT_FALSE(fs::exists(dir.file("vocab.json.tmp")));

  auto loaded = lorakit::text::load_tokenizer(dir.str());
  ASSERT_NE(dynamic_cast<BpeTokenizer*>(loaded.get()), nullptr);
  for (const auto& c : tricky_cases()) EXPECT_EQ(loaded->encode(c.text, nullptr, 0).input_ids, c.ids) << c.text;
  EXPECT_EQ(loaded->vocab_size(), 50265u);
  EXPECT_EQ(loaded->pad_id(), 1);
}

TEST(BpeTokenizerFiles, AddedTokensJsonAndConfig) {
  TempDir dir;
  fs::copy_file(vocab_path(), dir.file("vocab.json"));
  fs::copy_file(merges_path(), dir.file("merges.txt"));
  write_file(dir.file("added_tokens.json"), R"({"<ent>": 50265})");
  write_file(dir.file("tokenizer_config.json"), R"({"add_prefix_space": true})");
  const auto tok = BpeTokenizer::from_model_dir(dir.str());
  EXPECT_EQ(tok.vocab_size(), 50266u);
  EXPECT_TRUE(tok.options().add_prefix_space);
  EXPECT_EQ(tok.tokenize_to_ids("Hello<ent>world"), (Ids{20920, 50265, 232}));
  // Saving keeps the added token outside vocab.json.
  TempDir out;
  tok.save(out.str());
  EXPECT_EQ(json::parse(read_file(out.file("added_tokens.json"))), json::parse(R"({"<ent>": 50265})"));
  EXPECT_EQ(json::parse(read_file(out.file("vocab.json"))).size(), 50265u);
  const auto again = BpeTokenizer::from_model_dir(out.str());
  EXPECT_EQ(again.tokenize_to_ids("Hello<ent>world"), (Ids{20920, 50265, 232}));
  write_file(dir.file("added_tokens.json"), R"({"<ent>": "x"})");
  expect_error_mentioning([&] { BpeTokenizer::from_model_dir(dir.str()); }, dir.file("added_tokens.json"));
}

namespace {

// A tokenizer.json as RobertaTokenizerFast writes it, built from the real vocab.json / merges.txt.
std::string roberta_tokenizer_json(bool pair_merges) {
  const json vocab = json::parse(read_file(vocab_path()));
  json merges = json::array();
  std::istringstream in(read_file(merges_path()));
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const size_t sp = line.find(' ');
    if (pair_merges) merges.push_back(json::array({line.substr(0, sp), line.substr(sp + 1)}));
    else merges.push_back(line);
  }
  json added = json::array();
  for (const auto& [t, id] : std::vector<std::pair<std::string, int>>{{"<s>", 0}, {"<pad>", 1}, {"</s>", 2}, {"<unk>", 3}, {"<mask>", 50264}}) {
    added.push_back({{"id", id}, {"content", t}, {"single_word", false}, {"lstrip", t == "<mask>"}, {"rstrip", false},
                     {"normalized", false}, {"special", true}});
  }
  json j = {{"version", "1.0"},
            {"truncation", nullptr},
            {"padding", nullptr},
            {"added_tokens", added},
            {"normalizer", nullptr},
            {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}}},
            {"post_processor",
             {{"type", "RobertaProcessing"}, {"sep", json::array({"</s>", 2})}, {"cls", json::array({"<s>", 0})},
              {"trim_offsets", true}, {"add_prefix_space", false}}},
            {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}}},
            {"model",
             {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", ""},
              {"end_of_word_suffix", ""}, {"fuse_unk", false}, {"byte_fallback", false}, {"vocab", vocab},
              {"merges", merges}}}};
  return j.dump();
}

}  // namespace

TEST(BpeTokenizerJson, TokenizerJsonGivesTheSameTokenizer) {
  for (bool pair_merges : {false, true}) {
    TempDir dir;
    write_file(dir.file("tokenizer.json"), roberta_tokenizer_json(pair_merges));
    auto loaded = lorakit::text::load_tokenizer(dir.str());  // picked by model.type "BPE"
    auto* bpe = dynamic_cast<BpeTokenizer*>(loaded.get());
    ASSERT_NE(bpe, nullptr);
    EXPECT_EQ(bpe->num_merges(), 50000u);
    EXPECT_EQ(bpe->vocab_size(), 50265u);
    for (const auto& c : tricky_cases()) {
      EXPECT_EQ(bpe->encode(c.text, nullptr, 0).input_ids, c.ids) << c.text;
      EXPECT_EQ(spans_of(bpe->tokenize_with_offsets(c.text)), spans_of(roberta().tokenize_with_offsets(c.text))) << c.text;
    }
  }
}

TEST(BpeTokenizerJson, UnsupportedSettingsAreErrors) {
  TempDir dir;
  const std::string p = dir.file("tokenizer.json");
  const std::string base = R"({"added_tokens": [], "normalizer": null,
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false},
    "post_processor": {"type": "RobertaProcessing", "sep": ["</s>", 2], "cls": ["<s>", 0]},
    "model": {"type": "BPE", "dropout": DROPOUT, "vocab": {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "a": 4, "b": 5, "ab": 6},
              "merges": MERGES}})";
  auto make = [&](const std::string& dropout, const std::string& merges) {
    std::string s = base;
    s.replace(s.find("DROPOUT"), 7, dropout);
    s.replace(s.find("MERGES"), 6, merges);
    return s;
  };
  write_file(p, make("null", R"(["a b"])"));
  EXPECT_EQ(BpeTokenizer::from_tokenizer_json(p).tokenize_to_ids("ab"), (Ids{6}));
  write_file(p, make("0.1", R"(["a b"])"));
  expect_error_mentioning([&] { BpeTokenizer::from_tokenizer_json(p); }, p);
  write_file(p, make("null", R"(["a b c"])"));
  expect_error_mentioning([&] { BpeTokenizer::from_tokenizer_json(p); }, p);
  write_file(p, make("null", R"(["a x"])"));
  expect_error_mentioning([&] { BpeTokenizer::from_tokenizer_json(p); }, "'x'");
  write_file(p, R"({"model": {"type": "WordPiece", "vocab": {"a": 0}}})");
  expect_error_mentioning([&] { BpeTokenizer::from_tokenizer_json(p); }, p);
}

TEST(TokenizerLoad, PicksTheTokenizerByFiles) {
  {  // vocab.json + merges.txt -> BPE
    TempDir dir;
    fs::copy_file(vocab_path(), dir.file("vocab.json"));
    fs::copy_file(merges_path(), dir.file("merges.txt"));
    auto tok = lorakit::text::load_tokenizer(dir.str());
    ASSERT_NE(dynamic_cast<BpeTokenizer*>(tok.get()), nullptr);
    EXPECT_EQ(tok->encode("Hello world!", nullptr, 0).input_ids, (Ids{0, 31414, 232, 328, 2}));
  }
  {  // USE-lite's vocab.json (an array of [piece, score]) stays a UnigramTokenizer
    TempDir dir;
    json pieces = json::array();
    for (const char* p : {"\xEF\xBF\xBD", "<s>", "</s>", "e1", "e2", "e3", "\xE2\x96\x81hello", "\xE2\x96\x81"})
      pieces.push_back(json::array({p, -1.0}));
    write_file(dir.file("vocab.json"), pieces.dump());
    auto tok = lorakit::text::load_tokenizer(dir.str());
    EXPECT_NE(dynamic_cast<lorakit::text::UnigramTokenizer*>(tok.get()), nullptr);
  }
  {  // an object vocab.json without merges.txt: a clear error
    TempDir dir;
    fs::copy_file(vocab_path(), dir.file("vocab.json"));
    expect_error_mentioning([&] { lorakit::text::load_tokenizer(dir.str()); }, "merges.txt");
  }
}
