// RoBERTa byte-level BPE: text::load_tokenizer on a folder holding the input split at kSeparator into
// vocab.json, merges.txt, tokenizer_config.json and added_tokens.json.
#include "harness.h"
#include "text/tokenizer.h"
#include "tokenizer_checks.h"

LORAKIT_FUZZ_TARGET(bpe_files) {
  const auto& scratch = lorakit::fuzz::Scratch::get("bpe_files");
  auto parts = lorakit::fuzz::split_input(data, size, 4);
  if (parts.size() < 2) parts.emplace_back();  // merges.txt present (maybe empty) so that BPE is picked
  scratch.write_parts({"vocab.json", "merges.txt", "tokenizer_config.json", "added_tokens.json"}, parts);
  lorakit::fuzz::expect_clean([&] { lorakit::fuzz::exercise_tokenizer(*lorakit::text::load_tokenizer(scratch.dir())); },
                              scratch.dir());
  return 0;
}
