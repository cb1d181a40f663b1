#include "tasks/squad/decode.h"

#include <algorithm>
#include <cstdint>
#include <numeric>

#include "text/unicode.h"

namespace lorakit::data {

namespace {

// Indexes of the n highest values, highest first; equal values: lower index first.
std::vector<size_t> top_indexes(const std::vector<float>& v, size_t n) {
  std::vector<size_t> idx(v.size());
  std::iota(idx.begin(), idx.end(), size_t{0});
  n = std::min(n, idx.size());
  std::partial_sort(idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(n), idx.end(),
                    [&](size_t a, size_t b) { return v[a] > v[b] || (v[a] == v[b] && a < b); });
  idx.resize(n);
  return idx;
}

struct Best {
  bool found = false;
  float score = 0;
  int64_t begin = 0, end = 0;  // code points of the context
};

}  // namespace

std::map<std::string, std::string> decode_squad_predictions(const SquadDataset& d,
                                                            const std::vector<SquadFeature>& features,
                                                            const std::vector<std::vector<float>>& start_logits,
                                                            const std::vector<std::vector<float>>& end_logits,
                                                            const SquadDecodeOptions& opt) {
  if (start_logits.size() != features.size() || end_logits.size() != features.size()) {
    throw lorakit::Error("SQuAD decoding: " + std::to_string(start_logits.size()) + " start and " +
                         std::to_string(end_logits.size()) + " end logit vectors for " +
                         std::to_string(features.size()) + " features");
  }
  const std::vector<SquadExampleRef> refs = squad_examples(d);
  std::vector<Best> best(refs.size());
  for (size_t i = 0; i < features.size(); ++i) {
    const SquadFeature& f = features[i];
    const size_t len = f.input_ids.size();
    if (f.example >= refs.size()) {
      throw lorakit::Error("SQuAD decoding: feature " + std::to_string(i) + " names example " +
                           std::to_string(f.example) + " of a dataset with " + std::to_string(refs.size()) +
                           " questions");
    }
    if (start_logits[i].size() != len || end_logits[i].size() != len || f.offsets.size() != len) {
      throw lorakit::Error("SQuAD decoding: feature " + std::to_string(i) + " has " + std::to_string(len) +
                           " tokens and " + std::to_string(f.offsets.size()) + " offsets but " +
                           std::to_string(start_logits[i].size()) + " start and " +
                           std::to_string(end_logits[i].size()) + " end logits");
    }
    Best& b = best[f.example];
    const std::vector<size_t> starts = top_indexes(start_logits[i], opt.n_best);
    const std::vector<size_t> ends = top_indexes(end_logits[i], opt.n_best);
    for (size_t s : starts) {
      if (f.offsets[s].first < 0) continue;
      for (size_t e : ends) {
        if (f.offsets[e].first < 0 || e < s || e - s + 1 > opt.max_answer_len) continue;
        const float score = start_logits[i][s] + end_logits[i][e];
        if (!b.found || score > b.score) b = Best{true, score, f.offsets[s].first, f.offsets[e].second};
      }
    }
  }
  std::map<std::string, std::string> out;
  for (size_t k = 0; k < refs.size(); ++k) {
    const SquadParagraph& para = d.articles[refs[k].article].paragraphs[refs[k].paragraph];
    std::string text;
    if (best[k].found) {
      // Python's context[a:b] over code points (clamped; empty when b <= a).
      const std::u32string cps = text::unicode::decode_utf8(para.context);
      const auto a = std::min(static_cast<size_t>(best[k].begin), cps.size());
      const auto z = std::min(static_cast<size_t>(std::max<int64_t>(best[k].end, 0)), cps.size());
      if (z > a) text = text::unicode::encode_utf8(cps.data() + a, cps.data() + z);
    }
    out[para.qas[refs[k].question].id] = std::move(text);
  }
  return out;
}

}  // namespace lorakit::data
