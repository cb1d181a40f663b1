#include "core/gemm_bench.h"

#include <chrono>

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>

namespace lorakit {

GemmResult bench_gemm(int64_t m, int64_t k, int64_t n, const std::string& dtype, int reps) {
  at::Tensor a = at::randn({m, k});
  at::Tensor b = at::randn({k, n});
  const bool bf16 = dtype == "bf16";
  if (bf16) {
    a = a.to(at::kBFloat16);
    b = b.to(at::kBFloat16);
  }
  GemmResult r;
  const double flop = 2.0 * m * k * n;
  for (int i = 0; i < reps + 2; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    at::Tensor c = at::mm(a, b);
    auto t1 = std::chrono::steady_clock::now();
    if (i < 2) continue;  // warm-up
    const double s = std::chrono::duration<double>(t1 - t0).count();
    const double g = flop / s / 1e9;
    if (g > r.gflops) {
      r.gflops = g;
      r.ms = s * 1e3;
    }
  }
  return r;
}

}  // namespace lorakit
