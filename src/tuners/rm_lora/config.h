// RM-LoRA (seed 001, SPEC 3.2) settings: the orthogonality regularizer (R-LoRA), gradient masking
// (GM-LoRA), or both (RM-LoRA).
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace lorakit {

enum class MaskMode { Update, Grad };

struct RmLoraConfig {
  std::string variant = "rm-lora";  // "r-lora" | "gm-lora" | "rm-lora"
  bool regularize = true;           // R-LoRA's loss term
  bool mask = true;                 // GM-LoRA's per-step direction masking
  double orth_reg = 0.1;            // λ_orth
  int64_t mask_directions = -1;     // r̂; -1 = max(1, R/2)
  MaskMode mask_mode = MaskMode::Update;

  // The variant's defaults overridden by the CLI's parsed flags (keys "orth_reg", "mask_directions",
  // "mask_mode"); throws lorakit::Error on bad values.
  static RmLoraConfig from_options(const std::string& variant, const nlohmann::json& extra);
  // r̂ for a module of rank r (validated: 1 ≤ r̂ ≤ r).
  int64_t directions_for(int64_t r) const;
  nlohmann::json to_json() const;
};

const char* mask_mode_name(MaskMode m);

}  // namespace lorakit
