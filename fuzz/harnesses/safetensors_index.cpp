// Sharded checkpoints: parse_safetensors_index (src/models/checkpoint_files.h) on the input as
// model.safetensors.index.json.
#include "harness.h"
#include "models/checkpoint_files.h"

LORAKIT_FUZZ_TARGET(safetensors_index) {
  const std::string name = "fuzz/model.safetensors.index.json";
  lorakit::fuzz::expect_clean(
      [&] {
        const auto shards =
            lorakit::parse_safetensors_index(std::string(reinterpret_cast<const char*>(data), size), name);
        for (const auto& [shard, names] : shards)
          if (shard.empty() || shard.find('/') != std::string::npos || shard == ".." || names.empty())
            lorakit::fuzz::fail("shard name '" + shard + "' accepted");
      },
      name);
  return 0;
}
