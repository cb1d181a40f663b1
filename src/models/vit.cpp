#include "models/vit.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "core/errors.h"
#include "core/fileutil.h"

namespace lorakit {
namespace F = torch::nn::functional;

ViTPatchEmbeddingsImpl::ViTPatchEmbeddingsImpl(const ModelConfig& c) {
  projection = register_module(
      "projection", torch::nn::Conv2d(torch::nn::Conv2dOptions(c.num_channels, c.hidden_size, c.patch_size).stride(c.patch_size)));
}

at::Tensor ViTPatchEmbeddingsImpl::forward(const at::Tensor& x) {
  return projection(x).flatten(2).transpose(1, 2);  // [B, hidden, h, w] → [B, h·w, hidden]
}

ViTEmbeddingsImpl::ViTEmbeddingsImpl(const ModelConfig& c) : cfg(c) {
  const int64_t grid = c.image_size / c.patch_size;
  cls_token = register_parameter("cls_token", torch::zeros({1, 1, c.hidden_size}));
  position_embeddings = register_parameter("position_embeddings", torch::zeros({1, grid * grid + 1, c.hidden_size}));
  patch_embeddings = register_module("patch_embeddings", ViTPatchEmbeddings(c));
  dropout = register_module("dropout", torch::nn::Dropout(c.hidden_dropout_prob));
}

at::Tensor ViTEmbeddingsImpl::forward(const at::Tensor& pixels) {
  if (pixels.dim() != 4)
    throw Error("pixel_values must be [batch, channels, height, width], got " + std::to_string(pixels.dim()) + " dims");
  if (!at::isFloatingType(pixels.scalar_type())) throw Error("pixel_values must be floating point");
  if (pixels.size(1) != cfg.num_channels)
    throw Error("pixel_values have " + std::to_string(pixels.size(1)) + " channels, the model expects " +
                std::to_string(cfg.num_channels) + " (num_channels)");
  const int64_t H = pixels.size(2), W = pixels.size(3);
  if (H < cfg.patch_size || W < cfg.patch_size)
    throw Error("image of " + std::to_string(H) + "x" + std::to_string(W) + " is smaller than one patch (" +
                std::to_string(cfg.patch_size) + ")");
  at::Tensor patches = patch_embeddings(pixels.to(cls_token.scalar_type()));  // [B, N, hidden]
  const int64_t B = patches.size(0), N = patches.size(1), D = patches.size(2);
  at::Tensor x = at::cat({cls_token.expand({B, 1, D}), patches}, 1);
  const int64_t n0 = position_embeddings.size(1) - 1;
  at::Tensor pos = position_embeddings;
  if (N != n0 || H != W) {
    // transformers >= 4.45 interpolate_pos_encoding: the patch grid as an image, bicubic, align_corners False.
    const int64_t g0 = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(n0))));
    if (g0 * g0 != n0) throw Error("position_embeddings do not hold a square patch grid");
    at::Tensor grid = position_embeddings.slice(1, 1).reshape({1, g0, g0, D}).permute({0, 3, 1, 2});
    grid = F::interpolate(grid, F::InterpolateFuncOptions()
                                    .size(std::vector<int64_t>{H / cfg.patch_size, W / cfg.patch_size})
                                    .mode(torch::kBicubic)
                                    .align_corners(false));
    pos = at::cat({position_embeddings.slice(1, 0, 1), grid.permute({0, 2, 3, 1}).reshape({1, -1, D})}, 1);
  }
  return dropout(x + pos);
}

ViTSelfOutputImpl::ViTSelfOutputImpl(const ModelConfig& c, int64_t in_features) {
  dense = register_module("dense", AdaptableLinear(in_features, c.hidden_size));
  dropout = register_module("dropout", torch::nn::Dropout(c.hidden_dropout_prob));
}

at::Tensor ViTSelfOutputImpl::forward(const at::Tensor& x) { return dropout(dense(x)); }

ViTAttentionImpl::ViTAttentionImpl(const ModelConfig& c) {
  attention = register_module("attention", BertSelfAttention(c));
  output = register_module("output", ViTSelfOutput(c, c.hidden_size));
}

at::Tensor ViTAttentionImpl::forward(const at::Tensor& x, bool first_only) {
  return output(attention(x, at::Tensor(), first_only));
}

ViTLayerImpl::ViTLayerImpl(const ModelConfig& c) {
  auto ln = [&] { return torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.hidden_size}).eps(c.layer_norm_eps)); };
  attention = register_module("attention", ViTAttention(c));
  intermediate = register_module("intermediate", BertIntermediate(c));
  output = register_module("output", ViTSelfOutput(c, c.intermediate_size));
  layernorm_before = register_module("layernorm_before", ln());
  layernorm_after = register_module("layernorm_after", ln());
}

at::Tensor ViTLayerImpl::forward(const at::Tensor& x, bool first_only) {
  at::Tensor h = attention(layernorm_before(x), first_only) + (first_only ? x.narrow(1, 0, 1) : x);
  return output(intermediate(layernorm_after(h))) + h;
}

ViTEncoderImpl::ViTEncoderImpl(const ModelConfig& c) {
  layer = register_module("layer", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) layer->push_back(ViTLayer(c));
}

at::Tensor ViTEncoderImpl::forward(const at::Tensor& x, bool prune_last, int64_t from, int64_t to) {
  at::Tensor h = x;
  const int64_t L = static_cast<int64_t>(layer->size());
  for (int64_t i = from; i < (to < 0 ? L : to); ++i)
    h = layer->ptr(i)->as<ViTLayerImpl>()->forward(h, prune_last && i + 1 == L);
  return h;
}

ViTModelImpl::ViTModelImpl(const ModelConfig& c) {
  embeddings = register_module("embeddings", ViTEmbeddings(c));
  encoder = register_module("encoder", ViTEncoder(c));
  layernorm = register_module("layernorm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.hidden_size}).eps(c.layer_norm_eps)));
}

at::Tensor ViTModelImpl::forward(const at::Tensor& pixels, bool prune_last) {
  return layernorm(encoder->forward(embeddings(pixels), prune_last));
}

ViTClassifierImpl::ViTClassifierImpl(const ModelConfig& c) : TaskModelImpl(c) {
  base = register_module("vit", ViTModel(c));
  classifier = register_module("classifier", AdaptableLinear(c.hidden_size, c.num_labels));
}

at::Tensor ViTClassifierImpl::forward(const at::Tensor&, const at::Tensor&, const at::Tensor&) {
  throw Error("model_type 'vit' takes pixel values (an image task), not token ids");
}

at::Tensor ViTClassifierImpl::forward_pixels(const at::Tensor& pixels) {
  return classifier(base(pixels, prune_last_layer).select(1, 0));
}

std::vector<TaskModelImpl::Stage> ViTClassifierImpl::prefix_stages() {
  std::vector<Stage> st;
  st.push_back({"vit.embeddings", base->embeddings.ptr(), true});
  const int64_t L = static_cast<int64_t>(base->encoder->layer->size());
  for (int64_t i = 0; i < L; ++i) st.push_back({"vit.encoder.layer." + std::to_string(i), base->encoder->layer->ptr(i), i + 1 < L});
  st.push_back({"vit.layernorm", base->layernorm.ptr(), false});
  return st;
}

at::Tensor ViTClassifierImpl::forward_to(int64_t k, const at::Tensor& pixels, const at::Tensor&, const at::Tensor&) {
  const int64_t L = static_cast<int64_t>(base->encoder->layer->size());
  if (k < 1 || k > L + 2) throw Error("forward_to: cut " + std::to_string(k) + " is not in 1.." + std::to_string(L + 2));
  at::Tensor h = base->encoder->forward(base->embeddings(pixels), prune_last_layer, 0, std::min(k - 1, L));
  if (k - 1 < L) return h;
  at::Tensor first = h.select(1, 0);  // layernorm is per token: [CLS] alone gives what the head reads
  return k == L + 1 ? first : base->layernorm(first);
}

at::Tensor ViTClassifierImpl::forward_from(int64_t k, const at::Tensor& state, const at::Tensor&, const at::Tensor&) {
  const int64_t L = static_cast<int64_t>(base->encoder->layer->size());
  at::Tensor h = state;
  if (k <= L) h = base->encoder->forward(h, prune_last_layer, k - 1).select(1, 0);
  if (k <= L + 1) h = base->layernorm(h);
  return classifier(h);
}

void ViTClassifierImpl::init_weights() {
  init_hf_weights(*this, cfg.initializer_range, /*truncated=*/true);
  torch::NoGradGuard g;
  // trunc_normal_(std) for the two embeddings parameters, with the same default bounds ±2.
  for (at::Tensor* t : {&base->embeddings->cls_token, &base->embeddings->position_embeddings}) {
    t->normal_(0.0, cfg.initializer_range);
    t->clamp_(-2.0, 2.0);
  }
}

// ---- preprocessor_config.json ----

ImageProcessorConfig ImageProcessorConfig::from_file(const std::string& path) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_text_file(path));
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ": not valid JSON: " + e.what());
  }
  if (!j.is_object()) throw Error(path + ": expected a JSON object");
  ImageProcessorConfig p;
  try {
    if (j.contains("do_resize")) p.do_resize = j["do_resize"].get<bool>();
    if (j.contains("do_rescale")) p.do_rescale = j["do_rescale"].get<bool>();
    if (j.contains("do_normalize")) p.do_normalize = j["do_normalize"].get<bool>();
    if (j.contains("rescale_factor")) p.rescale_factor = j["rescale_factor"].get<double>();
    if (j.contains("size")) {
      const auto& s = j["size"];
      if (s.is_number_integer()) {
        p.height = p.width = s.get<int64_t>();  // older processors: one number
      } else if (s.is_object() && s.contains("height") && s.contains("width")) {
        p.height = s["height"].get<int64_t>();
        p.width = s["width"].get<int64_t>();
      } else if (s.is_object() && s.contains("shortest_edge")) {
        p.height = p.width = s["shortest_edge"].get<int64_t>();
      } else {
        throw Error(path + ": 'size' must be a number or {height, width}, got " + s.dump());
      }
    }
    auto triple = [&](const char* key, std::vector<double>& out) {
      if (!j.contains(key)) return;
      if (j[key].is_number()) {
        out.assign(3, j[key].get<double>());
        return;
      }
      out = j[key].get<std::vector<double>>();
      if (out.empty()) throw Error(path + ": '" + std::string(key) + "' is empty");
    };
    triple("image_mean", p.image_mean);
    triple("image_std", p.image_std);
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ": a key has the wrong type: " + e.what());
  }
  if (p.height <= 0 || p.width <= 0) throw Error(path + ": 'size' must be positive");
  if (p.image_mean.size() != p.image_std.size())
    throw Error(path + ": image_mean and image_std have different lengths");
  for (double s : p.image_std)
    if (!(s > 0)) throw Error(path + ": image_std values must be positive");
  return p;
}

ImageProcessorConfig ImageProcessorConfig::for_model(const std::string& dir, const ModelConfig& c) {
  const std::string path = join_path(dir, "preprocessor_config.json");
  if (file_exists(path)) return from_file(path);
  ImageProcessorConfig p;
  p.height = p.width = c.image_size;
  p.image_mean.assign(c.num_channels, 0.5);
  p.image_std.assign(c.num_channels, 0.5);
  return p;
}

std::string ImageProcessorConfig::to_json_text() const {
  nlohmann::ordered_json j;
  j["do_normalize"] = do_normalize;
  j["do_rescale"] = do_rescale;
  j["do_resize"] = do_resize;
  j["image_mean"] = image_mean;
  j["image_processor_type"] = "ViTImageProcessor";
  j["image_std"] = image_std;
  j["resample"] = 2;
  j["rescale_factor"] = rescale_factor;
  j["size"] = {{"height", height}, {"width", width}};
  return j.dump(2) + "\n";
}

at::Tensor ImageProcessorConfig::preprocess(const at::Tensor& images) const {
  if (images.dim() != 4) throw Error("images must be [batch, channels, height, width]");
  at::Tensor x = images.to(at::kFloat);
  if (do_resize && (x.size(2) != height || x.size(3) != width))
    x = F::interpolate(x, F::InterpolateFuncOptions()
                              .size(std::vector<int64_t>{height, width})
                              .mode(torch::kBilinear)
                              .align_corners(false)
                              .antialias(true));
  if (do_rescale) x = x * rescale_factor;
  if (do_normalize) {
    const int64_t C = x.size(1);
    if (static_cast<int64_t>(image_mean.size()) != C)
      throw Error("preprocessor has " + std::to_string(image_mean.size()) + " channel means, the images have " +
                  std::to_string(C) + " channels");
    at::Tensor mean = at::tensor(image_mean, at::kDouble).to(at::kFloat).view({1, C, 1, 1});
    at::Tensor std = at::tensor(image_std, at::kDouble).to(at::kFloat).view({1, C, 1, 1});
    x = (x - mean) / std;
  }
  return x;
}

}  // namespace lorakit
