#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/torch.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "core/errors.h"
#include "core/fileutil.h"
#include "core/safetensors.h"
#include "models/checkpoint.h"
#include "support/helpers.h"
#include "tuners/lora/model.h"
#include "tuners/registry.h"

using namespace lorakit;
using lorakit::testing::TempDir;

namespace {

ModelConfig tiny(const std::string& arch = "bert") {
  ModelConfig c;
  c.model_type = arch;
  c.vocab_size = 64;
  c.hidden_size = 16;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 2;
  c.intermediate_size = 24;
  c.max_position_embeddings = 32;
  c.num_labels = 2;
  if (arch == "roberta") {
    c.pad_token_id = 1;
    c.type_vocab_size = 1;
  }
  return c;
}

SequenceClassifier make_model(const ModelConfig& c, uint64_t seed = 1) {
  torch::manual_seed(seed);
  SequenceClassifier m(c);
  m->init_weights();
  return m;
}

void randomise_lora(SequenceClassifier& m) {
  torch::NoGradGuard g;
  for (auto& p : m->named_parameters())
    if (p.key().find(".lora_B.") != std::string::npos) p.value().normal_(0, 0.3);
}

at::Tensor ids_for(const ModelConfig& c) {
  torch::manual_seed(5);
  return at::randint(2, c.vocab_size, {3, 7}, at::kLong);
}

}  // namespace

TEST(Lora, TargetMatchingFollowsPeft) {
  LoraConfig c;
  EXPECT_TRUE(c.matches("bert.encoder.layer.0.attention.self.query"));
  EXPECT_TRUE(c.matches("bert.encoder.layer.11.attention.self.value"));
  EXPECT_FALSE(c.matches("bert.encoder.layer.0.attention.self.key"));
  EXPECT_FALSE(c.matches("bert.encoder.layer.0.attention.self.xquery"));  // suffix must follow a dot
  c.target_regex = R"(.*layer\.1\..*\.(query|key))";
  EXPECT_TRUE(c.matches("bert.encoder.layer.1.attention.self.key"));
  EXPECT_FALSE(c.matches("bert.encoder.layer.0.attention.self.key"));
  EXPECT_FALSE(c.matches("x.bert.encoder.layer.1.attention.self.keyz"));  // whole-path match
}

TEST(Lora, AttachFreezesBaseAndAddsPeftNamedParams) {
  ModelConfig cfg = tiny();
  auto m = make_model(cfg);
  LoraConfig lc;
  lc.r = 4;
  lc.lora_alpha = 8;
  LoraMethod method(lc);
  method.attach(m);
  EXPECT_EQ(method.layers().size(), 4u);  // query + value in 2 layers
  auto params = m->named_parameters();
  ASSERT_TRUE(params.contains("bert.encoder.layer.0.attention.self.query.lora_A.weight"));
  EXPECT_EQ(params["bert.encoder.layer.0.attention.self.query.lora_A.weight"].sizes(), (std::vector<int64_t>{4, 16}));
  EXPECT_EQ(params["bert.encoder.layer.1.attention.self.value.lora_B.weight"].sizes(), (std::vector<int64_t>{16, 4}));
  EXPECT_FALSE(params.contains("bert.encoder.layer.0.attention.self.key.lora_A.weight"));
  int64_t expect_trainable = 4 * (4 * 16 + 16 * 4) + (16 * 2 + 2);  // adapters + classifier head
  EXPECT_EQ(count_trainable(*m), expect_trainable);
  for (auto& p : params) {
    const bool should = p.key().find(".lora_") != std::string::npos || p.key().rfind("classifier.", 0) == 0;
    EXPECT_EQ(p.value().requires_grad(), should) << p.key();
  }
  // B starts at zero: the adapted model computes exactly what the base did.
  auto base = make_model(cfg);
  m->eval();
  base->eval();
  at::Tensor ids = ids_for(cfg);
  EXPECT_TRUE(at::equal(m->forward(ids, {}, {}), base->forward(ids, {}, {})));
  // Kaiming-uniform(a=√5) bound for A is 1/√fan_in.
  EXPECT_LE(params["bert.encoder.layer.0.attention.self.query.lora_A.weight"].abs().max().item<double>(), 1.0 / 4.0 + 1e-6);
  // Nothing matched: a clear error.
  LoraConfig bad;
  bad.target_modules = {"nonexistent"};
  LoraMethod bm(bad);
  auto m2 = make_model(cfg);
  EXPECT_THROW(bm.attach(m2), Error);
}

TEST(Lora, ForwardIsBasePlusScaledLowRankBranch) {
  ModelConfig cfg = tiny();
  auto m = make_model(cfg);
  LoraConfig lc;
  lc.r = 2;
  lc.lora_alpha = 6;
  lc.use_rslora = true;
  LoraMethod method(lc);
  method.attach(m);
  EXPECT_DOUBLE_EQ(lc.scaling(), 6.0 / std::sqrt(2.0));
  randomise_lora(m);
  auto& lin = *m->as<BertClassifierImpl>()->base->encoder->layer->at<BertLayerImpl>(0).attention->self->query;
  at::Tensor x = at::randn({2, 5, 16});
  lin.eval();
  auto* lora = dynamic_cast<LoraLayer*>(lin.adapter.get());
  ASSERT_NE(lora, nullptr);
  at::Tensor expect = at::linear(x, lin.weight, lin.bias) +
                      lc.scaling() * at::matmul(at::matmul(x, lora->lora_A->weight.t()), lora->lora_B->weight.t());
  EXPECT_LT((lin.forward(x) - expect).abs().max().item<double>(), 1e-5);
}

TEST(Lora, MergeUnmergeAndMergeAndUnload) {
  for (std::string arch : {"bert", "roberta"}) {
    ModelConfig cfg = tiny(arch);
    auto m = make_model(cfg);
    LoraConfig lc;
    lc.r = 4;
    lc.lora_alpha = 16;
    lc.target_modules = {"query", "value", "dense"};
    LoraMethod method(lc);
    method.attach(m);
    randomise_lora(m);
    m->eval();
    at::Tensor ids = ids_for(cfg);
    at::Tensor before = m->forward(ids, {}, {});
    auto& lin = *method.layers()[0].second->host;
    at::Tensor w0 = lin.weight.clone();
    lin.merge();
    EXPECT_FALSE(at::equal(lin.weight, w0));
    lin.unmerge();
    EXPECT_LT((lin.weight - w0).abs().max().item<double>(), 1e-6);
    merge_and_unload(m);
    for (auto& p : m->named_parameters()) EXPECT_EQ(p.key().find("lora_"), std::string::npos) << p.key();
    EXPECT_LT((m->forward(ids, {}, {}) - before).abs().max().item<double>(), 1e-5) << arch;
  }
}

TEST(Lora, AdapterSavesInPeftFormatAndReloads) {
  TempDir d;
  ModelConfig cfg = tiny();
  auto m = make_model(cfg);
  LoraConfig lc;
  lc.r = 4;
  lc.lora_alpha = 8;
  lc.lora_dropout = 0.1;
  LoraMethod method(lc);
  method.attach(m);
  randomise_lora(m);
  {
    torch::NoGradGuard g;
    m->as<BertClassifierImpl>()->classifier_linear->weight.normal_();
  }
  LoadedModel base;
  base.dir = "/some/base";
  method.save(m, base, d.path());
  auto j = nlohmann::json::parse(read_text_file(d.file("adapter_config.json")));
  EXPECT_EQ(j["peft_type"], "LORA");
  EXPECT_EQ(j["r"], 4);
  EXPECT_EQ(j["lora_alpha"], 8.0);
  EXPECT_EQ(j["target_modules"], nlohmann::json({"query", "value"}));
  EXPECT_EQ(j["modules_to_save"], nlohmann::json({"classifier"}));
  EXPECT_EQ(j["base_model_name_or_path"], "/some/base");
  st::SafetensorsFile f(d.file("adapter_model.safetensors"));
  EXPECT_TRUE(f.contains("base_model.model.bert.encoder.layer.0.attention.self.query.lora_A.weight"));
  EXPECT_TRUE(f.contains("base_model.model.bert.encoder.layer.1.attention.self.value.lora_B.weight"));
  EXPECT_TRUE(f.contains("base_model.model.classifier.weight"));
  EXPECT_TRUE(f.contains("base_model.model.classifier.bias"));
  EXPECT_EQ(f.keys().size(), 4u * 2 + 2);

  auto fresh = make_model(cfg);  // same base weights (same seed)
  auto loaded = load_adapter(fresh, d.path());
  m->eval();
  fresh->eval();
  at::Tensor ids = ids_for(cfg);
  EXPECT_TRUE(at::equal(m->forward(ids, {}, {}), fresh->forward(ids, {}, {})));

  // Corrupt adapters fail clearly.
  write_text_atomically(d.file("adapter_config.json"), "{\"peft_type\": \"LORA\"}");
  auto f2 = make_model(cfg);
  try {
    load_adapter(f2, d.path());
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing key 'r'"), std::string::npos) << e.what();
  }
}

TEST(Registry, KnowsFullAndLoraAndRejectsOthers) {
  MethodOptions o;
  EXPECT_EQ(make_method("full", o)->name(), "full");
  EXPECT_EQ(make_method("lora", o)->name(), "lora");
  try {
    make_method("nope", o);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown method 'nope'"), std::string::npos);
  }
}
