#include "tuners/lora/diagnostics.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <torch/linalg.h>

#include "core/errors.h"

namespace lorakit {

double dtype_eps(at::ScalarType t) {
  switch (t) {
    case at::kDouble: return std::numeric_limits<double>::epsilon();
    case at::kHalf: return 0.0009765625;    // 2^-10
    case at::kBFloat16: return 0.0078125;   // 2^-7
    default: return std::numeric_limits<float>::epsilon();
  }
}

at::Tensor orthogonality_penalty(const at::Tensor& A, const at::Tensor& B) {
  const int64_t r = A.size(0);
  at::Tensor eye = at::eye(r, A.options().requires_grad(false));
  at::Tensor ga = at::matmul(A, A.t());  // R×R
  at::Tensor gb = at::matmul(B.t(), B);  // R×R
  return (ga - eye).pow(2).sum() + (gb - eye).pow(2).sum();
}

LoraModuleDiagnostics lora_module_diagnostics(const at::Tensor& A_in, const at::Tensor& B_in, double scaling) {
  if (A_in.dim() != 2 || B_in.dim() != 2 || A_in.size(0) != B_in.size(1))
    throw Error("LoRA diagnostics need A [R, d_in] and B [d_out, R], got " + c10::str(A_in.sizes()) + " and " +
                c10::str(B_in.sizes()));
  at::NoGradGuard ng;
  LoraModuleDiagnostics d;
  d.r = A_in.size(0);
  d.d_in = A_in.size(1);
  d.d_out = B_in.size(0);
  const double eps = dtype_eps(at::promote_types(A_in.scalar_type(), B_in.scalar_type()));
  at::Tensor A = A_in.detach().to(at::kCPU, at::kDouble);
  at::Tensor B = B_in.detach().to(at::kCPU, at::kDouble);
  at::Tensor eye = at::eye(d.r, A.options());
  d.a_orth_loss = (at::matmul(A, A.t()) - eye).pow(2).sum().item<double>();
  d.b_orth_loss = (at::matmul(B.t(), B) - eye).pow(2).sum().item<double>();
  // Thin QR: B = Q_B R_B (R_B [k1, R]), Aᵀ = Q_A R_A (R_A [k2, R]); ΔW = Q_B (s R_B R_Aᵀ) Q_Aᵀ.
  at::Tensor rb = std::get<1>(torch::linalg::qr(B, "reduced"));
  at::Tensor ra = std::get<1>(torch::linalg::qr(A.t(), "reduced"));
  at::Tensor core = at::matmul(rb, ra.t()) * scaling;  // [min(d_out,R), min(d_in,R)]
  at::Tensor sv = torch::linalg::svdvals(core, c10::nullopt).contiguous();  // descending, k = min(R, d_out, d_in)
  const int64_t k = sv.numel();
  d.singular_values.assign(sv.data_ptr<double>(), sv.data_ptr<double>() + k);
  d.sigma_max = k ? d.singular_values[0] : 0.0;
  const double tol = d.sigma_max * static_cast<double>(std::max(d.d_out, d.d_in)) * eps;
  d.rank = 0;
  double core_loss = 0;
  for (double s : d.singular_values) {
    if (s > tol) ++d.rank;
    core_loss += (s * s - 1.0) * (s * s - 1.0);
  }
  // ΔW ΔWᵀ (d_out × d_out) has eigenvalues σ_i² (i ≤ k) and d_out − k zeros.
  d.dw_orth_loss_core = core_loss;
  d.dw_orth_loss = core_loss + static_cast<double>(d.d_out - k);
  return d;
}

nlohmann::ordered_json diagnostics_json(const std::vector<std::pair<std::string, LoraModuleDiagnostics>>& mods,
                                        bool per_module) {
  nlohmann::ordered_json j;
  if (mods.empty()) return j;
  double rank_sum = 0, dw = 0, dwc = 0, a = 0, b = 0;
  int64_t rmin = std::numeric_limits<int64_t>::max(), rmax = 0, r_sum = 0;
  for (auto& [_, d] : mods) {
    rank_sum += d.rank;
    rmin = std::min(rmin, d.rank);
    rmax = std::max(rmax, d.rank);
    r_sum += d.r;
    dw += d.dw_orth_loss;
    dwc += d.dw_orth_loss_core;
    a += d.a_orth_loss;
    b += d.b_orth_loss;
  }
  const double n = static_cast<double>(mods.size());
  j["lora_modules_count"] = mods.size();
  j["dw_rank_mean"] = rank_sum / n;
  j["dw_rank_min"] = rmin;
  j["dw_rank_max"] = rmax;
  j["lora_r_mean"] = static_cast<double>(r_sum) / n;
  j["dw_orth_loss_mean"] = dw / n;
  j["dw_orth_loss_core_mean"] = dwc / n;
  j["a_orth_loss_mean"] = a / n;
  j["b_orth_loss_mean"] = b / n;
  if (per_module) {
    nlohmann::ordered_json m = nlohmann::ordered_json::object();
    for (auto& [path, d] : mods) {
      nlohmann::ordered_json e;
      e["shape"] = {d.d_out, d.d_in};
      e["r"] = d.r;
      e["rank"] = d.rank;
      e["sigma_max"] = d.sigma_max;
      e["dw_orth_loss"] = d.dw_orth_loss;
      e["dw_orth_loss_core"] = d.dw_orth_loss_core;
      e["a_orth_loss"] = d.a_orth_loss;
      e["b_orth_loss"] = d.b_orth_loss;
      m[path] = e;
    }
    j["lora_modules"] = m;
  }
  return j;
}

}  // namespace lorakit
