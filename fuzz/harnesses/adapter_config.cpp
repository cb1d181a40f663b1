// adapter_config.json: LoraConfig::from_peft_json (src/tuners/lora/config.h) on the input parsed as
// read_adapter_config does, then the module matching and per-module rank / alpha an accepted config
// drives (target and exclude regexes, rank_pattern / alpha_pattern keys).
#include <nlohmann/json.hpp>

#include "harness.h"
#include "tuners/lora/config.h"

LORAKIT_FUZZ_TARGET(adapter_config) {
  const std::string name = "fuzz/adapter_config.json";
  lorakit::fuzz::expect_clean(
      [&] {
        nlohmann::ordered_json j;
        try {
          j = nlohmann::ordered_json::parse(reinterpret_cast<const char*>(data), reinterpret_cast<const char*>(data) + size);
        } catch (const nlohmann::json::exception& e) {
          throw lorakit::Error(name + ": not valid JSON: " + e.what());  // as read_json_file
        }
        if (!j.is_object()) throw lorakit::Error(name + ": must be a JSON object");
        const auto c = lorakit::LoraConfig::from_peft_json(j, name);
        for (const char* path : {"bert.encoder.layer.0.attention.self.query", "bert.encoder.layer.11.attention.self.value",
                                 "roberta.encoder.layer.3.output.dense", "classifier", "q_lin", ""}) {
          if (c.matches(path)) {
            const auto m = c.for_module(path);
            if (m.r <= 0) lorakit::fuzz::fail(std::string("module '") + path + "' resolved to rank " + std::to_string(m.r));
          }
        }
      },
      name);
  return 0;
}
