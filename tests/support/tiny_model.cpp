#include "support/tiny_model.h"

#include <ATen/ATen.h>
#include <torch/torch.h>

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
