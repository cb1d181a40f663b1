// Regression tests for what fuzzing lorakit's parsers found (docs/reliability.md, "Fuzzing"), for the
// parsers in the LibTorch library (IDX, config.json, TF.js, safetensors, pytorch_model.bin): each input
// now gives a clear lorakit::Error naming its file. The text library's are in tests/text_fuzz_regressions.cpp.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <chrono>
#include <string>

#include <nlohmann/json.hpp>

#include "core/errors.h"
#include "models/config.h"
#include "models/tfjs_graph.h"
#include "support/helpers.h"
#include "tasks/image/idx.h"
#include "tuners/lora/config.h"

using namespace lorakit;
using lorakit::testing::TempDir;

namespace {

template <class Fn>
void expect_lorakit_error(Fn&& fn, std::initializer_list<std::string> needles) {
  try {
    fn();
    ADD_FAILURE() << "expected a lorakit::Error";
  } catch (const Error& e) {
    for (const auto& n : needles) EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected a lorakit::Error, got another exception: " << e.what();
  }
}

long max_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss / 1024;
}

std::string be32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)};
}

const std::string kBert = R"({"model_type": "bert", "vocab_size": 100, "hidden_size": 16, "num_hidden_layers": 1,
  "num_attention_heads": 4, "intermediate_size": 32, "max_position_embeddings": 64)";

}  // namespace

// idx (out-of-memory, malloc of 7.7 GB): a header claiming 2^22 images of 64 x 64 (16 GiB) made
// read_idx allocate all of it before reading a byte. Now the buffer grows with the data actually read.
TEST(FuzzRegressions, IdxHeaderCannotAllocateGigabytes) {
  TempDir d;
  const std::string p = d.file("images-idx3-ubyte");
  lorakit::testing::write_bytes(p, std::string("\0\0\x08\x03", 4) + be32(1u << 22) + be32(64) + be32(64) + "abc");
  const long before = max_rss_mb();
  expect_lorakit_error([&] { data::read_idx(p); }, {p, "truncated at byte 19"});
  EXPECT_LT(max_rss_mb() - before, 512) << "read_idx allocated what the header claims";
}

// model_config (UBSan: 2e+40 is outside the range of long): a float where an integer belongs was
// converted by nlohmann's get<int64_t>, undefined for values out of range. Integral floats still load.
TEST(FuzzRegressions, ConfigIntegersOutOfRangeAreWrongType) {
  expect_lorakit_error([&] { ModelConfig::from_json_text(kBert + R"(, "vocab_size": 2e40})", "cfg.json"); },
                       {"cfg.json", "key 'vocab_size' has the wrong type"});
  expect_lorakit_error([&] { ModelConfig::from_json_text(kBert + R"(, "vocab_size": 18446744073709551615})", "cfg.json"); },
                       {"cfg.json", "'vocab_size' has the wrong type"});
  expect_lorakit_error([&] { ModelConfig::from_json_text(kBert + R"(, "hidden_size": 16.5})", "cfg.json"); },
                       {"cfg.json", "'hidden_size' has the wrong type"});
  EXPECT_EQ(ModelConfig::from_json_text(kBert + R"(, "hidden_size": 16.0})", "cfg.json").hidden_size, 16);
}

// model_config (smoke run, a 10 s hang): num_labels 11111111 was accepted and to_json_text wrote 11 million
// id2label entries.
TEST(FuzzRegressions, ConfigNumLabelsIsBounded) {
  expect_lorakit_error([&] { ModelConfig::from_json_text(kBert + R"(, "num_labels": 11111111})", "cfg.json"); },
                       {"cfg.json", "num_labels 11111111 is implausibly large"});
  EXPECT_EQ(ModelConfig::from_json_text(kBert + R"(, "num_labels": 21843})", "cfg.json").num_labels, 21843);
}

// Found reviewing the model_config harness (UBSan, signed overflow; 3 million fuzz runs did not reach them):
// ViT's patch count squared, DeBERTa's attention_head_size x heads.
TEST(FuzzRegressions, ConfigSizeProductsDoNotOverflow) {
  expect_lorakit_error(
      [&] {
        ModelConfig::from_json_text(R"({"model_type": "vit", "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
          "intermediate_size": 32, "image_size": 4294967296000, "patch_size": 1})", "vit.json");
      },
      {"vit.json", "patches per side is out of range"});
  expect_lorakit_error(
      [&] {
        ModelConfig::from_json_text(R"({"model_type": "deberta-v2", "vocab_size": 10, "hidden_size": 16, "num_hidden_layers": 1,
          "num_attention_heads": 4611686018427387904, "intermediate_size": 32, "attention_head_size": 4})", "deb.json");
      },
      {"deb.json", "attention_head_size 4"});
}

// tfjs, first seed: attr_int on a dtype attribute ({"type": "DT_INT32"}, as the converter writes them)
// let std::stoll's std::invalid_argument escape; a byte array of non-numbers in "s" a json type_error.
TEST(FuzzRegressions, TfjsMalformedAttributesAreErrors) {
  TempDir d;
  lorakit::testing::write_bytes(d.file("model.json"), R"({"weightsManifest": [], "modelTopology": {"node": [
    {"name": "x", "op": "Placeholder", "attr": {"dtype": {"type": "DT_INT32"}, "s": {"s": ["a"]}, "f": {"f": "?"},
     "big": {"i": "99999999999999999999"}, "l": {"list": {"i": ["1", "two"]}}}}]}})");
  const auto g = tfjs::read_graph_files(d.path());
  ASSERT_EQ(g.nodes.size(), 1u);
  const auto& n = g.nodes[0];
  const std::string mj = d.file("model.json");
  expect_lorakit_error([&] { n.attr_int("dtype"); }, {mj, "node 'x'", "attribute 'dtype'"});
  expect_lorakit_error([&] { n.attr_string("s"); }, {mj, "attribute 's'"});
  expect_lorakit_error([&] { n.attr_float("f"); }, {mj, "attribute 'f'"});
  expect_lorakit_error([&] { n.attr_int("big"); }, {mj, "attribute 'big'"});
  expect_lorakit_error([&] { n.attr_ints("l"); }, {mj, "attribute 'l'"});
  EXPECT_FALSE(n.attr_int("absent").has_value());
}

// Found reviewing the tfjs harness (UBSan, signed overflow in WeightSpec::numel): a shape of
// [2^62, 4] overflowed the element count and its byte size wrapped to match an empty shard.
TEST(FuzzRegressions, TfjsHugeShapesAreErrors) {
  TempDir d;
  lorakit::testing::write_bytes(d.file("s0.bin"), "");
  lorakit::testing::write_bytes(d.file("model.json"), R"({"weightsManifest": [{"paths": ["s0.bin"], "weights": [
    {"name": "w", "shape": [4611686018427387904, 4], "dtype": "float32"}]}]})");
  expect_lorakit_error([&] { tfjs::read_graph_files(d.path()); }, {d.file("model.json"), "weight 'w' has a shape too large"});
}

// Found reviewing the tfjs harness: a node whose "op" is not a string let nlohmann's type_error escape;
// a shard path with ".." or an absolute one was read from outside model.json's folder.
TEST(FuzzRegressions, TfjsNodeOpAndShardPathsAreChecked) {
  TempDir d;
  const std::string mj = d.file("model.json");
  lorakit::testing::write_bytes(mj, R"({"weightsManifest": [], "modelTopology": {"node": [{"name": "a", "op": 5}]}})");
  expect_lorakit_error([&] { tfjs::read_graph_files(d.path()); }, {mj, "node 'a': \"op\" is not a string"});
  for (const char* p : {"../s0.bin", "/etc/hostname", "a/../../s0.bin"}) {
    lorakit::testing::write_bytes(mj, std::string(R"({"weightsManifest": [{"paths": [")") + p + R"("], "weights": []}]})");
    expect_lorakit_error([&] { tfjs::read_graph_files(d.path()); }, {mj, "must be a relative path inside model.json's folder"});
  }
}

// adapter_config (a libFuzzer timeout, 28 s on one input): the alpha_pattern key "bert.++++++r.laye2..."
// sent libstdc++'s backtracking regex executor into exponential time on a module path. Regexes from
// adapter configs now run on the breadth-first executor, and back-references are refused.
TEST(FuzzRegressions, AdapterRegexesCannotBacktrackForever) {
  auto cfg = nlohmann::ordered_json::parse(R"({"peft_type": "LORA", "r": 8, "target_modules": ["query", "value"],
    "alpha_pattern": {"bert.++++++r.laye2.1.attenti18446744073709551616on.self.value": 32.0}})");
  const LoraConfig c = LoraConfig::from_peft_json(cfg, "adapter_config.json");
  const auto start = std::chrono::steady_clock::now();
  const std::string path = "bert.encoder.layer.1.attention.self.value";
  EXPECT_TRUE(c.matches(path));
  EXPECT_EQ(c.for_module(path).lora_alpha, c.lora_alpha);  // the key does not match
  // A classic catastrophic pattern, as target_modules.
  cfg["target_modules"] = "(.*.*.*.*.*.*.*.*.*.*)*x";
  EXPECT_FALSE(LoraConfig::from_peft_json(cfg, "adapter_config.json").matches(path + path + path));
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 5.0);
  cfg["target_modules"] = "(query)\\1";
  expect_lorakit_error([&] { LoraConfig::from_peft_json(cfg, "adapter_config.json"); },
                       {"adapter_config.json", "target_modules regex '(query)\\1' is invalid or too complex"});
  cfg["target_modules"] = std::string(100, '(') + "q" + std::string(100, ')');
  expect_lorakit_error([&] { LoraConfig::from_peft_json(cfg, "adapter_config.json"); },
                       {"adapter_config.json", "64 nested groups"});
  // fuzz/harnesses/adapter_config.cpp (UBSan, in libstdc++'s regex compiler: signed overflow reading the
  // back-reference number \518446744073709551615 into a long). Long numbers and huge repeats are refused
  // before the pattern is compiled.
  cfg["target_modules"] = ".*\\518446744073709551615(query|value)$";
  expect_lorakit_error([&] { LoraConfig::from_peft_json(cfg, "adapter_config.json"); },
                       {"adapter_config.json", "target_modules regex", "6 digits"});
  cfg["target_modules"] = "q{99999999999999999999}";
  expect_lorakit_error([&] { LoraConfig::from_peft_json(cfg, "adapter_config.json"); }, {"adapter_config.json"});
  cfg["target_modules"] = "((q{1000}){1000}){1000}";
  expect_lorakit_error([&] { LoraConfig::from_peft_json(cfg, "adapter_config.json"); },
                       {"adapter_config.json", "a million states"});
  // Modest repeats still work.
  cfg["target_modules"] = ".*layer\\.[0-9]{1,2}\\.attention\\.self\\.(query|value)";
  EXPECT_TRUE(LoraConfig::from_peft_json(cfg, "adapter_config.json").matches(path));
}

// model_config (smoke run, a 10 s hang on num_labels 111111): to_json_text filled id2label / label2id
// through ordered_json's linear-search operator[], quadratic in num_labels. Same output, linear time.
TEST(FuzzRegressions, ConfigWithManyLabelsWritesQuickly) {
  const auto start = std::chrono::steady_clock::now();
  const ModelConfig c = ModelConfig::from_json_text(kBert + R"(, "num_labels": 200000})", "cfg.json");
  const std::string text = c.to_json_text();
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 5.0);
  EXPECT_EQ(ModelConfig::from_json_text(text, "back.json").num_labels, 200000);
  // Order and a repeated label name: label2id keeps first-seen order, the last id wins.
  const auto j = nlohmann::ordered_json::parse(
      ModelConfig::from_json_text(kBert + R"(, "id2label": {"0": "a", "1": "b", "2": "a"}})", "cfg.json").to_json_text());
  EXPECT_EQ(j["id2label"].dump(), R"({"0":"a","1":"b","2":"a"})");
  EXPECT_EQ(j["label2id"].dump(), R"({"a":2,"b":1})");
}
