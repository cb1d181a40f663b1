#include "tasks/squad/squad.h"

#include <utf8proc.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <unordered_map>

#include "text/unicode.h"

namespace lorakit::data {
namespace unicode = lorakit::text::unicode;
namespace {
using json = nlohmann::json;

std::string read_all(const std::string& path) {
  std::ifstream is(path, std::ios::binary);
  if (!is) throw SquadError(path + ": cannot open");
  std::ostringstream ss;
  ss << is.rdbuf();
  return ss.str();
}

const json& member(const json& obj, const char* key, json::value_t type, const std::string& where,
                   const std::string& path) {
  if (!obj.is_object()) throw SquadError(path + ": " + where + ": expected an object");
  auto it = obj.find(key);
  if (it == obj.end()) throw SquadError(path + ": " + where + ": missing key '" + key + "'");
  const bool ok = type == json::value_t::number_unsigned ? it->is_number_integer() : it->type() == type;
  if (!ok) throw SquadError(path + ": " + where + "." + key + ": wrong type (" + it->dump().substr(0, 60) + ")");
  return *it;
}

bool is_word_char(char32_t c) {
  if (c == U'_') return true;
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT: case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
      return true;
    default:
      return false;
  }
}

bool is_ascii_punct(char32_t c) {
  return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126);
}

std::vector<std::string> tokens_of(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream is(squad_normalize_answer(s));  // normalised text is single-space separated
  for (std::string w; is >> w;) out.push_back(w);
  return out;
}

}  // namespace

size_t SquadDataset::num_questions() const {
  size_t n = 0;
  for (auto& a : articles)
    for (auto& p : a.paragraphs) n += p.qas.size();
  return n;
}

size_t SquadDataset::num_paragraphs() const {
  size_t n = 0;
  for (auto& a : articles) n += a.paragraphs.size();
  return n;
}

SquadDataset read_squad_file(const std::string& path) {
  const std::string text = read_all(path);
  if (!unicode::is_valid_utf8(text)) throw SquadError(path + ": not valid UTF-8");
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw SquadError(path + ": not valid JSON: " + e.what());
  }
  SquadDataset d;
  if (!j.is_object()) throw SquadError(path + ": expected a JSON object with 'data'");
  if (j.contains("version") && j["version"].is_string()) d.version = j["version"].get<std::string>();
  const json& data = member(j, "data", json::value_t::array, "(top level)", path);
  std::set<std::string> ids;
  for (size_t ai = 0; ai < data.size(); ++ai) {
    const std::string wa = "data[" + std::to_string(ai) + "]";
    SquadArticle art;
    art.title = data[ai].is_object() && data[ai].contains("title") && data[ai]["title"].is_string()
                    ? data[ai]["title"].get<std::string>()
                    : "";
    const json& paras = member(data[ai], "paragraphs", json::value_t::array, wa, path);
    for (size_t pi = 0; pi < paras.size(); ++pi) {
      const std::string wp = wa + ".paragraphs[" + std::to_string(pi) + "]";
      SquadParagraph par;
      par.context = member(paras[pi], "context", json::value_t::string, wp, path).get<std::string>();
      const size_t ctx_len = unicode::decode_utf8(par.context).size();
      const json& qas = member(paras[pi], "qas", json::value_t::array, wp, path);
      for (size_t qi = 0; qi < qas.size(); ++qi) {
        const std::string wq = wp + ".qas[" + std::to_string(qi) + "]";
        SquadQuestion q;
        q.id = member(qas[qi], "id", json::value_t::string, wq, path).get<std::string>();
        q.question = member(qas[qi], "question", json::value_t::string, wq, path).get<std::string>();
        if (!ids.insert(q.id).second) throw SquadError(path + ": " + wq + ".id: '" + q.id + "' appears twice");
        const json& ans = member(qas[qi], "answers", json::value_t::array, wq, path);
        if (ans.empty()) throw SquadError(path + ": " + wq + ".answers: no answer (SQuAD v1.1 questions all have one)");
        for (size_t k = 0; k < ans.size(); ++k) {
          const std::string wk = wq + ".answers[" + std::to_string(k) + "]";
          SquadAnswer a;
          a.text = member(ans[k], "text", json::value_t::string, wk, path).get<std::string>();
          const json& st = member(ans[k], "answer_start", json::value_t::number_unsigned, wk, path);
          if (st.get<int64_t>() < 0) throw SquadError(path + ": " + wk + ".answer_start: negative");
          a.answer_start = static_cast<size_t>(st.get<int64_t>());
          const size_t alen = unicode::decode_utf8(a.text).size();
          if (a.answer_start + alen > ctx_len)
            throw SquadError(path + ": " + wk + ".answer_start: " + std::to_string(a.answer_start) + " + " +
                             std::to_string(alen) + " characters is past the context's " + std::to_string(ctx_len) +
                             " characters");
          q.answers.push_back(std::move(a));
        }
        par.qas.push_back(std::move(q));
      }
      art.paragraphs.push_back(std::move(par));
    }
    d.articles.push_back(std::move(art));
  }
  if (d.num_questions() == 0) throw SquadError(path + ": no questions");
  return d;
}

std::pair<SquadDataset, SquadDataset> split_by_article(const SquadDataset& d, size_t train_articles) {
  if (train_articles == 0 || train_articles >= d.articles.size())
    throw SquadError("split_by_article: " + std::to_string(train_articles) + " train articles of " +
                     std::to_string(d.articles.size()) + " leaves one side empty");
  SquadDataset a, b;
  a.version = b.version = d.version;
  a.articles.assign(d.articles.begin(), d.articles.begin() + static_cast<std::ptrdiff_t>(train_articles));
  b.articles.assign(d.articles.begin() + static_cast<std::ptrdiff_t>(train_articles), d.articles.end());
  return {a, b};
}

std::string squad_normalize_answer(const std::string& s) {
  // lower → remove punctuation → remove articles → fix whitespace, in the official order.
  std::u32string t;
  for (char32_t c : unicode::lower_chars(unicode::decode_utf8(s)))
    if (!is_ascii_punct(c)) t.push_back(c);
  std::u32string u;
  for (size_t i = 0; i < t.size();) {
    if (!is_word_char(t[i])) {
      u.push_back(t[i++]);
      continue;
    }
    size_t j = i;
    while (j < t.size() && is_word_char(t[j])) ++j;
    const std::u32string w = t.substr(i, j - i);
    if (w == U"a" || w == U"an" || w == U"the")
      u.push_back(U' ');
    else
      u += w;
    i = j;
  }
  std::u32string out;
  for (size_t i = 0; i < u.size();) {
    if (unicode::is_python_space(u[i])) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < u.size() && !unicode::is_python_space(u[j])) ++j;
    if (!out.empty()) out.push_back(U' ');
    out += u.substr(i, j - i);
    i = j;
  }
  return unicode::encode_utf8(out);
}

bool squad_exact_match(const std::string& prediction, const std::string& gold) {
  return squad_normalize_answer(prediction) == squad_normalize_answer(gold);
}

double squad_f1(const std::string& prediction, const std::string& gold) {
  const auto p = tokens_of(prediction), g = tokens_of(gold);
  std::unordered_map<std::string, int> cg;
  for (auto& w : g) ++cg[w];
  int same = 0;
  for (auto& w : p) {
    auto it = cg.find(w);
    if (it != cg.end() && it->second > 0) {
      --it->second;
      ++same;
    }
  }
  if (same == 0) return 0.0;
  const double precision = static_cast<double>(same) / p.size(), recall = static_cast<double>(same) / g.size();
  return 2 * precision * recall / (precision + recall);
}

SquadScores squad_evaluate(const SquadDataset& d, const std::map<std::string, std::string>& predictions) {
  SquadScores s;
  double em = 0, f1 = 0;
  for (auto& a : d.articles)
    for (auto& p : a.paragraphs)
      for (auto& q : p.qas) {
        ++s.total;
        auto it = predictions.find(q.id);
        if (it == predictions.end()) continue;
        ++s.answered;
        double best_em = 0, best_f1 = 0;
        for (auto& g : q.answers) {
          best_em = std::max(best_em, squad_exact_match(it->second, g.text) ? 1.0 : 0.0);
          best_f1 = std::max(best_f1, squad_f1(it->second, g.text));
        }
        em += best_em;
        f1 += best_f1;
      }
  if (s.total > 0) {
    s.exact_match = 100.0 * em / s.total;
    s.f1 = 100.0 * f1 / s.total;
  }
  return s;
}

}  // namespace lorakit::data
