#include "tuners/rm_lora/config.h"

#include <algorithm>
#include <cmath>

#include "core/errors.h"

namespace lorakit {

const char* mask_mode_name(MaskMode m) { return m == MaskMode::Update ? "update" : "grad"; }

RmLoraConfig RmLoraConfig::from_options(const std::string& variant, const nlohmann::json& extra) {
  RmLoraConfig c;
  c.variant = variant;
  if (variant == "r-lora") {
    c.mask = false;
  } else if (variant == "gm-lora") {
    c.regularize = false;
  } else if (variant != "rm-lora") {
    throw Error("unknown RM-LoRA variant '" + variant + "' (r-lora, gm-lora, rm-lora)");
  }
  try {
    if (extra.contains("orth_reg")) c.orth_reg = extra["orth_reg"].get<double>();
    if (extra.contains("mask_directions")) c.mask_directions = extra["mask_directions"].get<int64_t>();
    if (extra.contains("mask_mode")) {
      const std::string m = extra["mask_mode"].get<std::string>();
      if (m == "update")
        c.mask_mode = MaskMode::Update;
      else if (m == "grad")
        c.mask_mode = MaskMode::Grad;
      else
        throw Error("--mask-mode must be 'update' or 'grad', got '" + m + "'");
    }
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("bad RM-LoRA option: ") + e.what());
  }
  if (!std::isfinite(c.orth_reg) || c.orth_reg < 0)
    throw Error("--orth-reg must be a finite value >= 0, got " + std::to_string(c.orth_reg));
  if (c.mask_directions == 0 || c.mask_directions < -1)
    throw Error("--mask-directions must be >= 1, got " + std::to_string(c.mask_directions));
  return c;
}

int64_t RmLoraConfig::directions_for(int64_t r) const {
  const int64_t d = mask_directions > 0 ? mask_directions : std::max<int64_t>(1, r / 2);
  if (d > r)
    throw Error("--mask-directions " + std::to_string(d) + " exceeds the LoRA rank r = " + std::to_string(r));
  return d;
}

nlohmann::json RmLoraConfig::to_json() const {
  nlohmann::json j = {{"method", variant}};
  if (regularize) j["orth_reg"] = orth_reg;
  if (mask) {
    j["mask_directions"] = mask_directions;  // -1: R/2
    j["mask_mode"] = mask_mode_name(mask_mode);
  }
  return j;
}

}  // namespace lorakit
