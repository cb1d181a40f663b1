// SQuAD v1.1: reader (real dev file and broken ones), by-article split, and the official metrics —
// hand-computed cases and, over the real dev file, agreement with an independent Python scorer.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "support/text_files.h"
#include "tasks/squad/squad.h"

using namespace lorakit::data;
using lorakit::text_testing::TempDir;
using lorakit::text_testing::write_file;

namespace {

std::string dev_file() { return std::string(LORAKIT_SHARED_DIR) + "/data/squad/dev-v1.1.json"; }

// Writes `text` into `dir` and returns the file's path.
std::string put(const TempDir& dir, const std::string& name, const std::string& text) {
  write_file(dir.file(name), text);
  return dir.file(name);
}

std::string expect_error(const std::string& path) {
  try {
    read_squad_file(path);
  } catch (const SquadError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no error for " << path;
  return "";
}

}  // namespace

TEST(SquadMetrics, NormalisationAsTheOfficialScript) {
  EXPECT_EQ(squad_normalize_answer("The  Denver Broncos!"), "denver broncos");
  EXPECT_EQ(squad_normalize_answer("an apple, a pear and THE plum."), "apple pear and plum");
  // Articles only as whole words: "theory", "Anna", "a1" stay; '_' is punctuation, gone first.
  EXPECT_EQ(squad_normalize_answer("theory of Anna a1 the_x"), "theory of anna a1 thex");
  // Punctuation is removed before articles are looked for: "the-end" → "theend"; "a.b" → "ab".
  EXPECT_EQ(squad_normalize_answer("the-end a.b"), "theend ab");
  // Only ASCII punctuation goes; "–" (en dash) and "€" stay.
  EXPECT_EQ(squad_normalize_answer("24\u201310 \u20ac5"), "24\u201310 \u20ac5");
  EXPECT_EQ(squad_normalize_answer("\tSanta\nClara  "), "santa clara");
  EXPECT_EQ(squad_normalize_answer("The"), "");
}

TEST(SquadMetrics, ExactMatchAndF1ByHand) {
  EXPECT_TRUE(squad_exact_match("the Denver Broncos", "Denver Broncos."));
  EXPECT_FALSE(squad_exact_match("Denver", "Denver Broncos"));
  // pred {denver}, gold {denver, broncos}: P 1, R 1/2 → F1 2/3.
  EXPECT_NEAR(squad_f1("Denver", "Denver Broncos"), 2.0 / 3.0, 1e-12);
  // pred {carolina, panthers, and, broncos}, gold {denver, broncos}: same 1, P 1/4, R 1/2 → 1/3.
  EXPECT_NEAR(squad_f1("Carolina Panthers and Broncos", "Denver Broncos"), 1.0 / 3.0, 1e-12);
  // Tokens count as a multiset: pred {x, b, b} vs gold {b}: same 1, P 1/3, R 1 → 0.5.
  EXPECT_NEAR(squad_f1("x b b", "b"), 0.5, 1e-12);
  EXPECT_EQ(squad_f1("the", "a"), 0.0);              // both normalise to nothing: 0, as the script
  EXPECT_EQ(squad_f1("Santa Clara", "Levi's Stadium"), 0.0);
}

TEST(SquadMetrics, MaxOverGoldsAndUnansweredCountZero) {
  SquadDataset d;
  d.articles.resize(1);
  d.articles[0].paragraphs.resize(1);
  auto& qas = d.articles[0].paragraphs[0].qas;
  qas.push_back({"q1", "?", {{"Denver Broncos", 0}, {"the Broncos", 0}, {"Broncos", 0}}});
  qas.push_back({"q2", "?", {{"February 7, 2016", 0}}});
  qas.push_back({"q3", "?", {{"Santa Clara", 0}}});
  // q1: "Broncos" matches the third gold exactly (EM 1, F1 1); q2: "February 7" → P 1, R 2/3 → F1 0.8;
  // q3 unanswered → 0. EM = 100/3, F1 = (1 + 0.8 + 0) / 3 · 100.
  SquadScores s = squad_evaluate(d, {{"q1", "Broncos"}, {"q2", "February 7"}});
  EXPECT_EQ(s.total, 3u);
  EXPECT_EQ(s.answered, 2u);
  EXPECT_NEAR(s.exact_match, 100.0 / 3.0, 1e-9);
  EXPECT_NEAR(s.f1, 180.0 / 3.0, 1e-9);
}

TEST(SquadReader, RealDevFileAndTheArticleSplit) {
  SquadDataset d = read_squad_file(dev_file());
  EXPECT_EQ(d.version, "1.1");
  EXPECT_EQ(d.articles.size(), 48u);
  EXPECT_EQ(d.num_questions(), 10570u);
  EXPECT_EQ(d.articles[0].title, "Super_Bowl_50");
  // answer_start is a code-point index: every gold starts inside its context.
  const auto& p0 = d.articles[0].paragraphs[0];
  EXPECT_EQ(p0.qas[0].answers[0].text, "Denver Broncos");
  EXPECT_EQ(p0.context.substr(p0.qas[0].answers[0].answer_start, 14), "Denver Broncos");
  auto [train, eval] = split_by_article(d, 38);
  EXPECT_EQ(train.articles.size(), 38u);
  EXPECT_EQ(eval.articles.size(), 10u);
  EXPECT_EQ(train.num_questions() + eval.num_questions(), d.num_questions());
  std::set<std::string> titles;
  for (auto& a : train.articles) titles.insert(a.title);
  for (auto& a : eval.articles) EXPECT_FALSE(titles.count(a.title)) << a.title;  // no article on both sides
  EXPECT_THROW(split_by_article(d, 48), SquadError);
}

TEST(SquadReader, BrokenFilesNameTheFileAndTheJsonPath) {
  TempDir t;
  EXPECT_NE(expect_error(t.file("absent.json")).find("cannot open"), std::string::npos);
  EXPECT_NE(expect_error(put(t, "trunc.json", "{\"data\": [{\"title\": \"x\", \"paragraphs\": [")).find("not valid JSON"),
            std::string::npos);
  std::string e = expect_error(put(t, "nodata.json", "{\"version\": \"1.1\"}"));
  EXPECT_NE(e.find("nodata.json"), std::string::npos) << e;
  EXPECT_NE(e.find("missing key 'data'"), std::string::npos) << e;
  const std::string ok_q = R"({"id": "q1", "question": "Who?", "answers": [{"text": "Bob", "answer_start": 0}]})";
  auto file = [&](const std::string& qa) {
    return R"({"version": "1.1", "data": [{"title": "T", "paragraphs": [{"context": "Bob ran.", "qas": [)" + ok_q + "," +
           qa + "]}]}]}";
  };
  e = expect_error(put(t, "past.json", file(R"({"id": "q2", "question": "?", "answers": [{"text": "ran.", "answer_start": 6}]})")));
  EXPECT_NE(e.find("data[0].paragraphs[0].qas[1].answers[0].answer_start: 6 + 4 characters is past the context's 8"),
            std::string::npos) << e;
  e = expect_error(put(t, "type.json", file(R"({"id": "q2", "question": "?", "answers": [{"text": "Bob", "answer_start": "0"}]})")));
  EXPECT_NE(e.find("qas[1].answers[0].answer_start: wrong type"), std::string::npos) << e;
  e = expect_error(put(t, "dup.json", file(ok_q)));
  EXPECT_NE(e.find("'q1' appears twice"), std::string::npos) << e;
  e = expect_error(put(t, "noans.json", file(R"({"id": "q2", "question": "?", "answers": []})")));
  EXPECT_NE(e.find("qas[1].answers: no answer"), std::string::npos) << e;
  e = expect_error(put(t, "bad-utf8.json", std::string("{\"data\": [\"\xff\"]}")));
  EXPECT_NE(e.find("not valid UTF-8"), std::string::npos) << e;
  // A code-point answer_start: "é" is one character, two bytes.
  SquadDataset d = read_squad_file(put(t, 
      "utf8.json", R"({"data": [{"title": "T", "paragraphs": [{"context": "café Bob", "qas": [{"id": "q", "question": "?", "answers": [{"text": "Bob", "answer_start": 5}]}]}]}]})"));
  EXPECT_EQ(d.num_questions(), 1u);
}

TEST(SquadMetrics, RealDevFileScoresEqualAnIndependentScorer) {
  SquadDataset d = read_squad_file(dev_file());
  // Predictions of every kind: a gold verbatim, a gold with an article and punctuation, a gold cut in
  // half, a wrong span from the context, none at all (every 7th question).
  std::map<std::string, std::string> preds;
  nlohmann::json pj = nlohmann::json::object();
  size_t k = 0;
  for (auto& a : d.articles)
    for (auto& p : a.paragraphs)
      for (auto& q : p.qas) {
        const std::string& g = q.answers.back().text;
        std::string pred;
        switch (k++ % 7) {
          case 0: pred = g; break;
          case 1: pred = "The " + g + "."; break;
          case 2: pred = g.substr(0, g.size() / 2); break;
          case 3: pred = p.context.substr(0, std::min<size_t>(p.context.size(), 40)); break;
          case 4: pred = q.answers.front().text + " and more"; break;
          case 5: pred = ""; break;
          default: continue;  // unanswered
        }
        preds[q.id] = pred;
        pj[q.id] = pred;
      }
  TempDir t;
  // A gold cut in half may split a UTF-8 sequence: both sides score the text as written to the file
  // (invalid bytes replaced by U+FFFD).
  const std::string pfile = put(t, "pred.json", pj.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  for (auto& [id, text] : preds) text = nlohmann::json::parse(pj[id].dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)).get<std::string>();
  SquadScores s = squad_evaluate(d, preds);
  const std::string cmd = "/usr/bin/python3 '" + std::string(LORAKIT_SOURCE_DIR) + "/tests/oracle/squad_eval_ref.py' '" +
                          dev_file() + "' '" + pfile + "' > '" + t.file("ref.json") + "'";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::ifstream in(t.file("ref.json"));
  nlohmann::json ref = nlohmann::json::parse(in);
  EXPECT_EQ(ref["total"].get<size_t>(), s.total);
  EXPECT_NEAR(ref["exact_match"].get<double>(), s.exact_match, 1e-9);
  EXPECT_NEAR(ref["f1"].get<double>(), s.f1, 1e-9);
  EXPECT_GT(s.exact_match, 20.0);
  EXPECT_LT(s.exact_match, 60.0);
}
