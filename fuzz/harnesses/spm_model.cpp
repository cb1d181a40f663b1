// DeBERTa-v2/v3 SentencePiece spm.model (+ tokenizer_config.json, added_tokens.json):
// text::load_tokenizer on a folder holding the input split at kSeparator into those files. lorakit's
// own protobuf check runs first; what passes it goes to libsentencepiece (through liblorakit_spm.so).
#include "harness.h"
#include "text/tokenizer.h"
#include "tokenizer_checks.h"

LORAKIT_FUZZ_TARGET(spm_model) {
  const auto& scratch = lorakit::fuzz::Scratch::get("spm_model");
  scratch.write_parts({"spm.model", "tokenizer_config.json", "added_tokens.json"}, lorakit::fuzz::split_input(data, size, 3));
  lorakit::fuzz::expect_clean([&] { lorakit::fuzz::exercise_tokenizer(*lorakit::text::load_tokenizer(scratch.dir())); },
                              scratch.dir());
  return 0;
}
