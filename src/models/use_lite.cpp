#include "models/use_lite.h"

#include <cmath>
#include <cstdlib>
#include <sstream>

#include "core/errors.h"
#include "models/tfjs.h"

namespace lorakit {

namespace {

std::string shape_str(at::IntArrayRef s) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  os << "]";
  return os.str();
}

std::string layer_prefix(int64_t i) { return "Encode/TransformerStack/Layer_" + std::to_string(i) + "/TransformerLayer/"; }

// The node ".../<suffix>" and the weight behind its input `index`.
const tfjs::WeightSpec& weight_at(const tfjs::GraphModel& g, const std::string& suffix, size_t index) {
  return g.input_weight(g.node_by_suffix(suffix), index);
}

void require_op(const tfjs::GraphModel& g, const std::string& suffix, const std::string& op) {
  const tfjs::GraphNode& n = g.node_by_suffix(suffix);
  if (n.op != op)
    throw Error("TF.js model '" + g.model_json() + "': node '" + n.name + "' is " + n.op + ", expected " + op +
                " (not the USE-lite graph this implementation follows)");
}

at::Tensor valid_mask(const at::Tensor& attention_mask) { return attention_mask.ne(0); }

}  // namespace

// ---------------------------------------------------------------- config from the graph

UseLiteConfig use_lite_config_from_graph(const tfjs::GraphModel& g) {
  UseLiteConfig c;
  const std::string& mj = g.model_json();
  auto fail = [&](const std::string& what) { return Error("TF.js model '" + mj + "': " + what); };

  const auto& emb = weight_at(g, "Encode/embedding_lookup", 0);
  if (emb.shape.size() != 2) throw fail("embedding '" + emb.name + "' is not 2-D");
  c.vocab_size = emb.shape[0];
  c.embed_dim = emb.shape[1];
  c.max_length = static_cast<int64_t>(g.scalar(weight_at(g, "ClipToMaxLength/Less", 1).name));

  const auto& inv = weight_at(g, "AddTimingSignal/TimingSignal/mul_2", 1);
  if (inv.numel() * 2 != c.embed_dim) throw fail("timing signal width does not match the embedding width");
  require_op(g, "AddTimingSignal/TimingSignal/Sin", "Sin");
  require_op(g, "AddTimingSignal/TimingSignal/Cos", "Cos");
  require_op(g, "AddTimingSignal/add", "Add");
  c.attention_mask_bias = g.scalar(weight_at(g, "DotProductAttention/attention_bias_ignore_padding/mul", 1).name);

  c.num_heads.clear();
  c.attention_scale.clear();
  int64_t d_prev = c.embed_dim;
  for (int64_t i = 0;; ++i) {
    const std::string p = layer_prefix(i);
    if (g.nodes_by_suffix(p + "MultiheadAttention/qkv_transform_single/Conv2D").empty()) break;
    const auto& qkv = weight_at(g, p + "MultiheadAttention/qkv_transform_single/Conv2D", 1);
    const auto& out = weight_at(g, p + "MultiheadAttention/output_transform_single/Conv2D", 1);
    const auto& conv1 = weight_at(g, p + "FFN/conv1/Tensordot/MatMul", 1);
    if (qkv.shape.size() != 4 || out.shape.size() != 4 || conv1.shape.size() != 2)
      throw fail("layer " + std::to_string(i) + " projections have unexpected ranks");
    const int64_t d_in = qkv.shape[2], d_out = out.shape[3];
    if (d_in != d_prev || qkv.shape[3] != 3 * d_in || out.shape[2] != d_in)
      throw fail("layer " + std::to_string(i) + " widths do not chain (qkv " + shape_str(qkv.shape) + ", output " +
                 shape_str(out.shape) + ")");
    if (i == 0) c.hidden_size = d_out;
    else if (d_out != c.hidden_size) throw fail("layers of different output widths are not supported");
    c.ffn_size = conv1.shape[1];
    const bool has_dense = !g.nodes_by_suffix(p + "AdjustResidualInput/dense/MatMul").empty();
    if (has_dense != (d_in != d_out))
      throw fail("layer " + std::to_string(i) + ": residual projection present iff the width changes, expected");
    const tfjs::GraphNode& shape = g.node_by_suffix(p + "MultiheadAttention/split_heads/split_last_dimension/Reshape/shape");
    const int64_t heads = static_cast<int64_t>(g.scalar(g.input_weight(shape, 2).name));
    const int64_t head_dim = static_cast<int64_t>(g.scalar(g.input_weight(shape, 3).name));
    if (heads * head_dim != d_in) throw fail("layer " + std::to_string(i) + ": heads × head size != width");
    c.num_heads.push_back(heads);
    c.attention_scale.push_back(g.scalar(weight_at(g, p + "MultiheadAttention/mul", 1).name));
    c.layer_norm_eps = g.scalar(weight_at(g, p + "layer_prepostprocess/layer_norm/add", 1).name);
    require_op(g, p + "FFN/conv1/Relu", "Relu");
    require_op(g, p + "MultiheadAttention/DotProductAttention/BaseDotProductAttention/Softmax", "Softmax");
    d_prev = d_out;
  }
  if (c.num_heads.empty()) throw fail("no transformer layers found (is this the USE-lite graph?)");
  require_op(g, "KonaTransformer/Sum", "Sum");
  require_op(g, "KonaTransformer/div", "RealDiv");
  const auto& tanh_w = weight_at(g, "hidden_layers/tanh_layer_0/MatMul", 1);
  require_op(g, "hidden_layers/tanh_layer_0/Tanh", "Tanh");
  if (tanh_w.shape.size() != 2 || tanh_w.shape[0] != c.hidden_size) throw fail("tanh layer has an unexpected shape");
  c.output_dim = tanh_w.shape[1];
  c.l2_eps = g.scalar(weight_at(g, "hidden_layers/l2_normalize/Maximum", 1).name);
  return c;
}

// ---------------------------------------------------------------- modules

UseLiteEmbeddingsImpl::UseLiteEmbeddingsImpl(const UseLiteConfig& c) : cfg(c) {
  word_embeddings = register_module("word_embeddings", torch::nn::Embedding(c.vocab_size, c.embed_dim));
  // Tensor2Tensor's default: geometric timescales from 1 to 1e4 (overwritten by the graph's values).
  const int64_t n = c.embed_dim / 2;
  auto idx = torch::arange(n, torch::kFloat64);
  const double inc = n > 1 ? std::log(1.0e4) / static_cast<double>(n - 1) : 0.0;
  inv_timescales = register_buffer("inv_timescales", torch::exp(idx * -inc).to(torch::kFloat32));
}

at::Tensor UseLiteEmbeddingsImpl::timing_signal(int64_t length) const {
  auto pos = torch::arange(length, inv_timescales.options());
  auto arg = (pos.unsqueeze(1) * inv_timescales.unsqueeze(0)).to(torch::kFloat64);  // product in float32
  return torch::cat({arg.sin(), arg.cos()}, 1).to(inv_timescales.scalar_type());
}

at::Tensor UseLiteEmbeddingsImpl::forward(const at::Tensor& input_ids, const at::Tensor& valid) {
  auto ids = torch::where(valid, input_ids, torch::zeros_like(input_ids));
  if (ids.numel() > 0) {
    const int64_t lo = ids.min().item<int64_t>(), hi = ids.max().item<int64_t>();
    if (lo < 0 || hi >= cfg.vocab_size)
      throw Error("USE-lite: token id " + std::to_string(lo < 0 ? lo : hi) + " is outside the vocabulary [0, " +
                  std::to_string(cfg.vocab_size) + ")");
  }
  auto e = word_embeddings(ids);                                        // [B, T, E]
  auto timing = timing_signal(ids.size(1)).to(e.device()).unsqueeze(0);  // [1, T, E]
  auto vf = valid.unsqueeze(-1).to(e.scalar_type());
  // The graph: Scatter(E[id]) + Scatter(GatherNd(Scatter(E[id])) + timing): e + (e + timing).
  return (e + (e + timing)) * vf;
}

UseLiteAttentionImpl::UseLiteAttentionImpl(const UseLiteConfig& c, int64_t din, int64_t dout, int64_t h, double s)
    : d_in(din), heads(h), scale(s), attention_dropout(c.attention_dropout) {
  layer_norm = register_module(
      "layer_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({din}).eps(c.layer_norm_eps)));
  qkv = register_module("qkv", AdaptableLinear(din, 3 * din));
  output = register_module("output", AdaptableLinear(din, dout));
}

at::Tensor UseLiteAttentionImpl::forward(const at::Tensor& x, const at::Tensor& mask_bias) {
  const int64_t B = x.size(0), T = x.size(1), hd = d_in / heads;
  auto h = layer_norm(x);
  auto parts = qkv(h).split(d_in, -1);
  auto shape = [&](const at::Tensor& t) { return t.reshape({B, T, heads, hd}).transpose(1, 2); };
  auto q = shape(parts[0]) * scale, k = shape(parts[1]), v = shape(parts[2]);
  auto scores = torch::matmul(q, k.transpose(-1, -2)) + mask_bias;  // [B, H, T, T]
  auto probs = torch::softmax(scores, -1);
  if (attention_dropout > 0) probs = torch::dropout(probs, attention_dropout, is_training());
  auto ctx = torch::matmul(probs, v).transpose(1, 2).reshape({B, T, d_in});
  return output(ctx);
}

UseLiteFFNImpl::UseLiteFFNImpl(const UseLiteConfig& c, int64_t d) {
  layer_norm =
      register_module("layer_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d}).eps(c.layer_norm_eps)));
  conv1 = register_module("conv1", AdaptableLinear(d, c.ffn_size));
  conv2 = register_module("conv2", AdaptableLinear(c.ffn_size, d));
}

at::Tensor UseLiteFFNImpl::forward(const at::Tensor& x) { return conv2(torch::relu(conv1(layer_norm(x)))); }

UseLiteLayerImpl::UseLiteLayerImpl(const UseLiteConfig& c, int64_t din, int64_t dout, int64_t h, double s)
    : dropout(c.dropout) {
  attention = register_module("attention", UseLiteAttention(c, din, dout, h, s));
  if (din != dout) dense = register_module("dense", AdaptableLinear(din, dout));
  ffn = register_module("ffn", UseLiteFFN(c, dout));
}

at::Tensor UseLiteLayerImpl::forward(const at::Tensor& x, const at::Tensor& valid_f, const at::Tensor& mask_bias) {
  auto a = attention(x, mask_bias);
  if (dropout > 0) a = torch::dropout(a, dropout, is_training());
  auto r = dense ? dense(x) * valid_f : x;
  auto y = a + r;
  auto f = ffn(y) * valid_f;
  if (dropout > 0) f = torch::dropout(f, dropout, is_training());
  return f + y;
}

UseLiteEncoderImpl::UseLiteEncoderImpl(const UseLiteConfig& c) {
  layer = register_module("layer", torch::nn::ModuleList());
  int64_t d = c.embed_dim;
  for (int64_t i = 0; i < c.num_layers(); ++i) {
    layer->push_back(UseLiteLayer(c, d, c.hidden_size, c.num_heads[i], c.attention_scale[i]));
    d = c.hidden_size;
  }
}

UseLiteModelImpl::UseLiteModelImpl(const UseLiteConfig& c) : cfg(c) {
  if (c.attention_scale.size() != c.num_heads.size())
    throw Error("USE-lite config: attention_scale and num_heads differ in length");
  embeddings = register_module("embeddings", UseLiteEmbeddings(c));
  encoder = register_module("encoder", UseLiteEncoder(c));
  tanh_layer = register_module("tanh_layer", AdaptableLinear(c.hidden_size, c.output_dim));
}

at::Tensor UseLiteModelImpl::embed(const at::Tensor& input_ids, const at::Tensor& attention_mask) {
  if (input_ids.dim() != 2 || attention_mask.sizes() != input_ids.sizes())
    throw Error("USE-lite: input_ids and attention_mask must both be [B, T] (got " + shape_str(input_ids.sizes()) +
                " and " + shape_str(attention_mask.sizes()) + ")");
  const int64_t T = std::min<int64_t>(input_ids.size(1), cfg.max_length);
  return embeddings(input_ids.slice(1, 0, T).to(torch::kLong), valid_mask(attention_mask.slice(1, 0, T)));
}

at::Tensor UseLiteModelImpl::run_layers(at::Tensor x, const at::Tensor& attention_mask, int64_t from, int64_t to) {
  const int64_t T = x.size(1);
  auto valid = valid_mask(attention_mask.slice(1, 0, T));
  auto valid_f = valid.unsqueeze(-1).to(x.scalar_type());
  auto mask_bias = (1.0 - valid.to(x.scalar_type())).mul(cfg.attention_mask_bias).view({x.size(0), 1, 1, T});
  for (int64_t i = from; i < to; ++i) x = encoder->layer->ptr(i)->as<UseLiteLayerImpl>()->forward(x, valid_f, mask_bias);
  return x;
}

at::Tensor UseLiteModelImpl::encode(const at::Tensor& input_ids, const at::Tensor& attention_mask) {
  return run_layers(embed(input_ids, attention_mask), attention_mask, 0, cfg.num_layers());
}

at::Tensor UseLiteModelImpl::pool(const at::Tensor& hidden, const at::Tensor& attention_mask) const {
  const int64_t T = hidden.size(1);
  auto vf = valid_mask(attention_mask.slice(1, 0, T)).to(hidden.scalar_type()).unsqueeze(-1);
  auto len = vf.sum(1).clamp_min(1.0);
  return (hidden * vf).sum(1) / len;
}

at::Tensor UseLiteModelImpl::forward(const at::Tensor& input_ids, const at::Tensor& attention_mask) {
  return head(encode(input_ids, attention_mask), attention_mask);
}

at::Tensor UseLiteModelImpl::head(const at::Tensor& hidden, const at::Tensor& attention_mask) {
  auto pooled = pool(hidden, attention_mask);
  auto t = torch::tanh(tanh_layer(pooled));
  return t * torch::rsqrt(t.square().sum(-1, true).clamp_min(cfg.l2_eps));
}

// ---------------------------------------------------------------- loading

UseLiteModel load_use_lite(const std::string& model_dir) { return load_use_lite(tfjs::GraphModel::load(model_dir)); }

UseLiteModel load_use_lite(const tfjs::GraphModel& g) {
  const UseLiteConfig cfg = use_lite_config_from_graph(g);
  UseLiteModel model(cfg);
  const std::string& mj = g.model_json();

  torch::NoGradGuard no_grad;
  // Copies weight `w` (reshaped / transposed as given) into `dst`, checking shapes.
  auto put = [&](at::Tensor dst, const tfjs::WeightSpec& w, const std::string& module_path, bool kernel) {
    at::Tensor t = g.tensor(w.name);
    if (t.scalar_type() != torch::kFloat32)
      throw Error("TF.js model '" + mj + "': weight '" + w.name + "' is not float32");
    // The shape the graph must store: kernels are [in, out] (a 1×1 conv kernel [1, 1, in, out]).
    std::vector<int64_t> want = dst.sizes().vec();
    if (kernel) std::swap(want[0], want[1]);
    bool fits = t.numel() == dst.numel();
    if (fits && kernel) {
      fits = t.dim() >= 2 && t.size(-2) == want[0] && t.size(-1) == want[1];
      if (fits) t = t.reshape({want[0], want[1]}).t();
    } else if (fits) {
      fits = dst.dim() == 1 || t.sizes() == dst.sizes();
      if (fits) t = t.reshape(dst.sizes());
    }
    if (!fits)
      throw Error("TF.js model '" + mj + "': weight '" + w.name + "' has shape " + shape_str(w.shape) + ", expected " +
                  shape_str(want) + " for " + module_path + (kernel ? " (a kernel, stored [in, out])" : ""));
    dst.copy_(t);
  };

  put(model->embeddings->word_embeddings->weight, weight_at(g, "Encode/embedding_lookup", 0),
      "embeddings.word_embeddings.weight", false);
  put(model->embeddings->inv_timescales, weight_at(g, "AddTimingSignal/TimingSignal/mul_2", 1),
      "embeddings.inv_timescales", false);

  for (int64_t i = 0; i < cfg.num_layers(); ++i) {
    const std::string p = layer_prefix(i);
    const std::string mp = "encoder.layer." + std::to_string(i) + ".";
    auto layer = model->encoder->layer[i]->as<UseLiteLayer>();
    auto& att = layer->attention;
    put(att->layer_norm->weight, weight_at(g, p + "layer_prepostprocess/layer_norm/mul", 0),
        mp + "attention.layer_norm.weight", false);
    put(att->layer_norm->bias, weight_at(g, p + "layer_prepostprocess/layer_norm/add_1", 1),
        mp + "attention.layer_norm.bias", false);
    put(att->qkv->weight, weight_at(g, p + "MultiheadAttention/qkv_transform_single/Conv2D", 1),
        mp + "attention.qkv.weight", true);
    put(att->qkv->bias, weight_at(g, p + "MultiheadAttention/qkv_transform_single/BiasAdd", 1),
        mp + "attention.qkv.bias", false);
    put(att->output->weight, weight_at(g, p + "MultiheadAttention/output_transform_single/Conv2D", 1),
        mp + "attention.output.weight", true);
    put(att->output->bias, weight_at(g, p + "MultiheadAttention/output_transform_single/BiasAdd", 1),
        mp + "attention.output.bias", false);
    if (layer->dense) {
      put(layer->dense->weight, weight_at(g, p + "AdjustResidualInput/dense/MatMul", 1), mp + "dense.weight", true);
      put(layer->dense->bias, weight_at(g, p + "AdjustResidualInput/dense/BiasAdd", 1), mp + "dense.bias", false);
    }
    auto& ffn = layer->ffn;
    put(ffn->layer_norm->weight, weight_at(g, p + "FFN/layer_prepostprocess/layer_norm/mul", 0),
        mp + "ffn.layer_norm.weight", false);
    put(ffn->layer_norm->bias, weight_at(g, p + "FFN/layer_prepostprocess/layer_norm/add_1", 1),
        mp + "ffn.layer_norm.bias", false);
    put(ffn->conv1->weight, weight_at(g, p + "FFN/conv1/Tensordot/MatMul", 1), mp + "ffn.conv1.weight", true);
    put(ffn->conv1->bias, weight_at(g, p + "FFN/conv1/BiasAdd", 1), mp + "ffn.conv1.bias", false);
    put(ffn->conv2->weight, weight_at(g, p + "FFN/conv2/Tensordot/MatMul", 1), mp + "ffn.conv2.weight", true);
    put(ffn->conv2->bias, weight_at(g, p + "FFN/conv2/BiasAdd", 1), mp + "ffn.conv2.bias", false);
  }
  put(model->tanh_layer->weight, weight_at(g, "hidden_layers/tanh_layer_0/MatMul", 1), "tanh_layer.weight", true);
  put(model->tanh_layer->bias, weight_at(g, "hidden_layers/tanh_layer_0/BiasAdd", 1), "tanh_layer.bias", false);
  model->eval();
  return model;
}

std::string use_lite_default_dir() {
  const char* cache = std::getenv("LORAKIT_CACHE");
  std::string base;
  if (cache && *cache) {
    base = cache;
  } else {
    const char* home = std::getenv("HOME");
    base = std::string(home && *home ? home : ".") + "/.cache/lorakit";
  }
  return base + "/use-lite/model";
}

}  // namespace lorakit
