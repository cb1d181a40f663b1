// ViT (model_type "vit") with ViTForImageClassification's head. Parameter names are Hugging Face's:
// "vit.embeddings.cls_token", "vit.embeddings.position_embeddings",
// "vit.embeddings.patch_embeddings.projection.weight", "vit.encoder.layer.0.layernorm_before.weight",
// "vit.encoder.layer.0.attention.attention.query.weight", "vit.encoder.layer.0.attention.output.dense.weight",
// "vit.encoder.layer.0.intermediate.dense.weight", "vit.encoder.layer.0.output.dense.weight",
// "vit.layernorm.weight", "classifier.weight".
#pragma once
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/normalization.h>

#include <string>
#include <vector>

#include "models/bert.h"
#include "models/config.h"
#include "models/layers.h"
#include "models/task_model.h"

namespace lorakit {

struct ViTPatchEmbeddingsImpl : torch::nn::Module {
  explicit ViTPatchEmbeddingsImpl(const ModelConfig& c);
  at::Tensor forward(const at::Tensor& pixel_values);  // [B, C, H, W] → [B, (H/p)(W/p), hidden]
  torch::nn::Conv2d projection{nullptr};
};
TORCH_MODULE(ViTPatchEmbeddings);

struct ViTEmbeddingsImpl : torch::nn::Module {
  explicit ViTEmbeddingsImpl(const ModelConfig& c);
  // [CLS] + patches, plus position embeddings — bicubically interpolated to the patch grid when the
  // image size differs from the checkpoint's (transformers' interpolate_pos_encoding).
  at::Tensor forward(const at::Tensor& pixel_values);
  ModelConfig cfg;
  at::Tensor cls_token, position_embeddings;
  ViTPatchEmbeddings patch_embeddings{nullptr};
  torch::nn::Dropout dropout{nullptr};
};
TORCH_MODULE(ViTEmbeddings);

// attention.output: dense → dropout (the residual is added by the layer).
struct ViTSelfOutputImpl : torch::nn::Module {
  explicit ViTSelfOutputImpl(const ModelConfig& c, int64_t in_features);
  at::Tensor forward(const at::Tensor& x);
  AdaptableLinear dense{nullptr};
  torch::nn::Dropout dropout{nullptr};
};
TORCH_MODULE(ViTSelfOutput);

struct ViTAttentionImpl : torch::nn::Module {
  explicit ViTAttentionImpl(const ModelConfig& c);
  at::Tensor forward(const at::Tensor& x, bool first_only = false);  // first_only: [CLS]'s row alone
  BertSelfAttention attention{nullptr};  // query / key / value (qkv_bias), scaled dot-product
  ViTSelfOutput output{nullptr};
};
TORCH_MODULE(ViTAttention);

// Pre-LayerNorm block: h = x + attn(LN_before(x)); out = h + output(intermediate(LN_after(h))).
struct ViTLayerImpl : torch::nn::Module {
  explicit ViTLayerImpl(const ModelConfig& c);
  at::Tensor forward(const at::Tensor& x, bool first_only = false);  // first_only: [B, 1, H], [CLS] alone
  torch::nn::LayerNorm layernorm_before{nullptr}, layernorm_after{nullptr};
  ViTAttention attention{nullptr};
  BertIntermediate intermediate{nullptr};
  ViTSelfOutput output{nullptr};
};
TORCH_MODULE(ViTLayer);

struct ViTEncoderImpl : torch::nn::Module {
  explicit ViTEncoderImpl(const ModelConfig& c);
  // Layers [from, to) (to < 0: through the last); prune_last: the last layer at [CLS] alone.
  at::Tensor forward(const at::Tensor& x, bool prune_last = false, int64_t from = 0, int64_t to = -1);
  torch::nn::ModuleList layer{nullptr};
};
TORCH_MODULE(ViTEncoder);

struct ViTModelImpl : torch::nn::Module {
  explicit ViTModelImpl(const ModelConfig& c);
  // layernorm(encoder(embeddings)) [B, 1 + N, hidden] ([B, 1, hidden] with prune_last)
  at::Tensor forward(const at::Tensor& pixel_values, bool prune_last = false);
  ViTEmbeddings embeddings{nullptr};
  ViTEncoder encoder{nullptr};
  torch::nn::LayerNorm layernorm{nullptr};
};
TORCH_MODULE(ViTModel);

// classifier(h[:, 0]).
struct ViTClassifierImpl : TaskModelImpl {
  explicit ViTClassifierImpl(const ModelConfig& c);
  at::Tensor forward(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                     const at::Tensor& token_type_ids) override;  // throws: ViT takes pixels
  at::Tensor forward_pixels(const at::Tensor& pixel_values) override;
  // Stages: embeddings, every encoder layer (the last one's state is the [CLS] token), the final layernorm.
  std::vector<Stage> prefix_stages() override;
  at::Tensor forward_to(int64_t k, const at::Tensor& pixel_values, const at::Tensor&, const at::Tensor&) override;
  at::Tensor forward_from(int64_t k, const at::Tensor& state, const at::Tensor&, const at::Tensor& = {}) override;
  bool takes_pixels() const override { return true; }
  bool supports_last_layer_pruning() const override { return true; }
  // transformers' ViT init: truncated normal for linear / conv weights, cls_token and position
  // embeddings; zero biases; LayerNorm (1, 0).
  void init_weights() override;
  ViTModel base{nullptr};
  AdaptableLinear classifier{nullptr};
};

// preprocessor_config.json (ViTImageProcessor): resize to size.height × size.width (bilinear),
// rescale by rescale_factor, normalise with image_mean / image_std per channel.
struct ImageProcessorConfig {
  bool do_resize = true, do_rescale = true, do_normalize = true;
  int64_t height = 224, width = 224;
  double rescale_factor = 1.0 / 255.0;
  std::vector<double> image_mean = {0.5, 0.5, 0.5}, image_std = {0.5, 0.5, 0.5};

  static ImageProcessorConfig from_file(const std::string& path);
  // <model_dir>/preprocessor_config.json when it exists, else ViTImageProcessor's defaults sized to
  // the model's image_size.
  static ImageProcessorConfig for_model(const std::string& model_dir, const ModelConfig& c);
  std::string to_json_text() const;
  // images: [B, C, H, W] with values in 0..255 (any dtype) → float pixel_values for the model.
  at::Tensor preprocess(const at::Tensor& images) const;
};

}  // namespace lorakit
