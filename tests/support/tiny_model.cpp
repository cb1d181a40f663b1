#include "support/tiny_model.h"

#include <ATen/ATen.h>
#include <torch/torch.h>

#include "models/checkpoint.h"
#include "support/helpers.h"
#include "tuners/registry.h"

namespace lorakit::testing {

ModelConfig tiny_bert_config(int64_t hidden, int64_t layers, int64_t intermediate) {
  ModelConfig c;
  c.vocab_size = 60;
  c.hidden_size = hidden;
  c.num_hidden_layers = layers;
  c.num_attention_heads = 2;
  c.intermediate_size = intermediate;
  c.max_position_embeddings = 32;
  c.hidden_dropout_prob = 0;
  c.attention_probs_dropout_prob = 0;
  c.num_labels = 2;
  return c;
}

SequenceClassifier tiny_bert(const ModelConfig& c, uint64_t seed) {
  torch::manual_seed(seed);
  SequenceClassifier m(c);
  m->init_weights();
  return m;
}

Batch random_batch(uint64_t seed, int64_t batch, int64_t len) {
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(seed);
  Batch b;
  b.input_ids = at::randint(5, 60, {batch, len}, g, at::kLong);
  b.attention_mask = at::ones({batch, len}, at::kLong);
  b.token_type_ids = at::zeros({batch, len}, at::kLong);
  b.labels = at::randint(0, 2, {batch}, g, at::kLong);
  return b;
}

ModelConfig small_vit_config() {
  ModelConfig c = oracle_config("vit");
  c.vocab_size = 1;
  c.image_size = 16;
  c.patch_size = 4;
  c.num_channels = 3;
  c.max_position_embeddings = 17;
  return c;
}

ModelConfig oracle_config(const std::string& type) {
  ModelConfig c;
  c.model_type = type;
  c.vocab_size = 101;
  c.hidden_size = 32;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.intermediate_size = 48;
  c.max_position_embeddings = 40;
  c.num_labels = 3;
  if (type == "roberta") {
    c.pad_token_id = 1;
    c.type_vocab_size = 1;
    c.layer_norm_eps = 1e-5;
  } else if (type == "distilbert") {
    c.type_vocab_size = 1;
  } else if (type == "deberta-v2") {
    c.layer_norm_eps = 1e-7;
    c.type_vocab_size = 0;
  }
  return c;
}

void write_perturbed_model(const ModelConfig& c, const std::string& dir, uint64_t seed) {
  torch::manual_seed(static_cast<int64_t>(seed));
  SequenceClassifier m(c);
  m->init_weights();
  torch::NoGradGuard g;
  for (auto& p : m->named_parameters()) {
    const std::string& k = p.key();
    if (k.find("LayerNorm") != std::string::npos || k.find("layer_norm") != std::string::npos ||
        k.find("layernorm") != std::string::npos || k.find(".bias") != std::string::npos ||
        k.find("rel_embeddings") != std::string::npos || k.find("cls_token") != std::string::npos)
      p.value().add_(at::randn_like(p.value()) * 0.1);
    if (k.find("position_embeddings") != std::string::npos) p.value().add_(at::randn_like(p.value()) * 0.5);
  }
  save_model(m, c, dir);
}

PaddedInputs padded_inputs(const ModelConfig& c, int64_t T) {
  torch::manual_seed(11);
  const int64_t B = 3;
  at::Tensor ids = at::randint(5, c.vocab_size, {B, T}, at::kLong);
  at::Tensor mask = at::ones({B, T}, at::kLong);
  mask.index_put_({1, at::indexing::Slice(T - 3, T)}, 0);
  mask.index_put_({2, at::indexing::Slice(T - T / 2, T)}, 0);
  ids.masked_fill_(mask.eq(0), c.pad_token_id);
  at::Tensor tt = at::zeros({B, T}, at::kLong);
  if (c.type_vocab_size > 1) tt.index_put_({at::indexing::Slice(), at::indexing::Slice(T / 3, T)}, 1);
  return {ids, mask, tt};
}

at::Tensor oracle_logits(const std::string& script, const std::string& model_dir, const st::NamedTensors& inputs,
                         const std::string& tmp_dir) {
  const std::string in = tmp_dir + "/inputs.safetensors", out = tmp_dir + "/ref.safetensors";
  st::save_file(in, inputs);
  auto r = run_oracle(script, model_dir + " " + in + " " + out);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  return st::SafetensorsFile(out).load("logits");
}

double reload_logit_difference(SequenceClassifier& trained, const std::string& dir, std::string* method_name) {
  SequenceClassifier fresh = tiny_bert(trained->cfg, 99);
  {
    torch::NoGradGuard g;
    auto src = trained->named_parameters();
    for (auto& p : fresh->named_parameters())
      if (src.contains(p.key())) p.value().copy_(src[p.key()]);
  }
  auto loaded = load_any_adapter(fresh, dir);
  if (method_name) *method_name = loaded->name();
  trained->eval();
  fresh->eval();
  Batch b = random_batch(7);
  at::Tensor want = trained->forward(b.input_ids, b.attention_mask, b.token_type_ids);
  at::Tensor got = fresh->forward(b.input_ids, b.attention_mask, b.token_type_ids);
  return (want - got).abs().max().item<double>();
}

}  // namespace lorakit::testing
