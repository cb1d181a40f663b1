#pragma once
#include <string>

namespace lorakit {
struct GemmResult {
  double gflops = 0;   // best of the timed repetitions
  double ms = 0;       // time of the best repetition
};
// Times an [m,k]·[k,n] matmul in "fp32" or "bf16" (bf16 runs under CPU autocast, i.e. oneDNN).
GemmResult bench_gemm(int64_t m, int64_t k, int64_t n, const std::string& dtype, int reps = 10);
}  // namespace lorakit
