// SQuAD v1.1 features (document-stride windows, run_qa.py labels) and n-best span decoding: the
// window invariants and labels over the whole real dev file with bert-base-uncased and roberta-base,
// hand-built examples (non-ASCII contexts, question handling), constructed logits for the decoder,
// and the error cases.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <map>
#include <string>
#include <vector>

#include "support/text_files.h"
#include "tasks/squad/decode.h"
#include "tasks/squad/features.h"
#include "tasks/squad/squad.h"
#include "text/bpe_tokenizer.h"
#include "text/tokenizer.h"
#include "text/unicode.h"

using namespace lorakit::data;
using lorakit::text::BertTokenizer;
using lorakit::text::BpeTokenizer;
using lorakit::text::Token;
using lorakit::text::Tokenizer;
using Ids = std::vector<int64_t>;
using Span = std::pair<int64_t, int64_t>;

namespace {

std::string shared(const std::string& rel) { return std::string(LORAKIT_SHARED_DIR) + "/data/" + rel; }

const BertTokenizer& bert() {
  static const BertTokenizer tok = BertTokenizer::from_vocab_file(shared("vocab/bert-base-uncased-vocab.txt"));
  return tok;
}
const BpeTokenizer& roberta() {
  static const BpeTokenizer tok =
      BpeTokenizer::from_files(shared("vocab/roberta-base/vocab.json"), shared("vocab/roberta-base/merges.txt"));
  return tok;
}
const SquadDataset& dev() {
  static const SquadDataset d = read_squad_file(shared("squad/dev-v1.1.json"));
  return d;
}

size_t cp_len(const std::string& s) { return lorakit::text::unicode::decode_utf8(s).size(); }
std::string cp_substr(const std::string& s, size_t a, size_t b) {
  const std::u32string c = lorakit::text::unicode::decode_utf8(s);
  return lorakit::text::unicode::encode_utf8(c.substr(a, b - a));
}
Ids ids_of(const std::vector<Token>& t) {
  Ids out;
  for (const auto& x : t) out.push_back(x.id);
  return out;
}

// One article, one paragraph, the given (id, question, answer text) triples; answer_start is where
// the answer text first occurs in the context, in code points.
SquadDataset one_paragraph(const std::string& context,
                           const std::vector<std::array<std::string, 3>>& questions) {
  SquadDataset d;
  d.version = "1.1";
  SquadParagraph p;
  p.context = context;
  for (const auto& [id, q, answer] : questions) {
    const size_t byte = context.find(answer);
    EXPECT_NE(byte, std::string::npos) << answer;
    p.qas.push_back(SquadQuestion{id, q, {SquadAnswer{answer, cp_len(context.substr(0, byte))}}});
  }
  d.articles.push_back(SquadArticle{"t", {p}});
  return d;
}

// The index of the feature token with offsets `span`, or -1.
int64_t token_at(const SquadFeature& f, Span span) {
  auto it = std::find(f.offsets.begin(), f.offsets.end(), span);
  return it == f.offsets.end() ? -1 : static_cast<int64_t>(it - f.offsets.begin());
}
int64_t token_starting(const SquadFeature& f, int64_t start) {
  for (size_t i = 0; i < f.offsets.size(); ++i)
    if (f.offsets[i].first == start) return static_cast<int64_t>(i);
  return -1;
}
int64_t token_ending(const SquadFeature& f, int64_t end) {
  for (size_t i = f.offsets.size(); i-- > 0;)
    if (f.offsets[i].second == end) return static_cast<int64_t>(i);
  return -1;
}

// Checks every window invariant and label of make_squad_features(dev, tok, opt), recomputing the
// expected layout from the tokenizer; returns the fraction of labelled windows whose cut text,
// normalised, contains the normalised gold answer.
double check_dev_features(const Tokenizer& tok, const SquadFeatureOptions& opt) {
  const SquadDataset& d = dev();
  const std::vector<SquadExampleRef> refs = squad_examples(d);
  EXPECT_EQ(refs.size(), d.num_questions());
  const std::vector<SquadFeature> feats = make_squad_features(d, tok, opt);
  size_t fi = 0, labelled = 0, contained = 0, multi = 0, missed = 0;
  std::vector<Token> ctx;
  const SquadParagraph* last_para = nullptr;
  for (size_t ex = 0; ex < refs.size(); ++ex) {
    const SquadParagraph& para = d.articles[refs[ex].article].paragraphs[refs[ex].paragraph];
    const SquadQuestion& qa = para.qas[refs[ex].question];
    if (&para != last_para) ctx = tok.tokenize_with_offsets(para.context), last_para = &para;
    const Ids ctx_ids = ids_of(ctx);
    std::string q = qa.question;
    q.erase(0, q.find_first_not_of(" \t\n"));
    Ids q_ids = ids_of(tok.tokenize_with_offsets(q));
    if (q_ids.size() > opt.max_query_len) q_ids.resize(opt.max_query_len);
    const size_t s_char = qa.answers[0].answer_start, e_char = s_char + cp_len(qa.answers[0].text);
    std::vector<bool> covered(ctx.size(), false);
    bool found_answer = false;
    size_t pos = 0, windows = 0;  // the current window's first context token
    for (; fi < feats.size() && feats[fi].example == ex; ++fi, ++windows) {
      const SquadFeature& f = feats[fi];
      const size_t n = f.input_ids.size();
      EXPECT_LE(n, opt.max_seq_len);
      EXPECT_EQ(f.token_type_ids.size(), n);
      EXPECT_EQ(f.offsets.size(), n);
      size_t len = 0;
      for (const auto& o : f.offsets) len += o.first >= 0;
      EXPECT_GT(len, 0u);
      if (pos + len > ctx.size()) {
        ADD_FAILURE() << qa.id << ": window " << windows << " runs past the context";
        break;
      }
      // The whole feature is the tokenizer's pair layout of the question and ctx[pos, pos + len).
      const Ids part(ctx_ids.begin() + static_cast<long>(pos), ctx_ids.begin() + static_cast<long>(pos + len));
      const auto want = tok.encode_ids(q_ids, &part);
      EXPECT_EQ(f.input_ids, want.input_ids) << qa.id << " window " << windows;
      EXPECT_EQ(f.token_type_ids, want.token_type_ids) << qa.id;
      for (size_t k = 0; k < n; ++k) {
        const bool in_ctx = k >= want.b_begin && k < want.b_begin + len;
        const Span o = in_ctx ? Span(ctx[pos + k - want.b_begin].start, ctx[pos + k - want.b_begin].end) : Span(-1, -1);
        if (f.offsets[k] != o) {
          ADD_FAILURE() << qa.id << " window " << windows << " token " << k;
          break;
        }
      }
      for (size_t k = pos; k < pos + len; ++k) covered[k] = true;
      const bool last = pos + len == ctx.size();
      if (!last) EXPECT_EQ(n, opt.max_seq_len) << qa.id << ": a window before the last one is full";
      // Labels.
      const bool inside = ctx[pos].start <= s_char && ctx[pos + len - 1].end >= e_char;
      if (!inside) {
        EXPECT_EQ(f.start_position, 0) << qa.id;
        EXPECT_EQ(f.end_position, 0) << qa.id;
      } else {
        found_answer = true;
        ++labelled;
        const auto s = static_cast<size_t>(f.start_position), e = static_cast<size_t>(f.end_position);
        const size_t c0 = want.b_begin, c1 = want.b_begin + len;  // context positions [c0, c1)
        if (!(c0 <= s && s <= e && e < c1)) {
          ADD_FAILURE() << qa.id << ": labels " << s << ", " << e << " outside the context " << c0 << ".." << c1;
        } else {
          // The labelled tokens cover the answer's characters, widened by at most a token each side.
          EXPECT_LE(f.offsets[s].first, static_cast<int64_t>(s_char)) << qa.id;
          EXPECT_GE(f.offsets[e].second, static_cast<int64_t>(e_char)) << qa.id;
          if (s + 1 < c1) EXPECT_GT(f.offsets[s + 1].first, static_cast<int64_t>(s_char)) << qa.id;
          if (e > c0) EXPECT_LT(f.offsets[e - 1].second, static_cast<int64_t>(e_char)) << qa.id;
          const std::string cut = cp_substr(para.context, static_cast<size_t>(f.offsets[s].first),
                                            static_cast<size_t>(f.offsets[e].second));
          contained += squad_normalize_answer(cut).find(squad_normalize_answer(qa.answers[0].text)) != std::string::npos;
        }
      }
      if (last) {
        ++fi, ++windows;
        break;
      }
      // The next window starts doc_stride tokens before this one's end.
      pos += len - opt.doc_stride;
    }
    EXPECT_GE(windows, 1u) << qa.id;
    EXPECT_EQ(std::count(covered.begin(), covered.end(), false), 0) << qa.id << ": context tokens in no window";
    multi += windows > 1;
    // An answer within at most doc_stride + 1 tokens always lies whole in some window.
    size_t answer_tokens = 0;
    for (const auto& t : ctx) answer_tokens += t.start < e_char && t.end > s_char;
    if (!found_answer && answer_tokens <= opt.doc_stride + 1) ++missed;
  }
  EXPECT_EQ(fi, feats.size()) << "features out of example order or past the last example";
  EXPECT_GT(multi, 1000u) << "too few paragraphs longer than one window to test the stride";
  EXPECT_LE(missed, refs.size() / 1000) << "answers of a few tokens found in no window";
  return labelled ? static_cast<double>(contained) / static_cast<double>(labelled) : 0.0;
}

}  // namespace

TEST(SquadFeatures, ExamplesAreFlattenedInFileOrder) {
  const auto refs = squad_examples(dev());
  ASSERT_EQ(refs.size(), 10570u);
  EXPECT_EQ(refs.front().article, 0u);
  EXPECT_EQ(refs.front().paragraph, 0u);
  EXPECT_EQ(refs.front().question, 0u);
  const auto& b = refs.back();
  EXPECT_EQ(b.article, dev().articles.size() - 1);
  EXPECT_EQ(b.paragraph, dev().articles.back().paragraphs.size() - 1);
  EXPECT_EQ(b.question, dev().articles.back().paragraphs.back().qas.size() - 1);
}

TEST(SquadFeatures, DevWindowsAndLabelsBert) {
  SquadFeatureOptions opt;
  opt.max_seq_len = 128;
  opt.doc_stride = 32;
  const double contained = check_dev_features(bert(), opt);
  EXPECT_GT(contained, 0.995);
}

TEST(SquadFeatures, DevWindowsAndLabelsRoberta) {
  SquadFeatureOptions opt;
  opt.max_seq_len = 128;
  opt.doc_stride = 32;
  const double contained = check_dev_features(roberta(), opt);
  EXPECT_GT(contained, 0.995);
}

TEST(SquadFeatures, QuestionIsLeftStrippedAndCutToMaxQueryLen) {
  const std::string context = "The quick brown fox jumps over the lazy dog.";
  const auto d = one_paragraph(context, {{"q1", " \t  what animal jumps over the lazy dog here", "fox"}});
  SquadFeatureOptions opt;
  opt.max_seq_len = 64;
  opt.doc_stride = 16;
  opt.max_query_len = 4;
  const auto feats = make_squad_features(d, bert(), opt);
  ASSERT_EQ(feats.size(), 1u);
  const auto& f = feats[0];
  const Ids ctx = bert().tokenize_to_ids(context);
  Ids want = {101, bert().token_to_id("what"), bert().token_to_id("animal"), bert().token_to_id("jumps"),
              bert().token_to_id("over"), 102};
  const size_t c0 = want.size();
  want.insert(want.end(), ctx.begin(), ctx.end());
  want.push_back(102);
  EXPECT_EQ(f.input_ids, want);
  Ids types(c0, 0);
  types.resize(want.size(), 1);
  EXPECT_EQ(f.token_type_ids, types);
  EXPECT_EQ(f.offsets[c0 - 1], Span(-1, -1));
  EXPECT_EQ(f.offsets[c0], Span(0, 3));  // "The"
  EXPECT_EQ(f.offsets.back(), Span(-1, -1));
  // "fox" is code points [16, 19).
  EXPECT_EQ(f.start_position, token_at(f, {16, 19}));
  EXPECT_EQ(f.end_position, f.start_position);
  EXPECT_GT(f.start_position, 0);
}

TEST(SquadFeatures, NonAsciiContextLabelsAreCodePoints) {
  // Code points: "Zürich ist die " is 15, "größte Stadt" [15, 27); in bytes "größte" starts at 16.
  const std::string context = "Z\u00fcrich ist die gr\u00f6\u00dfte Stadt der Schweiz.";
  const auto d = one_paragraph(context, {{"q", "Was ist Z\u00fcrich?", "gr\u00f6\u00dfte Stadt"}});
  ASSERT_EQ(d.articles[0].paragraphs[0].qas[0].answers[0].answer_start, 15u);
  for (const Tokenizer* tok : {static_cast<const Tokenizer*>(&bert()), static_cast<const Tokenizer*>(&roberta())}) {
    const auto feats = make_squad_features(d, *tok, SquadFeatureOptions{});
    ASSERT_EQ(feats.size(), 1u);
    const auto& f = feats[0];
    ASSERT_GT(f.start_position, 0);
    EXPECT_EQ(f.offsets[static_cast<size_t>(f.start_position)].first, 15);
    EXPECT_EQ(f.offsets[static_cast<size_t>(f.end_position)].second, 27);
  }
}

TEST(SquadFeatures, AnswerOnlyInLaterWindowsIsZeroElsewhere) {
  std::string context;
  for (int i = 0; i < 40; ++i) context += "word" + std::to_string(i) + " filler. ";
  context += "The treasure is buried under the old oak.";
  const auto d = one_paragraph(context, {{"q", "Where is the treasure?", "under the old oak"}});
  SquadFeatureOptions opt;
  opt.max_seq_len = 40;
  opt.doc_stride = 8;
  const auto feats = make_squad_features(d, bert(), opt);
  ASSERT_GT(feats.size(), 3u);
  for (size_t i = 0; i + 1 < feats.size(); ++i) {
    if (token_starting(feats[i], static_cast<int64_t>(context.find("under"))) < 0) {
      EXPECT_EQ(feats[i].start_position, 0) << i;
      EXPECT_EQ(feats[i].end_position, 0) << i;
    }
  }
  const auto& f = feats.back();  // ASCII context: byte index = code-point index
  EXPECT_EQ(f.start_position, token_starting(f, static_cast<int64_t>(context.find("under"))));
  EXPECT_EQ(f.end_position, token_ending(f, static_cast<int64_t>(context.find("oak") + 3)));
}

TEST(SquadFeatures, DocStrideMustBeSmallerThanTheWindow) {
  const auto d = one_paragraph("A short context.", {{"q", "one two three four", "short"}});
  SquadFeatureOptions opt;
  opt.max_seq_len = 16;  // 16 - 4 question tokens - 3 specials = 9 context tokens per window
  opt.doc_stride = 9;
  try {
    make_squad_features(d, bert(), opt);
    ADD_FAILURE() << "no error";
  } catch (const lorakit::Error& e) {
    const std::string m = e.what();
    for (const char* needle : {"--doc-stride 9", "--max-seq-len 16", "9 context tokens"})
      EXPECT_NE(m.find(needle), std::string::npos) << m;
  }
  opt.doc_stride = 8;
  EXPECT_EQ(make_squad_features(d, bert(), opt).size(), 1u);
  opt.max_seq_len = 7;  // no room for the context at all
  opt.doc_stride = 0;
  EXPECT_THROW(make_squad_features(d, bert(), opt), lorakit::Error);
}

// ------------------------------------------------------------------------------------------------
// decoding

namespace {

const std::string kZurich = "Z\u00fcrich ist die gr\u00f6\u00dfte Stadt der Schweiz.";

struct Logits {
  std::vector<std::vector<float>> start, end;
  explicit Logits(const std::vector<SquadFeature>& feats) {
    for (const auto& f : feats) {
      start.emplace_back(f.input_ids.size(), 0.0f);
      end.emplace_back(f.input_ids.size(), 0.0f);
    }
  }
};

std::string decode_one(const SquadDataset& d, const std::vector<SquadFeature>& feats, const Logits& l,
                       SquadDecodeOptions opt = {}) {
  const auto preds = decode_squad_predictions(d, feats, l.start, l.end, opt);
  EXPECT_EQ(preds.size(), 1u);
  return preds.begin()->second;
}

}  // namespace

TEST(SquadDecode, SkipsEndBeforeStart) {
  const auto d = one_paragraph(kZurich, {{"q", "Was?", "Stadt"}});
  const auto feats = make_squad_features(d, bert(), SquadFeatureOptions{});
  ASSERT_EQ(feats.size(), 1u);
  const auto& f = feats[0];
  const int64_t s = token_starting(f, 15), e = token_ending(f, 27), after = token_starting(f, 28);  // "der"
  ASSERT_TRUE(s > 0 && e >= s && after > e);
  Logits l(feats);
  l.start[0][static_cast<size_t>(after)] = 10;  // best pair (after, e) has end < start
  l.start[0][static_cast<size_t>(s)] = 5;
  l.end[0][static_cast<size_t>(e)] = 10;
  EXPECT_EQ(decode_one(d, feats, l), "gr\u00f6\u00dfte Stadt");
}

TEST(SquadDecode, SkipsSpansLongerThanMaxAnswerLen) {
  const auto d = one_paragraph(kZurich, {{"q", "Was?", "Stadt"}});
  const auto feats = make_squad_features(d, bert(), SquadFeatureOptions{});
  const auto& f = feats[0];
  // "der Schweiz" [28, 39) and "Stadt der Schweiz" [22, 39).
  const int64_t s = token_starting(f, 28), e = token_ending(f, 39), stadt = token_starting(f, 22);
  ASSERT_TRUE(stadt > 0 && s > stadt && e >= s);
  Logits l(feats);
  l.start[0][static_cast<size_t>(stadt)] = 10;
  l.start[0][static_cast<size_t>(s)] = 5;
  l.end[0][static_cast<size_t>(e)] = 10;
  SquadDecodeOptions opt;
  opt.max_answer_len = static_cast<size_t>(e - s + 1);  // "der Schweiz" fits, the longer span does not
  EXPECT_EQ(decode_one(d, feats, l, opt), "der Schweiz");
  opt.max_answer_len = static_cast<size_t>(e - stadt);
  EXPECT_EQ(decode_one(d, feats, l, opt), "der Schweiz");
  opt.max_answer_len = static_cast<size_t>(e - stadt + 1);
  EXPECT_EQ(decode_one(d, feats, l, opt), "Stadt der Schweiz");
}

TEST(SquadDecode, SkipsQuestionAndSpecialTokens) {
  const auto d = one_paragraph(kZurich, {{"q", "Was ist die Stadt?", "Z\u00fcrich"}});
  const auto feats = make_squad_features(d, bert(), SquadFeatureOptions{});
  const auto& f = feats[0];
  const int64_t s = token_starting(f, 0), e = token_ending(f, 6);  // "Zürich"
  ASSERT_TRUE(s > 2 && e >= s);
  Logits l(feats);
  l.start[0][0] = l.end[0][0] = 20;  // [CLS]
  l.start[0][1] = l.end[0][2] = 10;  // question tokens
  l.start[0][static_cast<size_t>(s)] = l.end[0][static_cast<size_t>(e)] = 4;
  EXPECT_EQ(decode_one(d, feats, l), "Z\u00fcrich");
  // With n_best 1 only the [CLS] pair is tried: no valid span.
  SquadDecodeOptions one;
  one.n_best = 1;
  EXPECT_EQ(decode_one(d, feats, l, one), "");
}

TEST(SquadDecode, BestSpanAcrossWindowsOfOneExample) {
  std::string context = "Z\u00fcrich ist gro\u00df.";
  for (int i = 0; i < 30; ++i) context += " Satz " + std::to_string(i) + ".";
  context += " Gen\u00e8ve est belle.";
  const std::string other = "Kein Inhalt hier.";
  SquadDataset d = one_paragraph(context, {{"a", "Welche Stadt?", "Gen\u00e8ve"}});
  d.articles.push_back(one_paragraph(other, {{"b", "Nichts?", "Inhalt"}}).articles[0]);
  SquadFeatureOptions opt;
  opt.max_seq_len = 32;
  opt.doc_stride = 8;
  const auto feats = make_squad_features(d, bert(), opt);
  ASSERT_GT(feats.size(), 3u);
  const size_t last = feats.size() - 2;  // example "a"'s last window; feats.back() is "b"
  ASSERT_EQ(feats[last].example, 0u);
  ASSERT_EQ(feats.back().example, 1u);
  const int64_t cp_geneve = static_cast<int64_t>(cp_len(context.substr(0, context.find("Gen"))));
  const int64_t z0 = token_starting(feats[0], 0), z1 = token_ending(feats[0], 6);
  const int64_t g0 = token_starting(feats[last], cp_geneve), g1 = token_ending(feats[last], cp_geneve + 6);
  ASSERT_TRUE(z0 > 0 && z1 >= z0 && g0 > 0 && g1 >= g0);
  ASSERT_LT(token_starting(feats[last], 0), 0);  // "Zürich" is not in the last window
  Logits l(feats);
  l.start[0][static_cast<size_t>(z0)] = l.end[0][static_cast<size_t>(z1)] = 3;
  l.start[last][static_cast<size_t>(g0)] = l.end[last][static_cast<size_t>(g1)] = 4;
  auto preds = decode_squad_predictions(d, feats, l.start, l.end, SquadDecodeOptions{});
  ASSERT_EQ(preds.size(), 2u);
  EXPECT_EQ(preds["a"], "Gen\u00e8ve");
  l.start[0][static_cast<size_t>(z0)] = 5;
  preds = decode_squad_predictions(d, feats, l.start, l.end, SquadDecodeOptions{});
  EXPECT_EQ(preds["a"], "Z\u00fcrich");
  EXPECT_TRUE(preds.count("b"));
}

TEST(SquadDecode, OracleLogitsRecoverTheDevAnswers) {
  SquadFeatureOptions opt;
  opt.max_seq_len = 192;
  opt.doc_stride = 64;
  const auto feats = make_squad_features(dev(), bert(), opt);
  Logits l(feats);
  for (size_t i = 0; i < feats.size(); ++i) {
    if (feats[i].start_position == 0) continue;
    l.start[i][static_cast<size_t>(feats[i].start_position)] = 1;
    l.end[i][static_cast<size_t>(feats[i].end_position)] = 1;
  }
  const auto preds = decode_squad_predictions(dev(), feats, l.start, l.end, SquadDecodeOptions{});
  EXPECT_EQ(preds.size(), dev().num_questions());
  const SquadScores s = squad_evaluate(dev(), preds);
  // Whole-token spans of the first gold answer: nearly always an exact match after normalisation.
  EXPECT_GT(s.exact_match, 98.0);
  EXPECT_GT(s.f1, 98.5);
}

TEST(SquadDecode, SizeMismatchesAreErrors) {
  const auto d = one_paragraph(kZurich, {{"q", "Was?", "Stadt"}});
  const auto feats = make_squad_features(d, bert(), SquadFeatureOptions{});
  Logits l(feats);
  auto fewer = l.start;
  fewer.pop_back();
  EXPECT_THROW(decode_squad_predictions(d, feats, fewer, l.end, {}), lorakit::Error);
  EXPECT_THROW(decode_squad_predictions(d, feats, l.start, fewer, {}), lorakit::Error);
  auto shorter = l.end;
  shorter[0].pop_back();
  EXPECT_THROW(decode_squad_predictions(d, feats, l.start, shorter, {}), lorakit::Error);
  auto wrong = feats;
  wrong[0].example = 5;
  EXPECT_THROW(decode_squad_predictions(d, wrong, l.start, l.end, {}), lorakit::Error);
}
