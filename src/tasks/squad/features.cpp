#include "tasks/squad/features.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

#include "text/unicode.h"

namespace lorakit::data {

namespace {

// Python's str.lstrip(): drops the leading str.isspace() characters.
std::string lstrip(const std::string& s) {
  const std::u32string cps = text::unicode::decode_utf8(s);
  size_t i = 0;
  while (i < cps.size() && text::unicode::is_python_space(cps[i])) ++i;
  if (i == 0) return s;
  return text::unicode::encode_utf8(cps.data() + i, cps.data() + cps.size());
}

std::vector<int64_t> ids_of(const std::vector<text::Token>& toks) {
  std::vector<int64_t> ids;
  ids.reserve(toks.size());
  for (const auto& t : toks) ids.push_back(t.id);
  return ids;
}

// run_qa.py's labels for the window of context tokens [first, last] (indices into `ctx`), or
// {-1, -1} when the window does not hold the answer's characters [s, e).
std::pair<size_t, size_t> label_window(const std::vector<text::Token>& ctx, size_t first, size_t last, size_t s,
                                       size_t e) {
  if (!(ctx[first].start <= s && ctx[last].end >= e)) return {SIZE_MAX, SIZE_MAX};
  size_t start = first;
  while (start < last && ctx[start + 1].start <= s) ++start;
  size_t end = last;
  while (end > first && ctx[end - 1].end >= e) --end;
  return {start, end};
}

}  // namespace

std::vector<SquadExampleRef> squad_examples(const SquadDataset& d) {
  std::vector<SquadExampleRef> out;
  for (size_t a = 0; a < d.articles.size(); ++a)
    for (size_t p = 0; p < d.articles[a].paragraphs.size(); ++p)
      for (size_t q = 0; q < d.articles[a].paragraphs[p].qas.size(); ++q) out.push_back({a, p, q});
  return out;
}

std::vector<SquadFeature> make_squad_features(const SquadDataset& d, const text::Tokenizer& tok,
                                              const SquadFeatureOptions& opt) {
  std::vector<SquadFeature> out;
  const std::vector<int64_t> no_ids;
  size_t example = 0;
  for (const auto& article : d.articles) {
    for (const auto& para : article.paragraphs) {
      const std::vector<text::Token> ctx = tok.tokenize_with_offsets(para.context);
      const std::vector<int64_t> ctx_ids = ids_of(ctx);
      const size_t n = ctx.size();
      for (const auto& qa : para.qas) {
        std::vector<int64_t> q_ids = ids_of(tok.tokenize_with_offsets(lstrip(qa.question)));
        if (opt.max_query_len > 0 && q_ids.size() > opt.max_query_len) q_ids.resize(opt.max_query_len);
        const size_t specials = tok.encode_ids(q_ids, &no_ids).input_ids.size() - q_ids.size();
        const size_t used = q_ids.size() + specials;
        const size_t window = opt.max_seq_len > used ? opt.max_seq_len - used : 0;
        if (opt.doc_stride >= window) {
          throw lorakit::Error("SQuAD features: --doc-stride " + std::to_string(opt.doc_stride) +
                               " must be smaller than the " + std::to_string(window) +
                               " context tokens a window holds for question '" + qa.id + "' (--max-seq-len " +
                               std::to_string(opt.max_seq_len) + " - " + std::to_string(q_ids.size()) +
                               " question tokens - " + std::to_string(specials) + " special tokens)");
        }
        const SquadAnswer& gold = qa.answers.front();
        const size_t s_char = gold.answer_start;
        const size_t e_char = s_char + text::unicode::decode_utf8(gold.text).size();
        for (size_t begin = 0;; begin += window - opt.doc_stride) {
          const size_t end = std::min(begin + window, n);
          const std::vector<int64_t> part(ctx_ids.begin() + static_cast<std::ptrdiff_t>(begin),
                                          ctx_ids.begin() + static_cast<std::ptrdiff_t>(end));
          text::Encoding enc = tok.encode_ids(q_ids, &part);
          SquadFeature f;
          f.example = example;
          f.input_ids = std::move(enc.input_ids);
          f.token_type_ids = std::move(enc.token_type_ids);
          f.offsets.assign(f.input_ids.size(), {-1, -1});
          for (size_t k = begin; k < end; ++k) {
            f.offsets[enc.b_begin + (k - begin)] = {static_cast<int64_t>(ctx[k].start), static_cast<int64_t>(ctx[k].end)};
          }
          if (end > begin) {
            const auto [s, e] = label_window(ctx, begin, end - 1, s_char, e_char);
            if (s != SIZE_MAX) {
              f.start_position = static_cast<int64_t>(enc.b_begin + (s - begin));
              f.end_position = static_cast<int64_t>(enc.b_begin + (e - begin));
            }
          }
          out.push_back(std::move(f));
          if (end >= n) break;
        }
        ++example;
      }
    }
  }
  return out;
}

}  // namespace lorakit::data
