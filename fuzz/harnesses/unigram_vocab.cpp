// USE-lite's unigram vocab.json ([[piece, score], ...]): text::UnigramTokenizer::from_vocab_json
// (src/text/unigram_tokenizer.h) on the input, then the tokenizer run on fixed texts.
#include "harness.h"
#include "text/unigram_tokenizer.h"
#include "tokenizer_checks.h"

LORAKIT_FUZZ_TARGET(unigram_vocab) {
  const auto& scratch = lorakit::fuzz::Scratch::get("unigram_vocab");
  const std::string path = scratch.write("vocab.json", std::string(reinterpret_cast<const char*>(data), size));
  lorakit::fuzz::expect_clean(
      [&] {
        (void)lorakit::text::UnigramTokenizer::is_unigram_vocab_json(path);
        lorakit::fuzz::exercise_tokenizer(lorakit::text::UnigramTokenizer::from_vocab_json(path));
      },
      path);
  return 0;
}
