// BERT WordPiece vocab.txt (+ tokenizer_config.json): text::load_tokenizer (src/text/tokenizer.h) on a
// folder holding the input split at kSeparator into vocab.txt and tokenizer_config.json, then the
// tokenizer run on fixed texts (fuzz/tokenizer_checks.h).
#include "harness.h"
#include "text/tokenizer.h"
#include "tokenizer_checks.h"

LORAKIT_FUZZ_TARGET(vocab_txt) {
  const auto& scratch = lorakit::fuzz::Scratch::get("vocab_txt");
  scratch.write_parts({"vocab.txt", "tokenizer_config.json"}, lorakit::fuzz::split_input(data, size, 2));
  lorakit::fuzz::expect_clean([&] { lorakit::fuzz::exercise_tokenizer(*lorakit::text::load_tokenizer(scratch.dir())); },
                              scratch.dir());
  return 0;
}
