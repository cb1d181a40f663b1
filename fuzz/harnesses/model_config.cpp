// config.json: ModelConfig::from_json_text (src/models/config.h). A config that is accepted must also
// write out (to_json_text) and read back with the same sizes (below 4096 labels).
#include "harness.h"
#include "models/config.h"

LORAKIT_FUZZ_TARGET(model_config) {
  const std::string name = "fuzz/config.json";
  lorakit::fuzz::expect_clean(
      [&] {
        const auto c = lorakit::ModelConfig::from_json_text(std::string(reinterpret_cast<const char*>(data), size), name);
        // The round trip writes num_labels id2label entries: linear, but 12 s under ASan near the cap of
        // 2^20 (tests/test_fuzz_regressions.cpp times it); fuzz time goes further on the rest.
        if (c.num_labels > 4096) return;
        const auto back = lorakit::ModelConfig::from_json_text(c.to_json_text(), "fuzz/config.json (written back)");
        if (back.model_type != c.model_type || back.hidden_size != c.hidden_size ||
            back.num_hidden_layers != c.num_hidden_layers || back.num_attention_heads != c.num_attention_heads ||
            back.vocab_size != c.vocab_size || back.num_labels != c.num_labels ||
            back.max_position_embeddings != c.max_position_embeddings || back.head != c.head)
          lorakit::fuzz::fail("config.json does not survive to_json_text / from_json_text:\n" + c.to_json_text());
      },
      name);
  return 0;
}
