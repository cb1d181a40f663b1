// Tests for lorakit::text::BertTokenizer. Expected ids come from the real bert-base-uncased vocab:
// id = line number - 1, e.g. `grep -n -x -F 'hello' bert-base-uncased-vocab.txt` -> 7593:hello -> 7592.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "text/tokenizer.h"
#include "text/unicode.h"
#include "support/text_files.h"

namespace fs = std::filesystem;
using lorakit::text::BertTokenizer;
using lorakit::text::Encoding;
using lorakit::text::TokenizerError;
using Ids = std::vector<int64_t>;
using Toks = std::vector<std::string>;

using lorakit::text_testing::read_file;
using lorakit::text_testing::TempDir;
using lorakit::text_testing::write_file;
namespace {

std::string vocab_path() { return std::string(LORAKIT_SHARED_DIR) + "/data/vocab/bert-base-uncased-vocab.txt"; }

const BertTokenizer& bert() {
  static const BertTokenizer tok = BertTokenizer::from_vocab_file(vocab_path());
  return tok;
}


// A small WordPiece tokenizer.json, as the tokenizers library writes it.
std::string small_tokenizer_json(bool lowercase, int max_chars = 100) {
  return std::string(R"({
  "version": "1.0",
  "truncation": null,
  "padding": null,
  "added_tokens": [
    {"id": 0, "content": "[PAD]", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
    {"id": 1, "content": "[UNK]", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
    {"id": 2, "content": "[CLS]", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
    {"id": 3, "content": "[SEP]", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
    {"id": 4, "content": "[MASK]", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}
  ],
  "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true, "strip_accents": null, "lowercase": )") +
         (lowercase ? "true" : "false") + R"(},
  "pre_tokenizer": {"type": "BertPreTokenizer"},
  "post_processor": {
    "type": "TemplateProcessing",
    "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
    "pair": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "[SEP]", "type_id": 0}},
             {"Sequence": {"id": "B", "type_id": 1}}, {"SpecialToken": {"id": "[SEP]", "type_id": 1}}],
    "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]}, "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}}
  },
  "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
  "model": {
    "type": "WordPiece",
    "unk_token": "[UNK]",
    "continuing_subword_prefix": "##",
    "max_input_chars_per_word": )" +
         std::to_string(max_chars) + R"(,
    "vocab": {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "[MASK]": 4, "hello": 5, "world": 6, "##s": 7, "!": 8,
              "un": 9, "##aff": 10, "##able": 11, "Hello": 12, "cafe": 13, "café": 14}
  }
})";
}

}  // namespace

// ------------------------------------------------------------------------------------------------
// vocabulary

TEST(BertTokenizerVocab, LoadsRealVocab) {
  const auto& tok = bert();
  EXPECT_EQ(tok.vocab_size(), 30522u);
  EXPECT_EQ(tok.pad_id(), 0);
  EXPECT_EQ(tok.unk_id(), 100);
  EXPECT_EQ(tok.cls_id(), 101);
  EXPECT_EQ(tok.sep_id(), 102);
  EXPECT_EQ(tok.mask_id(), 103);
  EXPECT_EQ(tok.token_to_id("hello"), 7592);
  EXPECT_EQ(tok.token_to_id("##able"), 3085);
  EXPECT_EQ(tok.token_to_id("definitely-not-a-token"), 100);
  EXPECT_EQ(tok.id_to_token(7592), "hello");
  EXPECT_EQ(tok.id_to_token(30521), "##～");  // last line of the file
  EXPECT_EQ(tok.id_to_token(999999), "[UNK]");
  EXPECT_EQ(tok.convert_tokens_to_ids({"hello", "world", "zzzzqqq"}), (Ids{7592, 2088, 100}));
}

TEST(BertTokenizerVocab, SaveVocabRoundTripsByteForByte) {
  TempDir dir;
  bert().save_vocab(dir.file("vocab.txt"));
  EXPECT_EQ(read_file(dir.file("vocab.txt")), read_file(vocab_path()));
  EXPECT_FALSE(fs::exists(dir.file("vocab.txt.tmp")));
}

TEST(BertTokenizerVocab, DuplicateTokenLastLineWinsLikeHfLoadVocab) {
  TempDir dir;
  write_file(dir.file("v.txt"), "[PAD]\n[UNK]\nfoo\nbar\nfoo\n");
  auto tok = BertTokenizer::from_vocab_file(dir.file("v.txt"));
  EXPECT_EQ(tok.token_to_id("foo"), 4);
  EXPECT_EQ(tok.token_to_id("bar"), 3);
  EXPECT_EQ(tok.vocab_size(), 5u);
  EXPECT_EQ(tok.id_to_token(2), "foo");
}

TEST(BertTokenizerVocab, UniversalNewlinesAndBom) {
  TempDir dir;
  write_file(dir.file("v.txt"), "\xEF\xBB\xBF[PAD]\r\n[UNK]\r\nab\rcd\nef");  // CRLF, lone CR, no final newline
  auto tok = BertTokenizer::from_vocab_file(dir.file("v.txt"));
  EXPECT_EQ(tok.vocab_size(), 5u);
  EXPECT_EQ(tok.token_to_id("[PAD]"), 0);
  EXPECT_EQ(tok.token_to_id("[UNK]"), 1);
  EXPECT_EQ(tok.token_to_id("ab"), 2);
  EXPECT_EQ(tok.token_to_id("cd"), 3);
  EXPECT_EQ(tok.token_to_id("ef"), 4);
  EXPECT_EQ(tok.pad_id(), 0);
}

TEST(BertTokenizerVocab, MissingFileThrowsNamingIt) {
  const std::string path = "/nonexistent/dir/vocab.txt";
  try {
    BertTokenizer::from_vocab_file(path);
    FAIL() << "expected TokenizerError";
  } catch (const TokenizerError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
}

TEST(BertTokenizerVocab, EmptyOrBadFilesThrow) {
  TempDir dir;
  write_file(dir.file("empty.txt"), "");
  try {
    BertTokenizer::from_vocab_file(dir.file("empty.txt"));
    FAIL() << "expected TokenizerError";
  } catch (const TokenizerError& e) {
    EXPECT_NE(std::string(e.what()).find(dir.file("empty.txt")), std::string::npos) << e.what();
  }
  EXPECT_THROW(BertTokenizer::from_vocab_file(dir.str()), TokenizerError);  // a directory
  write_file(dir.file("nounk.txt"), "[PAD]\nhello\n");
  EXPECT_THROW(BertTokenizer::from_vocab_file(dir.file("nounk.txt")), TokenizerError);
  write_file(dir.file("bad.txt"), "[UNK]\nab\xff\n");
  EXPECT_THROW(BertTokenizer::from_vocab_file(dir.file("bad.txt")), TokenizerError);
  // TokenizerError is a lorakit::Error and a std::runtime_error.
  EXPECT_THROW(BertTokenizer::from_vocab_file(dir.file("missing.txt")), lorakit::Error);
  EXPECT_THROW(BertTokenizer::from_vocab_file(dir.file("missing.txt")), std::runtime_error);
}

// ------------------------------------------------------------------------------------------------
// basic tokenization + WordPiece against the real vocab

TEST(BertTokenizerTokenize, AccentsAreStrippedWhenLowercasing) {
  const auto& tok = bert();
  EXPECT_EQ(tok.tokenize("Héllo Wörld"), (Toks{"hello", "world"}));
  EXPECT_EQ(tok.tokenize_to_ids("Héllo Wörld"), (Ids{7592, 2088}));
  EXPECT_EQ(tok.tokenize_to_ids("naïve résumé"), (Ids{15743, 13746}));  // naive, resume
  EXPECT_EQ(tok.tokenize_to_ids("cafe\u0301"), (Ids{7668}));             // decomposed accent -> cafe
  EXPECT_EQ(tok.tokenize_to_ids("İstanbul"), (Ids{9960}));               // U+0130 lowers to i + U+0307
}

TEST(BertTokenizerTokenize, PunctuationSplits) {
  const auto& tok = bert();
  EXPECT_EQ(tok.tokenize("don't!"), (Toks{"don", "'", "t", "!"}));
  EXPECT_EQ(tok.tokenize_to_ids("don't!"), (Ids{2123, 1005, 1056, 999}));
  EXPECT_EQ(tok.tokenize_to_ids("Hello world!"), (Ids{7592, 2088, 999}));
  // "¿" (U+00BF, category Po) is punctuation; "$" (ASCII 36) counts although its category is Sc.
  EXPECT_EQ(tok.tokenize("¿what?"), (Toks{"¿", "what", "?"}));
  EXPECT_EQ(tok.tokenize("a$b"), (Toks{"a", "$", "b"}));
}

TEST(BertTokenizerTokenize, UnknownCharactersBecomeUnk) {
  const auto& tok = bert();
  EXPECT_EQ(tok.tokenize("I love 😀 ok"), (Toks{"i", "love", "[UNK]", "ok"}));
  EXPECT_EQ(tok.tokenize_to_ids("snow \u2603 man"), (Ids{4586, 100, 2158}));
  // A word with no complete segmentation becomes ONE [UNK], not partial pieces.
  EXPECT_EQ(tok.tokenize("ab\u2603cd"), (Toks{"[UNK]"}));
}

TEST(BertTokenizerTokenize, ChineseCharactersAreSeparateTokens) {
  const auto& tok = bert();
  EXPECT_EQ(tok.tokenize_to_ids("中国人"), (Ids{1746, 1799, 1756}));
  EXPECT_EQ(tok.tokenize("I love中国!"), (Toks{"i", "love", "中", "国", "!"}));
  // U+20000 is in the CJK Extension B range: padded, and not in the vocab.
  EXPECT_EQ(tok.tokenize("\U00020000x"), (Toks{"[UNK]", "x"}));
}

TEST(BertTokenizerTokenize, WordPieceContinuations) {
  const auto& tok = bert();
  // The real uncased vocab has no "##aff": greedy longest-first gives una ##ffa ##ble.
  EXPECT_EQ(tok.tokenize("unaffable"), (Toks{"una", "##ffa", "##ble"}));
  EXPECT_EQ(tok.tokenize_to_ids("unaffable"), (Ids{14477, 20961, 3468}));
  EXPECT_EQ(tok.tokenize("abcd"), (Toks{"abc", "##d"}));
}

TEST(BertTokenizerTokenize, LongWordLimit) {
  const auto& tok = bert();
  const std::string hundred(100, 'a');
  auto ids = tok.tokenize_to_ids(hundred);  // exactly 100 chars: still word-pieced
  ASSERT_EQ(ids.size(), 50u);
  EXPECT_EQ(ids.front(), 13360);  // aaa
  EXPECT_EQ(ids[1], 11057);       // ##aa
  EXPECT_EQ(ids.back(), 2050);    // ##a
  EXPECT_EQ(tok.tokenize(hundred + "a"), (Toks{"[UNK]"}));
  EXPECT_EQ(tok.tokenize("x " + hundred + "a y"), (Toks{"x", "[UNK]", "y"}));
  // The limit counts code points, not bytes: 100 two-byte characters (200 bytes) are within it.
  std::string greek;
  for (int i = 0; i < 100; ++i) greek += "\xce\xb1";  // α x 100
  EXPECT_NE(tok.tokenize(greek), (Toks{"[UNK]"}));
  EXPECT_EQ(tok.tokenize(greek + "\xce\xb1"), (Toks{"[UNK]"}));
}

TEST(BertTokenizerTokenize, ControlAndWhitespaceCharacters) {
  const auto& tok = bert();
  // NUL and U+FFFD are removed without a break: the pieces join into one word.
  EXPECT_EQ(tok.tokenize(std::string("hello\0world", 11) + "\xEF\xBF\xBD!"), (Toks{"hello", "##world", "!"}));
  EXPECT_EQ(tok.tokenize("\x01\x07x\x7f"), (Toks{"x"}));
  EXPECT_EQ(tok.tokenize("x\u200by"), (Toks{"x", "##y"}));      // zero-width space (Cf) dropped
  EXPECT_EQ(tok.tokenize("pa\u00adper"), (Toks{"paper"}));      // soft hyphen (Cf) dropped
  // \t and NBSP become spaces; U+2028 (Zl) survives cleaning but Python's split() splits on it.
  EXPECT_EQ(tok.tokenize_to_ids("tab\there\u00a0nbsp\u2028ls"), (Ids{21628, 2182, 1050, 5910, 2361, 1048, 2015}));
  EXPECT_TRUE(tok.tokenize("  \t\n\r ").empty());
  EXPECT_TRUE(tok.tokenize("").empty());
}

TEST(BertTokenizerTokenize, LowerCasesCharByCharLikeHuggingFace) {
  const auto& tok = bert();
  // Hugging Face's BertNormalizer lower-cases each char on its own: 'Σ' is 'σ' even word-finally
  // (Python's str.lower() would give the final form 'ς'). HF: ο ##δ ##ο ##σ = vocab lines 1170, 29723,
  // 29731, 29734 (ids are line - 1).
  EXPECT_EQ(tok.tokenize("ΟΔΟΣ"), (Toks{"ο", "##δ", "##ο", "##σ"}));
  EXPECT_EQ(tok.tokenize_to_ids("ΟΔΟΣ"), (Ids{1169, 29722, 29730, 29733}));
  // A final sigma written in the text stays what it is.
  EXPECT_EQ(tok.tokenize("οδος"), (Toks{"ο", "##δ", "##ος"}));
  // 'İ' lower-cases to "i" + U+0307, whose mark accent stripping then drops.
  EXPECT_EQ(tok.tokenize("İstanbul"), tok.tokenize("istanbul"));
}

TEST(BertTokenizerOffsets, CodePointSpansOfTheOriginalText) {
  const auto& tok = bert();
  auto offsets = [&](const std::string& t) {
    std::vector<std::pair<size_t, size_t>> o;
    for (auto& x : tok.tokenize_with_offsets(t)) o.emplace_back(x.start, x.end);
    return o;
  };
  using O = std::vector<std::pair<size_t, size_t>>;
  // "Hello, world!" → hello , world ! (HF offset_mapping without the specials).
  EXPECT_EQ(offsets("Hello, world!"), (O{{0, 5}, {5, 6}, {7, 12}, {12, 13}}));
  // WordPiece continuations split the word's span; ids and texts equal tokenize()'s.
  const std::string t = "unaffable Café  naïve";
  auto toks = tok.tokenize_with_offsets(t);
  std::vector<std::string> texts;
  std::vector<int64_t> ids;
  for (auto& x : toks) texts.push_back(x.text), ids.push_back(x.id);
  EXPECT_EQ(texts, tok.tokenize(t));
  EXPECT_EQ(ids, tok.tokenize_to_ids(t));
  ASSERT_FALSE(toks.empty());
  EXPECT_EQ(toks.front().start, 0u);
  EXPECT_EQ(toks.back().end, 21u);  // code points, not bytes (the text has 23 bytes)
  for (size_t i = 1; i < toks.size(); ++i) EXPECT_LE(toks[i - 1].end, toks[i].start);
  // "café" (4 code points from 10) keeps its span although 'é' lost its accent.
  bool found_cafe = false;
  for (auto& x : toks)
    if (x.text == "cafe") found_cafe = x.start == 10 && x.end == 14;
  EXPECT_TRUE(found_cafe);
  // Decomposed input: the stripped U+0301 belongs to no token (as in HF's offsets), 'x' keeps its place.
  auto dec = tok.tokenize_with_offsets("cafe\u0301 x");
  ASSERT_GE(dec.size(), 2u);
  EXPECT_EQ(dec.front().start, 0u);
  EXPECT_EQ(dec[dec.size() - 2].end, 4u);
  EXPECT_EQ(dec.back().start, 6u);
  EXPECT_EQ(dec.back().end, 7u);
  // CJK chars are words of their own; special tokens in the text keep their own span.
  EXPECT_EQ(offsets("中文"), (O{{0, 1}, {1, 2}}));
  EXPECT_EQ(offsets("a [SEP] b"), (O{{0, 1}, {2, 7}, {8, 9}}));
}

TEST(BertTokenizerTokenize, SpecialTokensInTextAreKept) {
  const auto& tok = bert();
  EXPECT_EQ(tok.tokenize_to_ids("[CLS] Hi[SEP]there [MASK]"), (Ids{101, 7632, 102, 2045, 103}));
  // Matching is case-sensitive on the raw text, as in HF.
  EXPECT_EQ(tok.tokenize("[mask] [MASK]x"), (Toks{"[", "mask", "]", "[MASK]", "x"}));
}

TEST(BertTokenizerTokenize, InvalidUtf8IsReplacedThenDropped) {
  const auto& tok = bert();
  // Each ill-formed sequence decodes as U+FFFD, which clean-text removes (no exception).
  EXPECT_EQ(tok.tokenize("ab\xff" "cd"), tok.tokenize("abcd"));
  EXPECT_EQ(tok.tokenize("hello \xC3"), (Toks{"hello"}));
  EXPECT_EQ(tok.tokenize("\xED\xA0\x80hello"), (Toks{"hello"}));  // encoded surrogate
  EXPECT_EQ(tok.tokenize("\xC0\xAFhello"), (Toks{"hello"}));      // overlong '/'
  EXPECT_NO_THROW(tok.encode("\x80\x80\xfe", nullptr, 8));
}

TEST(BertTokenizerTokenize, NoLowercaseOptions) {
  BertTokenizer::Options opt;
  opt.do_lower_case = false;
  auto cased = BertTokenizer::from_vocab_file(vocab_path(), opt);
  EXPECT_EQ(cased.tokenize("Hello World"), (Toks{"[UNK]", "[UNK]"}));  // uncased vocab has no "Hello"
  EXPECT_EQ(cased.tokenize("hello"), (Toks{"hello"}));
  BertTokenizer::Options keep;
  keep.strip_accents = false;  // lowercase but keep accents: "héllo" is not in the vocab
  auto keep_acc = BertTokenizer::from_vocab_file(vocab_path(), keep);
  EXPECT_EQ(keep_acc.tokenize("Héllo"), (Toks{"[UNK]"}));
  EXPECT_EQ(keep_acc.tokenize("Hello"), (Toks{"hello"}));
}

// ------------------------------------------------------------------------------------------------
// encode: specials, token types, truncation

TEST(BertTokenizerEncode, SingleSentence) {
  Encoding e = bert().encode("Hello world!", nullptr, 0);
  EXPECT_EQ(e.input_ids, (Ids{101, 7592, 2088, 999, 102}));
  EXPECT_EQ(e.token_type_ids, (Ids{0, 0, 0, 0, 0}));
  EXPECT_EQ(e.attention_mask, (Ids{1, 1, 1, 1, 1}));
  Encoding empty = bert().encode("", nullptr, 16);
  EXPECT_EQ(empty.input_ids, (Ids{101, 102}));
}

TEST(BertTokenizerEncode, PairWithTokenTypes) {
  const std::string b = "the quick brown fox";
  Encoding e = bert().encode("hello world", &b, 128);
  EXPECT_EQ(e.input_ids, (Ids{101, 7592, 2088, 102, 1996, 4248, 2829, 4419, 102}));
  EXPECT_EQ(e.token_type_ids, (Ids{0, 0, 0, 0, 1, 1, 1, 1, 1}));
  EXPECT_EQ(e.attention_mask, Ids(9, 1));
}

TEST(BertTokenizerEncode, EncodeIdsIsEncodesLayout) {
  // "hello world" is 2 tokens: [CLS] hello world [SEP] | b from index 4.
  EXPECT_EQ(lorakit::text_testing::expect_encode_ids_is_encode(bert(), "hello world", "the quick brown fox"), 4u);
  EXPECT_EQ(lorakit::text_testing::expect_encode_ids_is_encode(bert(), "Z\u00fcrich's caf\u00e9!", "na\u00efve r\u00e9sum\u00e9s"),
            bert().tokenize_to_ids("Z\u00fcrich's caf\u00e9!").size() + 2);
  const Ids a = {7592}, b = {2088, 999}, none;
  Encoding e = bert().encode_ids(a, &b);
  EXPECT_EQ(e.input_ids, (Ids{101, 7592, 102, 2088, 999, 102}));
  EXPECT_EQ(e.token_type_ids, (Ids{0, 0, 0, 1, 1, 1}));
  EXPECT_EQ(e.b_begin, 3u);
  e = bert().encode_ids(a, &none);  // an empty b still gets its [SEP]; b_begin is where it would start
  EXPECT_EQ(e.input_ids, (Ids{101, 7592, 102, 102}));
  EXPECT_EQ(e.b_begin, 3u);
}

TEST(BertTokenizerEncode, LongestFirstTruncation) {
  const auto& tok = bert();
  const std::string a = "a b c d e";  // 1037..1041
  const std::string b = "x y z";      // 1060 1061 1062
  // 5 + 3 + 3 = 11 tokens.
  EXPECT_EQ(tok.encode(a, &b, 11).input_ids, (Ids{101, 1037, 1038, 1039, 1040, 1041, 102, 1060, 1061, 1062, 102}));
  // Remove 2: both from a (5>3, 4>3) -> a=3, b=3.
  EXPECT_EQ(tok.encode(a, &b, 9).input_ids, (Ids{101, 1037, 1038, 1039, 102, 1060, 1061, 1062, 102}));
  // Remove 3: a->4, a->3, tie -> b -> a=3, b=2.
  Encoding e8 = tok.encode(a, &b, 8);
  EXPECT_EQ(e8.input_ids, (Ids{101, 1037, 1038, 1039, 102, 1060, 1061, 102}));
  EXPECT_EQ(e8.token_type_ids, (Ids{0, 0, 0, 0, 0, 1, 1, 1}));
  // Remove 4: ... then a (3>2) -> a=2, b=2.
  EXPECT_EQ(tok.encode(a, &b, 7).input_ids, (Ids{101, 1037, 1038, 102, 1060, 1061, 102}));
  // Equal lengths: the tie goes to the second sequence first.
  const std::string a3 = "a b c";
  EXPECT_EQ(tok.encode(a3, &b, 8).input_ids, (Ids{101, 1037, 1038, 1039, 102, 1060, 1061, 102}));
  EXPECT_EQ(tok.encode(a3, &b, 7).input_ids, (Ids{101, 1037, 1038, 102, 1060, 1061, 102}));
  // Longer second sequence is cut first.
  EXPECT_EQ(tok.encode(b, &a, 8).input_ids, (Ids{101, 1060, 1061, 1062, 102, 1037, 1038, 102}));
  // Down to nothing but the specials.
  EXPECT_EQ(tok.encode(a, &b, 3).input_ids, (Ids{101, 102, 102}));
  // Single sequence.
  EXPECT_EQ(tok.encode(a, nullptr, 4).input_ids, (Ids{101, 1037, 1038, 102}));
  EXPECT_EQ(tok.encode(a, nullptr, 2).input_ids, (Ids{101, 102}));
  EXPECT_EQ(tok.encode(a, nullptr, 7).input_ids.size(), 7u);
  EXPECT_EQ(tok.encode(a, nullptr, 100).input_ids.size(), 7u);
  // Truncation is on word pieces, not words.
  EXPECT_EQ(tok.encode("unaffable", nullptr, 4).input_ids, (Ids{101, 14477, 20961, 102}));
}

TEST(BertTokenizerEncode, MaxLengthTooSmallThrows) {
  const std::string b = "x";
  EXPECT_THROW(bert().encode("a", nullptr, 1), TokenizerError);
  EXPECT_THROW(bert().encode("a", &b, 2), TokenizerError);
}

// ------------------------------------------------------------------------------------------------
// tokenizer.json and load_tokenizer

TEST(BertTokenizerJson, LoadsWordPieceTokenizerJson) {
  TempDir dir;
  write_file(dir.file("tokenizer.json"), small_tokenizer_json(true));
  auto tok = BertTokenizer::from_tokenizer_json(dir.file("tokenizer.json"));
  EXPECT_EQ(tok.vocab_size(), 15u);
  EXPECT_EQ(tok.pad_id(), 0);
  EXPECT_EQ(tok.unk_id(), 1);
  EXPECT_EQ(tok.tokenize("Hello worlds!"), (Toks{"hello", "world", "##s", "!"}));
  EXPECT_EQ(tok.tokenize("unaffable"), (Toks{"un", "##aff", "##able"}));
  EXPECT_EQ(tok.tokenize("Café"), (Toks{"cafe"}));  // strip_accents null follows lowercase
  EXPECT_EQ(tok.tokenize("xyz"), (Toks{"[UNK]"}));
  const std::string b = "unaffable";
  Encoding e = tok.encode("hello world", &b, 0);
  EXPECT_EQ(e.input_ids, (Ids{2, 5, 6, 3, 9, 10, 11, 3}));
  EXPECT_EQ(e.token_type_ids, (Ids{0, 0, 0, 0, 1, 1, 1, 1}));
  EXPECT_EQ(tok.encode("hello world", &b, 6).input_ids, (Ids{2, 5, 6, 3, 9, 3}));
}

TEST(BertTokenizerJson, CasedAndMaxCharsSettings) {
  TempDir dir;
  write_file(dir.file("tokenizer.json"), small_tokenizer_json(false, 5));
  auto tok = BertTokenizer::from_tokenizer_json(dir.file("tokenizer.json"));
  EXPECT_EQ(tok.tokenize("Hello hello café Café"), (Toks{"Hello", "hello", "café", "[UNK]"}));
  EXPECT_EQ(tok.tokenize("unaffable"), (Toks{"[UNK]"}));  // 9 chars > 5
  EXPECT_EQ(tok.tokenize("world"), (Toks{"world"}));      // 5 chars: allowed
}

TEST(BertTokenizerJson, SaveVocabThenReloadGivesSameIds) {
  TempDir dir;
  write_file(dir.file("tokenizer.json"), small_tokenizer_json(true));
  auto tok = BertTokenizer::from_tokenizer_json(dir.file("tokenizer.json"));
  tok.save_vocab(dir.file("vocab.txt"));
  auto back = BertTokenizer::from_vocab_file(dir.file("vocab.txt"));
  ASSERT_EQ(back.vocab_size(), tok.vocab_size());
  for (int64_t id = 0; id < static_cast<int64_t>(tok.vocab_size()); ++id) {
    EXPECT_EQ(back.id_to_token(id), tok.id_to_token(id));
    EXPECT_EQ(back.token_to_id(tok.id_to_token(id)), id);
  }
  const std::string b = "Café!";
  EXPECT_EQ(back.encode("Hello worlds unaffable", &b, 0).input_ids,
            tok.encode("Hello worlds unaffable", &b, 0).input_ids);
}

TEST(BertTokenizerJson, ErrorsNameTheFile) {
  TempDir dir;
  EXPECT_THROW(BertTokenizer::from_tokenizer_json(dir.file("tokenizer.json")), TokenizerError);
  write_file(dir.file("broken.json"), "{ not json");
  try {
    BertTokenizer::from_tokenizer_json(dir.file("broken.json"));
    FAIL() << "expected TokenizerError";
  } catch (const TokenizerError& e) {
    EXPECT_NE(std::string(e.what()).find(dir.file("broken.json")), std::string::npos) << e.what();
  }
  write_file(dir.file("bpe.json"), R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}})");
  EXPECT_THROW(BertTokenizer::from_tokenizer_json(dir.file("bpe.json")), TokenizerError);
}

TEST(TokenizerLoad, VocabTxtWithTokenizerConfigDoLowerCaseFalse) {
  TempDir dir;
  write_file(dir.file("vocab.txt"), "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nHello\nhello\ncafé\ncafe\n");
  {
    auto tok = lorakit::text::load_tokenizer(dir.str());  // no config: HF defaults (lowercase, strip accents)
    EXPECT_EQ(tok->encode("Hello café", nullptr, 0).input_ids, (Ids{2, 6, 8, 3}));
    EXPECT_EQ(tok->pad_id(), 0);
    EXPECT_EQ(tok->vocab_size(), 9u);
  }
  write_file(dir.file("tokenizer_config.json"), R"({"do_lower_case": false})");
  auto tok = lorakit::text::load_tokenizer(dir.str());
  // Cased: no lowercasing, and strip_accents unset follows do_lower_case, so "café" keeps its accent.
  EXPECT_EQ(tok->encode("Hello café", nullptr, 0).input_ids, (Ids{2, 5, 7, 3}));
  auto* bert_tok = dynamic_cast<BertTokenizer*>(tok.get());
  ASSERT_NE(bert_tok, nullptr);
  EXPECT_FALSE(bert_tok->options().do_lower_case);
  EXPECT_EQ(bert_tok->tokenize("hello HELLO"), (Toks{"hello", "[UNK]"}));
}

TEST(TokenizerLoad, PrefersTokenizerJsonAndConfigOverrides) {
  TempDir dir;
  write_file(dir.file("vocab.txt"), "[PAD]\n[UNK]\n[CLS]\n[SEP]\n");  // would give different ids
  write_file(dir.file("tokenizer.json"), small_tokenizer_json(true));
  auto tok = lorakit::text::load_tokenizer(dir.str());
  EXPECT_EQ(tok->vocab_size(), 15u);
  EXPECT_EQ(tok->encode("Hello", nullptr, 0).input_ids, (Ids{2, 5, 3}));
  write_file(dir.file("tokenizer_config.json"), R"({"do_lower_case": false, "unk_token": "[UNK]"})");
  auto cased = lorakit::text::load_tokenizer(dir.str());
  EXPECT_EQ(cased->encode("Hello", nullptr, 0).input_ids, (Ids{2, 12, 3}));
}

TEST(TokenizerLoad, EmptyOrMissingDirectoryThrows) {
  TempDir dir;
  EXPECT_THROW(lorakit::text::load_tokenizer(dir.str()), TokenizerError);
  EXPECT_THROW(lorakit::text::load_tokenizer(dir.file("nope")), TokenizerError);
}

// ------------------------------------------------------------------------------------------------
// unicode helpers

TEST(BertTokenizerUnicode, Utf8DecodeReplacesIllFormedSequences) {
  using lorakit::text::unicode::decode_utf8;
  EXPECT_EQ(decode_utf8("a\xC3\xA9"), (std::u32string{U'a', 0xE9}));
  EXPECT_EQ(decode_utf8("\xF0\x9F\x98\x80"), (std::u32string{0x1F600}));
  EXPECT_EQ(decode_utf8("\xE2\x82"), (std::u32string{0xFFFD}));             // truncated: one U+FFFD
  EXPECT_EQ(decode_utf8("\xE2\x82x"), (std::u32string{0xFFFD, U'x'}));
  EXPECT_EQ(decode_utf8("\xF4\x90\x80\x80"), (std::u32string(4, 0xFFFD)));  // > U+10FFFF
  EXPECT_TRUE(lorakit::text::unicode::is_valid_utf8("h\xC3\xA9llo"));
  EXPECT_FALSE(lorakit::text::unicode::is_valid_utf8("h\xC3llo"));
}
