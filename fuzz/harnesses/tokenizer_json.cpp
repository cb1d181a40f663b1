// Hugging Face tokenizer.json (+ tokenizer_config.json): text::load_tokenizer on a folder holding the
// input split at kSeparator into those two files. tokenizer.json's model.type picks WordPiece or BPE.
#include "harness.h"
#include "text/tokenizer.h"
#include "tokenizer_checks.h"

LORAKIT_FUZZ_TARGET(tokenizer_json) {
  const auto& scratch = lorakit::fuzz::Scratch::get("tokenizer_json");
  scratch.write_parts({"tokenizer.json", "tokenizer_config.json"}, lorakit::fuzz::split_input(data, size, 2));
  lorakit::fuzz::expect_clean([&] { lorakit::fuzz::exercise_tokenizer(*lorakit::text::load_tokenizer(scratch.dir())); },
                              scratch.dir());
  return 0;
}
