// Tests for lorakit::text::SentencePieceTokenizer and train_sentencepiece. No real deberta-v3
// spm.model exists on these machines, so a small unigram model is trained on GLUE text (deberta-v3's
// piece layout: 0 [PAD], 1 [CLS], 2 [SEP], 3 [UNK], [MASK] after the pieces) and checked against
// Debian's python3-sentencepiece (/usr/bin/python3), which encodes the same spm.model independently
// of lorakit's wrapper (special-token splitting, offsets, ids).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "text/glue.h"
#include "text/sentencepiece_tokenizer.h"
#include "text/tokenizer.h"
#include "support/text_files.h"

namespace fs = std::filesystem;
using lorakit::text::SentencePieceTokenizer;
using lorakit::text::SentencePieceTrainOptions;
using lorakit::text::TokenizerError;
using lorakit::text::train_sentencepiece;
using nlohmann::json;
using Ids = std::vector<int64_t>;
using Spans = std::vector<std::pair<size_t, size_t>>;

using lorakit::text_testing::expect_error_mentioning;
using lorakit::text_testing::read_file;
using lorakit::text_testing::TempDir;
using lorakit::text_testing::write_file;
namespace {


std::string glue(const std::string& rel) { return std::string(LORAKIT_SHARED_DIR) + "/data/glue/" + rel; }

std::vector<std::string> sentences_of(const std::string& task, const std::string& rel) {
  std::vector<std::string> out;
  for (const auto& ex : lorakit::data::read_glue_file(lorakit::data::glue_task(task), glue(rel))) {
    out.push_back(ex.text_a);
    if (ex.has_b) out.push_back(ex.text_b);
  }
  return out;
}

// Mixed-case training text: CoLA and MRPC train sentences.
const std::vector<std::string>& training_text() {
  static const std::vector<std::string> text = [] {
    auto t = sentences_of("cola", "CoLA/train.tsv");
    auto m = sentences_of("mrpc", "MRPC/train.tsv");
    t.insert(t.end(), m.begin(), m.end());
    return t;
  }();
  return text;
}

SentencePieceTrainOptions small_options() {
  SentencePieceTrainOptions opt;
  opt.vocab_size = 2000;
  return opt;
}

const SentencePieceTokenizer& trained() {
  static const SentencePieceTokenizer tok = train_sentencepiece(training_text(), small_options());
  return tok;
}

// The trained model saved once, for python3-sentencepiece and load tests.
const std::string& trained_dir() {
  static TempDir dir;
  static const bool saved = (trained().save(dir.str()), true);
  (void)saved;
  static const std::string path = dir.str();
  return path;
}

struct PyPiece {
  int64_t id;
  std::string piece;
  size_t begin, end;  // code points
};

// Encodes each text with python3-sentencepiece (sp.encode(text, out_type="immutable_proto")).
std::vector<std::vector<PyPiece>> python_encode(const std::string& model, const std::vector<std::string>& texts) {
  TempDir dir;
  write_file(dir.file("enc.py"), R"(import json, sys
import sentencepiece as spm
sp = spm.SentencePieceProcessor(model_file=sys.argv[1])
with open(sys.argv[2], encoding="utf-8") as f, open(sys.argv[3], "w", encoding="utf-8") as out:
    for line in f:
        if not line.strip():
            continue
        p = sp.encode(json.loads(line), out_type="immutable_proto")
        out.write(json.dumps([[x.id, x.piece, x.begin, x.end] for x in p.pieces]) + "\n")
)");
  {
    std::ofstream out(dir.file("in.jsonl"), std::ios::binary);
    for (const auto& t : texts) out << json(t).dump() << "\n";
  }
  const std::string cmd = "/usr/bin/python3 '" + dir.file("enc.py") + "' '" + model + "' '" + dir.file("in.jsonl") +
                          "' '" + dir.file("out.jsonl") + "'";
  const int rc = std::system(cmd.c_str());
  EXPECT_EQ(rc, 0) << "python3-sentencepiece failed: " << cmd;
  std::vector<std::vector<PyPiece>> result;
  std::ifstream in(dir.file("out.jsonl"));
  std::string line;
  while (std::getline(in, line)) {
    std::vector<PyPiece> pieces;
    for (const auto& p : json::parse(line))
      pieces.push_back(PyPiece{p[0].get<int64_t>(), p[1].get<std::string>(), p[2].get<size_t>(), p[3].get<size_t>()});
    result.push_back(std::move(pieces));
  }
  EXPECT_EQ(result.size(), texts.size());
  return result;
}

Ids ids_of(const std::vector<PyPiece>& p) {
  Ids ids;
  for (const auto& x : p) ids.push_back(x.id);
  return ids;
}

}  // namespace

// ------------------------------------------------------------------------------------------------
// training

TEST(SentencePieceTrain, DebertaV3PieceLayout) {
  const auto& tok = trained();
  EXPECT_EQ(tok.piece_count(), 2000u);
  EXPECT_EQ(tok.id_to_token(0), "[PAD]");
  EXPECT_EQ(tok.id_to_token(1), "[CLS]");
  EXPECT_EQ(tok.id_to_token(2), "[SEP]");
  EXPECT_EQ(tok.id_to_token(3), "[UNK]");
  EXPECT_EQ(tok.pad_id(), 0);
  EXPECT_EQ(tok.cls_id(), 1);
  EXPECT_EQ(tok.sep_id(), 2);
  EXPECT_EQ(tok.unk_id(), 3);
  EXPECT_EQ(tok.mask_id(), 2000);  // appended after the pieces, like deberta-v3's 128000
  EXPECT_EQ(tok.vocab_size(), 2001u);
  EXPECT_EQ(tok.id_to_token(2000), "[MASK]");
  EXPECT_EQ(tok.token_to_id("[MASK]"), 2000);
  EXPECT_EQ(tok.id_to_token(123456), "[UNK]");
  EXPECT_EQ(tok.token_to_id("no such piece"), 3);
  EXPECT_GT(tok.token_to_id("\xE2\x96\x81the"), 3);  // "▁the" is surely a piece
}

TEST(SentencePieceTrain, DeterministicForTheSameInput) {
  std::vector<std::string> text(training_text().begin(), training_text().begin() + 4000);
  SentencePieceTrainOptions opt;
  opt.vocab_size = 800;
  const std::string a = train_sentencepiece(text, opt).serialized_model();
  const std::string b = train_sentencepiece(text, opt).serialized_model();
  EXPECT_EQ(a, b);
  opt.num_threads = 2;  // also deterministic for a fixed thread count
  EXPECT_EQ(train_sentencepiece(text, opt).serialized_model(), train_sentencepiece(text, opt).serialized_model());
  opt.num_threads = 1;
  text.pop_back();  // a different input gives a different model (so the check above can fail)
  EXPECT_NE(train_sentencepiece(text, opt).serialized_model(), a);
}

TEST(SentencePieceTrain, Errors) {
  expect_error_mentioning([] { train_sentencepiece({}, small_options()); }, "no non-empty sentences");
  expect_error_mentioning([] { train_sentencepiece({"", "   "}, small_options()); }, "no non-empty sentences");
  // Far more pieces than a few words can give: libsentencepiece's status becomes a TokenizerError.
  EXPECT_THROW(train_sentencepiece({"a tiny corpus", "of two lines"}, small_options()), TokenizerError);
  SentencePieceTrainOptions soft = small_options();
  soft.hard_vocab_limit = false;
  const auto tok = train_sentencepiece({"a tiny corpus", "of two lines"}, soft);
  EXPECT_LT(tok.piece_count(), 2000u);
  EXPECT_EQ(tok.cls_id(), 1);
}

// ------------------------------------------------------------------------------------------------
// agreement with python3-sentencepiece

TEST(SentencePieceOracle, GlueDevIdsAndOffsetsMatchPythonSentencepiece) {
  std::vector<std::string> texts;
  for (const auto& [task, rel] : std::vector<std::pair<std::string, std::string>>{
           {"cola", "CoLA/dev.tsv"}, {"sst2", "SST-2/dev.tsv"}, {"mrpc", "MRPC/dev.tsv"}, {"stsb", "STS-B/dev.tsv"}}) {
    auto s = sentences_of(task, rel);
    texts.insert(texts.end(), s.begin(), s.end());
  }
  // Whitespace, case, NFKC and characters the model never saw (unknown pieces).
  for (const char* t : {"  Leading and   inner   spaces  ", "tab\tand\nnewline", "ＦＵＬＬＷＩＤＴＨ ﬁ ①", "café naïve",
                        "日本語 and 😀 emoji", "UPPER lower MiXeD", "$1,234.56 €99"})
    texts.push_back(t);
  ASSERT_GT(texts.size(), 5600u);
  const auto py = python_encode(trained_dir() + "/spm.model", texts);
  ASSERT_EQ(py.size(), texts.size());
  size_t diffs = 0, unknowns = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    const auto toks = trained().tokenize_with_offsets(texts[i]);
    bool same = toks.size() == py[i].size() && trained().tokenize_to_ids(texts[i]) == ids_of(py[i]);
    for (size_t k = 0; same && k < toks.size(); ++k) {
      same = toks[k].id == py[i][k].id && toks[k].text == py[i][k].piece && toks[k].start == py[i][k].begin &&
             toks[k].end == py[i][k].end;
      unknowns += toks[k].id == 3;
    }
    if (!same && ++diffs <= 5) ADD_FAILURE() << "differs from python3-sentencepiece: '" << texts[i] << "'";
  }
  EXPECT_EQ(diffs, 0u);
  EXPECT_GT(unknowns, 0u);  // the check covered unknown pieces too
}

TEST(SentencePieceOracle, SpecialTokensInTextAreSingleTokens) {
  const auto& tok = trained();
  const std::string text = "[CLS] Hello [MASK] world[SEP][PAD]x [UNK]";
  // Segments between the specials go to sentencepiece on their own.
  const auto py = python_encode(trained_dir() + "/spm.model", {" Hello ", " world", "x "});
  ASSERT_EQ(py.size(), 3u);
  Ids expected = {1};
  for (auto id : ids_of(py[0])) expected.push_back(id);
  expected.push_back(2000);
  for (auto id : ids_of(py[1])) expected.push_back(id);
  expected.push_back(2);
  expected.push_back(0);
  for (auto id : ids_of(py[2])) expected.push_back(id);
  expected.push_back(3);
  EXPECT_EQ(tok.tokenize_to_ids(text), expected);
  const auto toks = tok.tokenize_with_offsets(text);
  ASSERT_EQ(toks.size(), expected.size());
  EXPECT_EQ(toks.front().text, "[CLS]");
  EXPECT_EQ(std::make_pair(toks.front().start, toks.front().end), std::make_pair(size_t{0}, size_t{5}));
  const size_t mask_at = 1 + py[0].size();
  EXPECT_EQ(toks[mask_at].text, "[MASK]");
  EXPECT_EQ(std::make_pair(toks[mask_at].start, toks[mask_at].end), std::make_pair(size_t{12}, size_t{18}));
  // Not special: other case, broken brackets.
  for (const auto& t : tok.tokenize_with_offsets("[mask] [MASK"))
    EXPECT_NE(t.id, 2000);
}

// ------------------------------------------------------------------------------------------------
// encode

TEST(SentencePieceEncode, SingleAndPairWithDebertaTokenTypes) {
  const auto& tok = trained();
  const Ids a = tok.tokenize_to_ids("The cat sat.");
  const Ids b = tok.tokenize_to_ids("A dog ran away quickly.");
  ASSERT_GE(a.size(), 3u);
  ASSERT_GT(b.size(), a.size());
  const auto single = tok.encode("The cat sat.", nullptr, 0);
  Ids want = {1};
  want.insert(want.end(), a.begin(), a.end());
  want.push_back(2);
  EXPECT_EQ(single.input_ids, want);
  EXPECT_EQ(single.token_type_ids, Ids(want.size(), 0));
  EXPECT_EQ(single.attention_mask, Ids(want.size(), 1));
  const std::string bs = "A dog ran away quickly.";
  const auto pair = tok.encode("The cat sat.", &bs, 0);
  want.insert(want.end(), b.begin(), b.end());
  want.push_back(2);
  EXPECT_EQ(pair.input_ids, want);
  Ids types(a.size() + 2, 0);
  types.resize(want.size(), 1);  // b [SEP] are type 1
  EXPECT_EQ(pair.token_type_ids, types);
}

TEST(SentencePieceEncode, EncodeIdsIsEncodesLayout) {
  const auto& tok = trained();
  const std::string a = "The cat sat.";
  // [CLS] a [SEP] b [SEP]: b starts after a's ids and 2 specials.
  EXPECT_EQ(lorakit::text_testing::expect_encode_ids_is_encode(tok, a, "A dog ran away quickly."),
            tok.tokenize_to_ids(a).size() + 2);
  const Ids ia = {10, 11}, ib = {12};
  const auto e = tok.encode_ids(ia, &ib);
  EXPECT_EQ(e.input_ids, (Ids{1, 10, 11, 2, 12, 2}));
  EXPECT_EQ(e.token_type_ids, (Ids{0, 0, 0, 0, 1, 1}));
  EXPECT_EQ(e.b_begin, 4u);
}

TEST(SentencePieceEncode, LongestFirstTruncation) {
  const auto& tok = trained();
  const std::string bs = "A dog ran away quickly.";
  const Ids a = tok.tokenize_to_ids("The cat sat."), b = tok.tokenize_to_ids(bs);
  const size_t la = a.size(), lb = b.size();
  ASSERT_GT(lb, la);
  // Remove lb - la + 3 tokens: b shrinks to la, then b (tie), then a, then b.
  const size_t max_length = la + lb + 3 - (lb - la + 3);
  const auto enc = tok.encode("The cat sat.", &bs, max_length);
  ASSERT_EQ(enc.input_ids.size(), max_length);
  Ids want = {1};
  want.insert(want.end(), a.begin(), a.begin() + static_cast<long>(la - 1));
  want.push_back(2);
  want.insert(want.end(), b.begin(), b.begin() + static_cast<long>(la - 2));
  want.push_back(2);
  EXPECT_EQ(enc.input_ids, want);
  EXPECT_EQ(enc.token_type_ids, [&] { Ids t(la + 1, 0); t.resize(want.size(), 1); return t; }());
  EXPECT_EQ(tok.encode("The cat sat.", nullptr, 3).input_ids, (Ids{1, a[0], 2}));
  EXPECT_EQ(tok.encode("The cat sat.", &bs, 3).input_ids, (Ids{1, 2, 2}));
  EXPECT_THROW(tok.encode("x", nullptr, 1), TokenizerError);
  EXPECT_THROW(tok.encode("x", &bs, 2), TokenizerError);
}

// ------------------------------------------------------------------------------------------------
// files

TEST(SentencePieceFiles, SaveAndLoadRoundTrip) {
  const std::string& dir = trained_dir();
  EXPECT_EQ(read_file(dir + "/spm.model"), trained().serialized_model());
  const json cfg = json::parse(read_file(dir + "/tokenizer_config.json"));
  EXPECT_EQ(cfg.at("tokenizer_class"), "DebertaV2Tokenizer");
  EXPECT_EQ(cfg.at("do_lower_case"), false);
  EXPECT_EQ(json::parse(read_file(dir + "/special_tokens_map.json")).at("mask_token"), "[MASK]");
  EXPECT_EQ(json::parse(read_file(dir + "/added_tokens.json")), json::parse(R"({"[MASK]": 2000})"));
  auto loaded = lorakit::text::load_tokenizer(dir);
  auto* sp = dynamic_cast<SentencePieceTokenizer*>(loaded.get());
  ASSERT_NE(sp, nullptr);
  EXPECT_EQ(sp->mask_id(), 2000);
  EXPECT_EQ(sp->vocab_size(), 2001u);
  for (const char* t : {"Hello [MASK] world.", "The quick brown fox."})
    EXPECT_EQ(sp->encode(t, nullptr, 0).input_ids, trained().encode(t, nullptr, 0).input_ids);
}

TEST(SentencePieceFiles, AddedTokensAndConfigLikeDebertaV3) {
  TempDir dir;
  fs::copy_file(trained_dir() + "/spm.model", dir.file("spm.model"));
  // deberta-v3's added_tokens.json puts [MASK] right after the vocabulary; a gap must be honoured.
  write_file(dir.file("added_tokens.json"), R"({"[MASK]": 2007})");
  auto tok = SentencePieceTokenizer::from_model_dir(dir.str());
  EXPECT_EQ(tok.mask_id(), 2007);
  EXPECT_EQ(tok.vocab_size(), 2008u);
  EXPECT_EQ(tok.tokenize_to_ids("[MASK]"), (Ids{2007}));
  // tokenizer_config.json's added_tokens_decoder and do_lower_case.
  fs::remove(dir.file("added_tokens.json"));
  write_file(dir.file("tokenizer_config.json"), R"({"do_lower_case": true, "added_tokens_decoder": {
      "0": {"content": "[PAD]", "special": true}, "2000": {"content": "[MASK]", "special": true},
      "2001": {"content": "<ent>", "special": true}}})");
  tok = SentencePieceTokenizer::from_model_dir(dir.str());
  EXPECT_EQ(tok.mask_id(), 2000);
  EXPECT_EQ(tok.vocab_size(), 2002u);
  EXPECT_TRUE(tok.options().do_lower_case);
  EXPECT_EQ(tok.tokenize_to_ids("HELLO World<ent>"), [&] {
    Ids ids = trained().tokenize_to_ids("hello world");
    ids.push_back(2001);
    return ids;
  }());
  // load_tokenizer: spm.model is picked when there is no tokenizer.json / vocab files.
  EXPECT_NE(dynamic_cast<SentencePieceTokenizer*>(lorakit::text::load_tokenizer(dir.str()).get()), nullptr);
  // An added token claiming a piece's id is an error.
  write_file(dir.file("tokenizer_config.json"), R"({"added_tokens_decoder": {"5": {"content": "<ent>"}}})");
  expect_error_mentioning([&] { SentencePieceTokenizer::from_model_dir(dir.str()); }, "<ent>");
}

TEST(SentencePieceFiles, UnigramTokenizerJsonWithSpmModelUsesSpm) {
  TempDir dir;
  fs::copy_file(trained_dir() + "/spm.model", dir.file("spm.model"));
  write_file(dir.file("tokenizer.json"), R"({"model": {"type": "Unigram", "vocab": [["[PAD]", 0.0]]}})");
  EXPECT_NE(dynamic_cast<SentencePieceTokenizer*>(lorakit::text::load_tokenizer(dir.str()).get()), nullptr);
  fs::remove(dir.file("spm.model"));
  expect_error_mentioning([&] { lorakit::text::load_tokenizer(dir.str()); }, "spm.model");
}

TEST(SentencePieceFiles, MissingTruncatedOrGarbageModelsAreTokenizerErrors) {
  TempDir dir;
  const std::string p = dir.file("spm.model");
  expect_error_mentioning([&] { SentencePieceTokenizer::from_model_file(p); }, p);  // missing
  write_file(p, "");
  expect_error_mentioning([&] { SentencePieceTokenizer::from_model_file(p); }, p);
  write_file(p, "this is not a sentencepiece model\n");
  expect_error_mentioning([&] { SentencePieceTokenizer::from_model_file(p); }, p);
  std::string garbage;
  uint32_t x = 7;
  for (int i = 0; i < 5000; ++i) {
    x = x * 1103515245u + 12345u;
    garbage.push_back(static_cast<char>(x >> 24));
  }
  write_file(p, garbage);
  expect_error_mentioning([&] { SentencePieceTokenizer::from_model_file(p); }, p);
  // Well-formed protobuf that libsentencepiece refuses (a piece, an empty normalizer, no unk).
  write_file(p, std::string("\x0a\x03\x0a\x01" "a" "\x1a\x00", 7));
  expect_error_mentioning([&] { SentencePieceTokenizer::from_model_file(p); }, p);
  // Truncations anywhere (including piece boundaries) are caught.
  const std::string model = trained().serialized_model();
  std::vector<size_t> cuts = {1, 2, 3, 10, 50, 100, model.size() / 2, model.size() - 2, model.size() - 1};
  for (size_t c = 7; c < model.size(); c += 1009) cuts.push_back(c);
  for (size_t c : cuts) {
    write_file(p, model.substr(0, c));
    expect_error_mentioning([&] { SentencePieceTokenizer::from_model_file(p); }, p);
  }
  write_file(p, model);
  EXPECT_EQ(SentencePieceTokenizer::from_model_file(p).piece_count(), 2000u);
  // A model without the required special pieces names the missing token.
  SentencePieceTokenizer::Options opt;
  opt.cls_token = "<cls>";
  expect_error_mentioning([&] { SentencePieceTokenizer::from_model_file(p, opt); }, "'<cls>'");
}

TEST(SentencePieceTokenize, InvalidUtf8NeverThrows) {
  const auto& tok = trained();
  EXPECT_EQ(tok.tokenize_to_ids("a\xFF" "b"), tok.tokenize_to_ids("a\xEF\xBF\xBD" "b"));
  EXPECT_NO_THROW(tok.tokenize_with_offsets("\xC0\xAF\xE2\x82"));
  EXPECT_TRUE(tok.tokenize_to_ids("").empty());
  EXPECT_EQ(tok.encode("", nullptr, 0).input_ids, (Ids{1, 2}));
}
