// DistilBERT, DeBERTa-v2/v3 and ViT: forwards against the independent references in tests/oracle/
// (plain tensor ops under Debian's python3-torch), Hugging Face parameter names, and LoRA on each
// family's own projection names.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/torch.h>

#include <cmath>
#include <functional>
#include <nlohmann/json.hpp>

#include "core/errors.h"
#include "core/fileutil.h"
#include "core/safetensors.h"
#include "models/checkpoint.h"
#include "models/deberta.h"
#include "models/vit.h"
#include "support/helpers.h"
#include "support/tiny_model.h"
#include "tuners/lora/model.h"
#include "train/trainer.h"
#include "tuners/registry.h"

using namespace lorakit;
using lorakit::testing::oracle_config;
using lorakit::testing::oracle_logits;
using lorakit::testing::padded_inputs;
using lorakit::testing::PaddedInputs;
using lorakit::testing::TempDir;
using lorakit::testing::write_perturbed_model;

namespace {

// deberta-v3-base's settings at a tiny size: 8 log buckets, shared keys, p2c + c2p, LayerNorm'd
// relative embeddings, no absolute positions, no token types.
ModelConfig deberta_v3_like() {
  ModelConfig c = oracle_config("deberta-v2");
  c.relative_attention = true;
  c.position_buckets = 8;
  c.max_relative_positions = -1;
  c.share_att_key = true;
  c.pos_att_type = {"p2c", "c2p"};
  c.norm_rel_ebd = "layer_norm";
  c.position_biased_input = false;
  return c;
}

// DeBERTa-v2-style alternative paths: separate position projections, c2p only, plain relative
// positions (no buckets), absolute positions and token types, an embedding projection, a pooler of
// another width.
ModelConfig deberta_v2_variant() {
  ModelConfig c = oracle_config("deberta-v2");
  c.relative_attention = true;
  c.max_relative_positions = 6;
  c.share_att_key = false;
  c.pos_att_type = {"c2p", "p2c"};
  c.position_biased_input = true;
  c.type_vocab_size = 2;
  c.embedding_size = 24;
  c.pooler_hidden_size = 20;
  c.pooler_hidden_act = "tanh";
  return c;
}

ModelConfig deberta_c2p_only() {
  ModelConfig c = deberta_v3_like();
  c.share_att_key = false;
  c.pos_att_type = {"c2p"};
  c.norm_rel_ebd = "none";
  return c;
}

ModelConfig vit_config() {
  ModelConfig c = oracle_config("vit");
  c.vocab_size = 1;
  c.image_size = 16;
  c.patch_size = 4;
  c.num_channels = 3;
  c.layer_norm_eps = 1e-12;
  c.max_position_embeddings = 17;
  return c;
}

struct TextCase {
  std::string name, oracle;
  std::function<ModelConfig()> config;
  int64_t seq_len;
};

std::ostream& operator<<(std::ostream& os, const TextCase& c) { return os << c.name; }

}  // namespace

class TextFamilyOracle : public ::testing::TestWithParam<TextCase> {};

TEST_P(TextFamilyOracle, ForwardMatchesIndependentReference) {
  const TextCase& tc = GetParam();
  TempDir d;
  ModelConfig c = tc.config();
  write_perturbed_model(c, d.path());
  LoadedModel lm = load_model(d.path());
  EXPECT_TRUE(lm.report.newly_initialized.empty());
  EXPECT_TRUE(lm.report.unexpected.empty());
  PaddedInputs in = padded_inputs(c, tc.seq_len);
  at::Tensor ref = oracle_logits(tc.oracle, d.path(),
                                 {{"input_ids", in.ids}, {"attention_mask", in.mask}, {"token_type_ids", in.tt}}, d.path());
  lm.model->eval();
  lm.model->to(at::kDouble);
  at::Tensor out64 = lm.model->forward(in.ids, in.mask, in.tt);
  EXPECT_LT((out64 - ref).abs().max().item<double>(), 1e-10);
  lm.model->to(at::kFloat);
  at::Tensor out32 = lm.model->forward(in.ids, in.mask, in.tt).to(at::kDouble);
  EXPECT_LT((out32 - ref).abs().max().item<double>(), 1e-5);
  // Padding really is masked: other ids under the padding leave the logits alone.
  at::Tensor ids2 = in.ids.clone();
  ids2.index_put_({2, at::indexing::Slice(tc.seq_len - tc.seq_len / 2, tc.seq_len)}, 7);
  at::Tensor masked = lm.model->forward(ids2, in.mask, in.tt).to(at::kDouble);
  EXPECT_LT((masked - out32).abs().max().item<double>(), 1e-5);
  // ... and the logits are not trivially constant across rows.
  EXPECT_GT((out32[0] - out32[1]).abs().max().item<double>(), 1e-4);
}

INSTANTIATE_TEST_SUITE_P(
    Families, TextFamilyOracle,
    ::testing::Values(TextCase{"distilbert", "distilbert_ref.py", [] { return oracle_config("distilbert"); }, 9},
                      TextCase{"distilbert_relu", "distilbert_ref.py",
                               [] {
                                 auto c = oracle_config("distilbert");
                                 c.hidden_act = "relu";
                                 return c;
                               },
                               9},
                      // Below (6) and above (21) the 8 position buckets: the log-bucketed range is used.
                      TextCase{"deberta_v3_short", "deberta_ref.py", deberta_v3_like, 6},
                      TextCase{"deberta_v3_long", "deberta_ref.py", deberta_v3_like, 21},
                      TextCase{"deberta_v2_variant", "deberta_ref.py", deberta_v2_variant, 13},
                      TextCase{"deberta_c2p_only", "deberta_ref.py", deberta_c2p_only, 21},
                      TextCase{"deberta_absolute_only", "deberta_ref.py",
                               [] {
                                 auto c = oracle_config("deberta-v2");
                                 c.position_biased_input = true;
                                 return c;
                               },
                               9}),
    [](const ::testing::TestParamInfo<TextCase>& i) { return i.param.name; });

TEST(DebertaPositions, LogBucketsMatchTheClosedForm) {
  // bucket(δ) = δ inside ±mid; else sign(δ)·(mid + ceil(log(|δ|/mid) / log((max−1)/mid) · (mid − 1))).
  const int64_t bucket = 256, maxp = 512, mid = 128;
  at::Tensor rel = build_relative_position(600, 600, bucket, maxp);
  auto a = rel.accessor<int64_t, 2>();
  for (int64_t i : {0, 5, 300, 599})
    for (int64_t j : {0, 1, 130, 400, 599}) {
      const int64_t d = i - j, ad = std::abs(d);
      int64_t want = d;
      if (ad > mid) {
        const float lp = std::ceil(static_cast<float>(std::log(static_cast<float>(ad) / mid)) /
                                   static_cast<float>(std::log(static_cast<float>(maxp - 1) / mid)) * (mid - 1)) + mid;
        want = (d > 0 ? 1 : -1) * static_cast<int64_t>(lp);
      }
      EXPECT_EQ(a[i][j], want) << i << "," << j;
    }
  // Buckets never leave (−span, span) for span = 256 at distances up to the model's 512 positions.
  at::Tensor r512 = build_relative_position(512, 512, bucket, maxp);
  EXPECT_LE(r512.max().item<int64_t>(), 256);
  EXPECT_GE(r512.min().item<int64_t>(), -256);
  // Without buckets, plain i − j.
  at::Tensor plain = build_relative_position(4, 4, -1, 512);
  EXPECT_EQ(plain[3][0].item<int64_t>(), 3);
  EXPECT_EQ(plain[0][3].item<int64_t>(), -3);
}

TEST(DebertaConfig, V3BaseConfigLoads) {
  // microsoft/deberta-v3-base's config.json (as published), plus num_labels.
  const std::string text = R"({
    "model_type": "deberta-v2", "attention_probs_dropout_prob": 0.1, "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1, "hidden_size": 768, "initializer_range": 0.02, "intermediate_size": 3072,
    "max_position_embeddings": 512, "relative_attention": true, "position_buckets": 256,
    "norm_rel_ebd": "layer_norm", "share_att_key": true, "pos_att_type": "p2c|c2p", "layer_norm_eps": 1e-7,
    "max_relative_positions": -1, "position_biased_input": false, "num_attention_heads": 12,
    "num_hidden_layers": 12, "type_vocab_size": 0, "vocab_size": 128100})";
  ModelConfig c = ModelConfig::from_json_text(text, "deberta-v3-base/config.json");
  EXPECT_EQ(c.relative_span(), 256);
  EXPECT_EQ(c.pos_att_type.size(), 2u);
  EXPECT_TRUE(c.share_att_key);
  EXPECT_FALSE(c.position_biased_input);
  EXPECT_EQ(c.type_vocab_size, 0);
  c.num_hidden_layers = 1;  // the full size is 184M parameters: one layer shows the names and shapes
  SequenceClassifier m(c);
  auto p = m->named_parameters();
  EXPECT_EQ(p["deberta.encoder.rel_embeddings.weight"].sizes(), (std::vector<int64_t>{512, 768}));
  EXPECT_TRUE(p.contains("deberta.encoder.LayerNorm.weight"));
  EXPECT_EQ(p["deberta.embeddings.word_embeddings.weight"].size(0), 128100);
  EXPECT_FALSE(p.contains("deberta.embeddings.position_embeddings.weight"));
  EXPECT_FALSE(p.contains("deberta.embeddings.token_type_embeddings.weight"));
  EXPECT_FALSE(p.contains("deberta.encoder.layer.0.attention.self.pos_key_proj.weight"));
  EXPECT_TRUE(p.contains("pooler.dense.weight"));
  // Round trip through config.json keeps every DeBERTa setting.
  ModelConfig back = ModelConfig::from_json_text(c.to_json_text(), "round trip");
  EXPECT_EQ(back.to_json_text(), c.to_json_text());
  // Unsupported settings are refused by name.
  auto bad = nlohmann::json::parse(text);
  bad["pos_att_type"] = "p2c|p2p";
  EXPECT_THROW(
      {
        try {
          ModelConfig::from_json_text(bad.dump(), "x/config.json");
        } catch (const Error& e) {
          EXPECT_NE(std::string(e.what()).find("pos_att_type 'p2p'"), std::string::npos) << e.what();
          throw;
        }
      },
      Error);
  bad = nlohmann::json::parse(text);
  bad["conv_kernel_size"] = 3;
  EXPECT_THROW(ModelConfig::from_json_text(bad.dump(), "x/config.json"), Error);
  // DebertaV2Config strips the parts of a "|" string.
  auto spaced = nlohmann::json::parse(text);
  spaced["pos_att_type"] = "P2C | c2p";
  EXPECT_EQ(ModelConfig::from_json_text(spaced.dump(), "x/config.json").pos_att_type.size(), 2u);
  // log((max − 1) / mid) must not be log(1) = 0.
  bad = nlohmann::json::parse(text);
  bad["position_buckets"] = 8;
  bad["max_relative_positions"] = 5;
  EXPECT_THROW(ModelConfig::from_json_text(bad.dump(), "x/config.json"), Error);
  bad["max_relative_positions"] = 6;
  EXPECT_NO_THROW(ModelConfig::from_json_text(bad.dump(), "x/config.json"));
}

TEST(DistilBert, SinusoidalPositionsAreTransformersTableAndStayFixed) {
  ModelConfig c = oracle_config("distilbert");
  c.sinusoidal_pos_embds = true;
  torch::manual_seed(2);
  SequenceClassifier m(c);
  m->init_weights();
  at::Tensor w = m->named_parameters()["distilbert.embeddings.position_embeddings.weight"];
  // Row p, column 2i: sin(p / 10000^(2i/dim)); column 2i+1: cos of the same angle.
  for (int64_t p : {0, 1, 7, 39})
    for (int64_t j : {0, 1, 6, 31}) {
      const double angle = p / std::pow(10000.0, 2.0 * (j / 2) / 32.0);
      EXPECT_NEAR(w[p][j].item<double>(), j % 2 == 0 ? std::sin(angle) : std::cos(angle), 1e-6) << p << "," << j;
    }
  EXPECT_FALSE(w.requires_grad());
  auto full = make_method("full", MethodOptions{});
  full->attach(m);
  EXPECT_FALSE(w.requires_grad());
  EXPECT_TRUE(m->named_parameters()["distilbert.embeddings.word_embeddings.weight"].requires_grad());
}

TEST(ModelFamilies, ParameterNamesAreHuggingFaces) {
  auto names = [](const ModelConfig& c) {
    auto k = SequenceClassifier(c)->named_parameters().keys();
    return std::set<std::string>(k.begin(), k.end());
  };
  auto d = names(oracle_config("distilbert"));
  for (const char* n : {"distilbert.embeddings.word_embeddings.weight", "distilbert.embeddings.position_embeddings.weight",
                        "distilbert.embeddings.LayerNorm.weight", "distilbert.transformer.layer.1.attention.q_lin.weight",
                        "distilbert.transformer.layer.0.attention.out_lin.bias", "distilbert.transformer.layer.0.sa_layer_norm.weight",
                        "distilbert.transformer.layer.0.ffn.lin1.weight", "distilbert.transformer.layer.0.ffn.lin2.bias",
                        "distilbert.transformer.layer.1.output_layer_norm.bias", "pre_classifier.weight", "classifier.bias"})
    EXPECT_TRUE(d.count(n)) << n;
  EXPECT_EQ(d.size(), 4u + 2 * 16 + 4);  // embeddings, 2 blocks, head
  auto b = names(deberta_v2_variant());
  for (const char* n : {"deberta.embeddings.word_embeddings.weight", "deberta.embeddings.position_embeddings.weight",
                        "deberta.embeddings.token_type_embeddings.weight", "deberta.embeddings.embed_proj.weight",
                        "deberta.encoder.layer.0.attention.self.query_proj.weight",
                        "deberta.encoder.layer.0.attention.self.pos_key_proj.weight",
                        "deberta.encoder.layer.0.attention.self.pos_query_proj.bias",
                        "deberta.encoder.layer.1.attention.output.LayerNorm.weight",
                        "deberta.encoder.layer.1.intermediate.dense.weight", "deberta.encoder.layer.1.output.dense.weight",
                        "deberta.encoder.rel_embeddings.weight", "pooler.dense.weight", "classifier.weight"})
    EXPECT_TRUE(b.count(n)) << n;
  EXPECT_FALSE(b.count("deberta.embeddings.embed_proj.bias"));
  auto v = names(vit_config());
  for (const char* n : {"vit.embeddings.cls_token", "vit.embeddings.position_embeddings",
                        "vit.embeddings.patch_embeddings.projection.weight", "vit.embeddings.patch_embeddings.projection.bias",
                        "vit.encoder.layer.0.layernorm_before.weight", "vit.encoder.layer.0.attention.attention.query.weight",
                        "vit.encoder.layer.0.attention.attention.value.bias", "vit.encoder.layer.0.attention.output.dense.weight",
                        "vit.encoder.layer.1.intermediate.dense.weight", "vit.encoder.layer.1.output.dense.bias",
                        "vit.encoder.layer.1.layernorm_after.bias", "vit.layernorm.weight", "classifier.weight"})
    EXPECT_TRUE(v.count(n)) << n;
}

TEST(ViT, ForwardMatchesIndependentReferenceAtTheCheckpointSizeAndInterpolated) {
  TempDir d;
  ModelConfig c = vit_config();
  write_perturbed_model(c, d.path());
  LoadedModel lm = load_model(d.path());
  EXPECT_TRUE(lm.report.unexpected.empty());
  ASSERT_TRUE(lm.model->takes_pixels());
  lm.model->eval();
  torch::manual_seed(4);
  // 16×16 (the checkpoint's 4×4 grid), 24×24 (6×6: interpolated), 16×24 (non-square: interpolated).
  for (auto hw : std::vector<std::pair<int64_t, int64_t>>{{16, 16}, {24, 24}, {16, 24}}) {
    at::Tensor px = at::randn({2, 3, hw.first, hw.second});
    at::Tensor ref = oracle_logits("vit_ref.py", d.path(), {{"pixel_values", px}}, d.path());
    lm.model->to(at::kDouble);
    at::Tensor out64 = lm.model->forward_pixels(px.to(at::kDouble));
    EXPECT_LT((out64 - ref).abs().max().item<double>(), 1e-10) << hw.first << "x" << hw.second;
    lm.model->to(at::kFloat);
    at::Tensor out32 = lm.model->forward_pixels(px).to(at::kDouble);
    EXPECT_LT((out32 - ref).abs().max().item<double>(), 1e-5) << hw.first << "x" << hw.second;
  }
  // Token ids are refused with a clear error; so are wrong channel counts.
  at::Tensor ids = at::zeros({1, 4}, at::kLong);
  EXPECT_THROW(lm.model->forward(ids, ids, ids), Error);
  EXPECT_THROW(lm.model->forward_pixels(at::randn({1, 1, 16, 16})), Error);
}

TEST(ViT, LoraTrainsOnRandomPixelsReloadsAndMergesToTheSameLogits) {
  TempDir d;
  ModelConfig c = vit_config();
  c.hidden_dropout_prob = c.attention_probs_dropout_prob = 0;
  // At std 0.02 the [CLS] output hardly depends on the image; a wider init lets LoRA fit the batch.
  c.initializer_range = 0.2;
  write_perturbed_model(c, d.file("base"), 8);
  LoadedModel lm = load_model(d.file("base"));
  SequenceClassifier& m = lm.model;
  MethodOptions mo;
  mo.lora.target_modules = c.default_lora_targets();
  mo.lora.modules_to_save = c.head_modules();
  mo.lora.r = 4;
  auto method = make_method("lora", mo);
  method->attach(m);
  size_t adapted = 0;
  for (auto& p : m->named_parameters())
    if (p.key().find("lora_A") != std::string::npos) {
      ++adapted;
      EXPECT_NE(p.key().find("attention.attention."), std::string::npos) << p.key();
    }
  EXPECT_EQ(adapted, 4u);  // query and value in 2 layers
  {  // B starts at zero: give it values so ΔW ≠ 0 and A gets a gradient.
    torch::NoGradGuard g;
    for (auto& p : m->named_parameters())
      if (p.key().find("lora_B") != std::string::npos) p.value().normal_(0.0, 0.2);
  }
  torch::manual_seed(9);
  Batch b;
  b.pixel_values = at::randn({8, 3, 16, 16});
  b.labels = at::tensor({0, 1, 2, 1, 0, 2, 2, 1}, at::kLong);
  at::Tensor loss = at::cross_entropy_loss(batch_logits(m, b), b.labels);
  loss.backward();
  for (auto& p : m->named_parameters()) {
    const bool lora = p.key().find(".lora_") != std::string::npos, head = p.key().rfind("classifier.", 0) == 0;
    if (lora || head) {
      ASSERT_TRUE(p.value().grad().defined()) << p.key();
      EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0) << p.key();
    } else {
      EXPECT_FALSE(p.value().requires_grad()) << p.key();
    }
  }
  m->zero_grad();
  // The trainer's step takes pixel batches: the loss goes down on a batch it sees again and again.
  TrainConfig tc;
  tc.lr = 2e-3;
  tc.warmup_steps = 0;
  auto task = make_task("cifar10");
  StepRunner runner(m, *method, *task, tc, 20, 0);
  double first = 0, last = 0;
  for (int i = 0; i < 20; ++i) {
    auto out = runner.step(b, 1);
    if (i == 0) first = out.loss;
    last = out.loss;
  }
  EXPECT_LT(last, first * 0.8) << first << " → " << last;
  m->eval();
  at::Tensor unmerged = m->forward_pixels(b.pixel_values);
  // A PEFT adapter: reloads onto a fresh copy of the base to the same logits.
  method->save(m, lm, d.file("adapter"));
  // PEFT's SEQ_CLS wrapper would feed input_ids to ViTForImageClassification: image adapters say null.
  EXPECT_TRUE(nlohmann::json::parse(read_text_file(d.file("adapter/adapter_config.json")))["task_type"].is_null());
  LoadedModel fresh = load_model(d.file("base"));
  load_any_adapter(fresh.model, d.file("adapter"));
  fresh.model->eval();
  EXPECT_LT((fresh.model->forward_pixels(b.pixel_values) - unmerged).abs().max().item<double>(), 1e-6);
  merge_and_unload(m);
  at::Tensor merged = m->forward_pixels(b.pixel_values);
  EXPECT_LT((merged - unmerged).abs().max().item<double>(), 1e-5);
  // The merged model saves under ViT's own names only and reloads to the same logits.
  save_model(m, c, d.file("merged"));
  st::SafetensorsFile f(d.file("merged/model.safetensors"));
  for (auto& n : f.keys()) {
    EXPECT_EQ(n.find("lora"), std::string::npos) << n;
    EXPECT_TRUE(n.rfind("vit.", 0) == 0 || n.rfind("classifier.", 0) == 0) << n;
  }
  EXPECT_TRUE(f.contains("vit.encoder.layer.1.attention.attention.value.weight"));
  LoadedModel back = load_model(d.file("merged"));
  back.model->eval();
  EXPECT_LT((back.model->forward_pixels(b.pixel_values) - unmerged).abs().max().item<double>(), 1e-5);
}
