// Diagnostics of LoRA factors (seed 001 Table 4, SPEC section 4), computed through the thin factors:
// ΔW = s·B·A with A [R, d_in], B [d_out, R] is never formed. Thin QR of B and of Aᵀ gives
// ΔW = Q_B (s · R_B R_Aᵀ) Q_Aᵀ, so the singular values of ΔW are those of the small core
// s · R_B R_Aᵀ (at most R×R), and every quantity below follows from them and from R×R Grams.
#pragma once
#include <ATen/ATen.h>

#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace lorakit {

struct LoraModuleDiagnostics {
  int64_t d_out = 0, d_in = 0, r = 0;
  // Numerical rank of ΔW as numpy.linalg.matrix_rank: singular values above
  // max(d_out, d_in) · eps(dtype) · σ_max, eps of the factors' dtype (0 for ΔW = 0).
  int64_t rank = 0;
  double sigma_max = 0;
  double dw_orth_loss = 0;       // ‖ΔW ΔWᵀ − I_{d_out}‖²_F = Σ_i (σ_i² − 1)² + (d_out − k)
  double dw_orth_loss_core = 0;  // Σ_i (σ_i² − 1)² over the k = min(R, d_out, d_in) singular values
  double a_orth_loss = 0;        // ‖A Aᵀ − I_R‖²_F
  double b_orth_loss = 0;        // ‖Bᵀ B − I_R‖²_F
  std::vector<double> singular_values;  // the k singular values of ΔW that can be non-zero, descending
};

// The machine epsilon numpy would use for a matrix of this dtype.
double dtype_eps(at::ScalarType t);

// Everything above for one adapter pair, in float64 (the rank threshold uses the factors' own eps).
LoraModuleDiagnostics lora_module_diagnostics(const at::Tensor& A, const at::Tensor& B, double scaling);

// ‖A Aᵀ − I_R‖²_F + ‖Bᵀ B − I_R‖²_F from R×R Gram matrices; differentiable (R-LoRA's regularizer,
// seed 001 Eq. 10). A [R, d_in], B [d_out, R]; result is a 0-dim tensor of A's dtype.
at::Tensor orthogonality_penalty(const at::Tensor& A, const at::Tensor& B);

// Aggregates (mean/min/max rank, mean losses) as flat keys, and, when per_module, a "lora_modules"
// object keyed by module path.
nlohmann::ordered_json diagnostics_json(const std::vector<std::pair<std::string, LoraModuleDiagnostics>>& mods,
                                        bool per_module = true);

}  // namespace lorakit
