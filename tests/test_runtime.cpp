// The process set-up of src/core/runtime and the SentencePiece shim inside a process that has LibTorch (and
// with it libprotobuf.so.32) loaded, in the normal build and in the sanitizer build (scripts/test --sanitize).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/runtime.h"
#include "text/sentencepiece_tokenizer.h"

namespace {

bool built_with_asan() {
#if defined(__SANITIZE_ADDRESS__)
  return true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
  return true;
#endif
#endif
  return false;
}

TEST(Runtime, AllocatorIsReportedAsBuilt) {
  const auto r = lorakit::runtime_info();
  if (built_with_asan())
    EXPECT_NE(r.allocator.find("AddressSanitizer"), std::string::npos) << r.allocator;
  else
    EXPECT_EQ(r.allocator, "tcmalloc");  // the test binary links tcmalloc as the CLI does
}

// libsentencepiece's protobuf-lite must stay apart from LibTorch's libprotobuf: normally through
// dlopen(RTLD_DEEPBIND), in the sanitizer build through a dlmopen() namespace of its own.
TEST(Runtime, SentencePieceTrainsAndEncodesBesideLibTorch) {
  std::vector<std::string> text;
  for (int i = 0; i < 200; ++i)
    text.push_back("the quick brown fox " + std::to_string(i * 7919) + " jumps over the lazy dog");
  lorakit::text::SentencePieceTrainOptions opt;
  opt.vocab_size = 60;
  opt.hard_vocab_limit = false;
  const auto tok = lorakit::text::train_sentencepiece(text, opt);
  const auto enc = tok.encode("the lazy fox", nullptr, 32);
  ASSERT_GE(enc.input_ids.size(), 3u);
  EXPECT_EQ(enc.input_ids.front(), 1);  // [CLS]
  EXPECT_EQ(enc.input_ids.back(), 2);   // [SEP]
}

}  // namespace
