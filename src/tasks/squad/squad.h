// SQuAD v1.1: the official JSON reader, the by-article split used on this machine, and the official
// evaluation (evaluate-v1.1.py): answer normalisation, exact match, token F1, each the max over the
// gold answers, unanswered questions scoring 0. Standard library, nlohmann/json and utf8proc only.
#pragma once
#include <cstddef>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/errors.h"

namespace lorakit::data {

// Every reading error: "<path>: <JSON path>: <what is wrong>", e.g.
// "dev.json: data[3].paragraphs[1].qas[0].answers[0].answer_start: 9120 is past the context's 712 characters".
struct SquadError : lorakit::Error {
  using lorakit::Error::Error;
};

struct SquadAnswer {
  std::string text;
  size_t answer_start = 0;  // a code-point index into the context (a Python str index, as the file means it)
};

struct SquadQuestion {
  std::string id, question;
  std::vector<SquadAnswer> answers;  // at least one
};

struct SquadParagraph {
  std::string context;
  std::vector<SquadQuestion> qas;
};

struct SquadArticle {
  std::string title;
  std::vector<SquadParagraph> paragraphs;
};

struct SquadDataset {
  std::string version;
  std::vector<SquadArticle> articles;
  size_t num_questions() const;
  size_t num_paragraphs() const;
};

// Reads an official SQuAD v1.1 file ({"version", "data": [{"title", "paragraphs": [{"context", "qas":
// [{"id", "question", "answers": [{"text", "answer_start"}]}]}]}]}). Checked: valid UTF-8 JSON, every
// key present with the right type, at least one answer per question, answer_start + the answer's
// length inside the context, question ids unique. (The answer text is not required to equal the
// context at answer_start: the official files have a few answers that differ by whitespace.)
SquadDataset read_squad_file(const std::string& path);

// The first `train_articles` articles, and the rest: an article's paragraphs never straddle the split.
std::pair<SquadDataset, SquadDataset> split_by_article(const SquadDataset& d, size_t train_articles);

// evaluate-v1.1.py's normalize_answer: lower-case (the full Unicode mapping of each character; Python's
// str.lower() would also give a word-final 'Σ' the final form), drop ASCII punctuation
// (string.punctuation), turn the words a / an / the (maximal runs of Unicode letters, digits and '_',
// as re's \b(a|an|the)\b) into spaces, collapse whitespace (str.split() / ' '.join).
std::string squad_normalize_answer(const std::string& s);
bool squad_exact_match(const std::string& prediction, const std::string& gold);
double squad_f1(const std::string& prediction, const std::string& gold);

struct SquadScores {
  double exact_match = 0, f1 = 0;  // percentages, as the official script prints them
  size_t total = 0, answered = 0;
};
// Max over each question's gold answers, averaged over every question of `d`; a question without a
// prediction counts 0 (as the official script, which also warns).
SquadScores squad_evaluate(const SquadDataset& d, const std::map<std::string, std::string>& predictions);

}  // namespace lorakit::data
