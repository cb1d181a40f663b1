// GR-LoRA settings (SPEC 3.1): inverse-norm gradient scaling of every LoRA branch and the
// correctness-aware per-sample gradient penalty.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace lorakit {

struct GrLoraConfig {
  // 1. Inverse-norm gradient scaling: backward g ↦ g · min(scale / (‖h‖_F + eps), max_scale).
  bool scaling = true;
  double scale = 1.0;       // λ_scale
  double eps = 1e-6;        // ε
  double max_scale = 100.0;
  // What c multiplies: "branch" (SPEC 3.1, the default) — the gradient arriving at the branch output h,
  // so every gradient that passes through the branch (A's, B's, and the part sent down to x and the
  // layers below) is scaled; "params" — only the task-loss gradients of this module's A and B, the
  // gradient sent down through the branch and the penalty's gradients staying unscaled.
  std::string scope = "branch";
  // 2. Correctness-aware penalty: λ_reg · (1/|S|) Σ_{i∈S} Σ_modules (‖∇_A L_i‖² + ‖∇_B L_i‖²).
  bool penalty = true;
  double reg = 0.01;        // λ_reg
  double tau = 0.5;         // regression: |ŷ − y| ≤ τ counts as correct
  std::string penalty_mode = "efficient";  // "efficient" (batched, one backward) | "naive" (one backward per sample)
  // Per-phase wall-clock timings in the epoch stats (benchmarks); not a training setting.
  bool profile = false;

  bool penalty_active() const { return penalty && reg != 0.0; }
  bool params_scope() const { return scaling && scope == "params"; }
  void validate() const;  // throws lorakit::Error
  nlohmann::json to_json() const;
  // Keys are the CLI flags' names: gr_scale, gr_eps, gr_max_scale, gr_no_scaling, gr_reg, gr_tau,
  // gr_no_penalty, gr_penalty ("efficient" | "naive"), gr_scale_scope ("branch" | "params") and gr_profile. from_json reads what the flags
  // write (absent keys keep their defaults); to_json writes every setting (gr_scale_scope only when "params"),
  // so the two round-trip.
  static GrLoraConfig from_json(const nlohmann::json& j);
};

}  // namespace lorakit
