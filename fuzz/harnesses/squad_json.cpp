// SQuAD v1.1 JSON: data::read_squad_file (src/tasks/squad/squad.h), then the official scoring of the
// first gold answer of every question (normalisation, EM, F1) and the by-article split.
#include <map>

#include "harness.h"
#include "tasks/squad/squad.h"
#include "text/unicode.h"

LORAKIT_FUZZ_TARGET(squad_json) {
  const auto& scratch = lorakit::fuzz::Scratch::get("squad_json");
  const std::string path = scratch.write("dev-v1.1.json", std::string(reinterpret_cast<const char*>(data), size));
  lorakit::fuzz::expect_clean(
      [&] {
        const auto d = lorakit::data::read_squad_file(path);
        std::map<std::string, std::string> predictions;
        for (const auto& a : d.articles)
          for (const auto& p : a.paragraphs) {
            const size_t chars = lorakit::text::unicode::decode_utf8(p.context).size();
            for (const auto& q : p.qas) {
              if (q.answers.empty()) lorakit::fuzz::fail("question '" + q.id + "' accepted without an answer");
              for (const auto& ans : q.answers)
                if (ans.answer_start > chars) lorakit::fuzz::fail("answer_start past the context accepted");
              predictions[q.id] = q.answers[0].text;
            }
          }
        const auto s = lorakit::data::squad_evaluate(d, predictions);
        if (!(s.exact_match >= 0 && s.exact_match <= 100 && s.f1 >= 0 && s.f1 <= 100))
          lorakit::fuzz::fail("scores out of range");
        if (d.articles.size() >= 2) (void)lorakit::data::split_by_article(d, 1);
      },
      path);
  return 0;
}
