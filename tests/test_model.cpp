#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/torch.h>

#include <functional>
#include <nlohmann/json.hpp>

#include "core/errors.h"
#include "core/fileutil.h"
#include "core/safetensors.h"
#include "models/checkpoint.h"
#include "support/helpers.h"
#include "support/tiny_model.h"

using namespace lorakit;
using lorakit::testing::TempDir;

// Oracle-sized models and a 9-token padded batch (tests/support/tiny_model.h).
using lorakit::testing::oracle_config;
using lorakit::testing::padded_inputs;
using lorakit::testing::write_perturbed_model;

class ModelOracle : public ::testing::TestWithParam<std::string> {};

TEST_P(ModelOracle, ForwardMatchesIndependentReference) {
  TempDir d;
  ModelConfig c = oracle_config(GetParam());
  write_perturbed_model(c, d.path());
  LoadedModel lm = load_model(d.path());
  EXPECT_TRUE(lm.report.newly_initialized.empty());
  EXPECT_TRUE(lm.report.unexpected.empty());
  auto in = padded_inputs(c, 9);
  at::Tensor ref = lorakit::testing::oracle_logits(
      "bert_ref.py", d.path(), {{"input_ids", in.ids}, {"attention_mask", in.mask}, {"token_type_ids", in.tt}}, d.path());
  lm.model->eval();
  // fp64: must agree to 1e-10; fp32: to 1e-5.
  lm.model->to(at::kDouble);
  at::Tensor out64 = lm.model->forward(in.ids, in.mask, in.tt);
  EXPECT_LT((out64 - ref).abs().max().item<double>(), 1e-10);
  lm.model->to(at::kFloat);
  at::Tensor out32 = lm.model->forward(in.ids, in.mask, in.tt).to(at::kDouble);
  EXPECT_LT((out32 - ref).abs().max().item<double>(), 1e-5);
  // Padding really is masked: changing padded token ids leaves the logits alone.
  at::Tensor ids2 = in.ids.clone();
  ids2.index_put_({2, at::indexing::Slice(5, 9)}, 7);
  at::Tensor mask_only = lm.model->forward(ids2, in.mask, in.tt).to(at::kDouble);
  if (!c.is_roberta()) EXPECT_LT((mask_only - out32).abs().max().item<double>(), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Families, ModelOracle, ::testing::Values("bert", "roberta"));

TEST(Model, ParameterNamesAreHuggingFaces) {
  auto names = SequenceClassifier(oracle_config("bert"))->named_parameters().keys();
  auto has = [&](const std::string& n) { return std::find(names.begin(), names.end(), n) != names.end(); };
  EXPECT_TRUE(has("bert.embeddings.word_embeddings.weight"));
  EXPECT_TRUE(has("bert.embeddings.LayerNorm.weight"));
  EXPECT_TRUE(has("bert.encoder.layer.0.attention.self.query.weight"));
  EXPECT_TRUE(has("bert.encoder.layer.1.attention.output.LayerNorm.bias"));
  EXPECT_TRUE(has("bert.encoder.layer.1.intermediate.dense.weight"));
  EXPECT_TRUE(has("bert.encoder.layer.1.output.dense.bias"));
  EXPECT_TRUE(has("bert.pooler.dense.weight"));
  EXPECT_TRUE(has("classifier.weight"));
  auto rnames = SequenceClassifier(oracle_config("roberta"))->named_parameters().keys();
  auto rhas = [&](const std::string& n) { return std::find(rnames.begin(), rnames.end(), n) != rnames.end(); };
  EXPECT_TRUE(rhas("roberta.encoder.layer.0.attention.self.value.weight"));
  EXPECT_TRUE(rhas("classifier.dense.weight"));
  EXPECT_TRUE(rhas("classifier.out_proj.bias"));
  EXPECT_FALSE(rhas("roberta.pooler.dense.weight"));
}

TEST(Checkpoint, ShardedAndPytorchBinLoadTheSameWeights) {
  TempDir d;
  ModelConfig c = oracle_config("bert");
  write_perturbed_model(c, d.path());
  LoadedModel a = load_model(d.path());
  auto in = padded_inputs(c, 9);
  a.model->eval();
  at::Tensor ref = a.model->forward(in.ids, in.mask, in.tt);

  // Sharded: split the tensors over two files plus an index.
  const std::string sd = d.file("sharded");
  make_dirs(sd);
  auto all = st::load_file(d.file("model.safetensors"));
  st::NamedTensors s1(all.begin(), all.begin() + all.size() / 2), s2(all.begin() + all.size() / 2, all.end());
  st::save_file(sd + "/model-00001-of-00002.safetensors", s1);
  st::save_file(sd + "/model-00002-of-00002.safetensors", s2);
  nlohmann::json idx;
  for (auto& [n, _] : s1) idx["weight_map"][n] = "model-00001-of-00002.safetensors";
  for (auto& [n, _] : s2) idx["weight_map"][n] = "model-00002-of-00002.safetensors";
  write_text_atomically(sd + "/model.safetensors.index.json", idx.dump());
  write_text_atomically(sd + "/config.json", read_text_file(d.file("config.json")));
  LoadedModel b = load_model(sd);
  b.model->eval();
  EXPECT_TRUE(at::allclose(b.model->forward(in.ids, in.mask, in.tt), ref, 0, 0));

  // pytorch_model.bin written by torch.save (python3-torch), bare-encoder names without "bert." and
  // old-style LayerNorm gamma/beta, fp16 storage.
  const std::string bd = d.file("bin");
  make_dirs(bd);
  write_text_atomically(bd + "/config.json", read_text_file(d.file("config.json")));
  auto r = lorakit::testing::run_command(
      "cd " + lorakit::testing::source_dir() + "/tests/oracle && /usr/bin/python3 -c \"import torch, st_io; "
      "w = st_io.load('" + d.file("model.safetensors") + "'); "
      "w = {(k[5:] if k.startswith('bert.') else k).replace('LayerNorm.weight','LayerNorm.gamma')"
      ".replace('LayerNorm.bias','LayerNorm.beta'): v.half() for k, v in w.items()}; "
      "torch.save(w, '" + bd + "/pytorch_model.bin')\"");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  LoadedModel bin = load_model(bd);
  EXPECT_EQ(bin.source_dtypes.at("bert.encoder.layer.0.attention.self.query.weight"), at::kHalf);
  bin.model->eval();
  // fp16 storage rounds the weights: close, not identical.
  EXPECT_LT((bin.model->forward(in.ids, in.mask, in.tt) - ref).abs().max().item<double>(), 5e-2);
}

TEST(Checkpoint, ErrorsNameTheProblem) {
  TempDir d;
  ModelConfig c = oracle_config("bert");
  write_perturbed_model(c, d.path());
  auto expect_msg = [](const std::function<void()>& f, const std::string& needle) {
    try {
      f();
      FAIL() << "expected error with '" << needle << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  // Missing config key.
  const std::string cfg = read_text_file(d.file("config.json"));
  auto j = nlohmann::json::parse(cfg);
  j.erase("hidden_size");
  write_text_atomically(d.file("config.json"), j.dump());
  expect_msg([&] { load_model(d.path()); }, "missing required key 'hidden_size'");
  // Wrong type.
  j = nlohmann::json::parse(cfg);
  j["num_hidden_layers"] = "two";
  write_text_atomically(d.file("config.json"), j.dump());
  expect_msg([&] { load_model(d.path()); }, "'num_hidden_layers' has the wrong type");
  // Shape mismatch between config and weights.
  j = nlohmann::json::parse(cfg);
  j["intermediate_size"] = 64;
  write_text_atomically(d.file("config.json"), j.dump());
  expect_msg([&] { load_model(d.path()); }, "shape mismatch for 'bert.encoder.layer.0.intermediate.dense.weight'");
  // Config says more layers than the weights hold.
  j = nlohmann::json::parse(cfg);
  j["num_hidden_layers"] = 3;
  write_text_atomically(d.file("config.json"), j.dump());
  expect_msg([&] { load_model(d.path()); }, "missing weight 'bert.encoder.layer.2.");
  // Not JSON.
  write_text_atomically(d.file("config.json"), "{ nope");
  expect_msg([&] { load_model(d.path()); }, "config.json: not valid JSON");
  // No weights at all.
  TempDir e;
  write_text_atomically(e.file("config.json"), cfg);
  expect_msg([&] { load_model(e.path()); }, "no weights found");
  expect_msg([&] { load_model("/no/such/model"); }, "does not exist");
}

TEST(Checkpoint, NewHeadSizeIsReinitialised) {
  TempDir d;
  ModelConfig c = oracle_config("bert");
  write_perturbed_model(c, d.path());
  LoadOptions o;
  o.num_labels = 1;
  o.regression = true;
  LoadedModel lm = load_model(d.path(), o);
  EXPECT_TRUE(lm.config.is_regression());
  EXPECT_EQ(lm.model->as<BertClassifierImpl>()->classifier_linear->weight.size(0), 1);
  ASSERT_EQ(lm.report.newly_initialized.size(), 2u);  // classifier weight + bias
}

TEST(Model, BadIdsAreClearErrorsAndRobertaIgnoresSegments) {
  ModelConfig c = oracle_config("bert");
  SequenceClassifier m(c);
  m->eval();
  at::Tensor ids = at::full({1, 4}, c.vocab_size, at::kLong);  // one past the end
  try {
    m->forward(ids, {}, {});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("outside the model's vocabulary"), std::string::npos) << e.what();
  }
  // RoBERTa has one token type: segment ids from a pair tokenizer are ignored, not an index error.
  ModelConfig rc = oracle_config("roberta");
  SequenceClassifier r(rc);
  r->eval();
  at::Tensor rid = at::randint(3, rc.vocab_size, {2, 6}, at::kLong);
  at::Tensor tt = at::ones({2, 6}, at::kLong);
  EXPECT_TRUE(at::equal(r->forward(rid, {}, tt), r->forward(rid, {}, {})));
}
