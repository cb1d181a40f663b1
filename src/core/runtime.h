// Process-level set-up that makes LibTorch fast on CPU: OpenBLAS core type, threads, allocator.
#pragma once
#include <string>

namespace lorakit {

// The OpenBLAS core type this CPU should use ("SkylakeX" with AVX-512, "Haswell" with AVX2, "" if
// no override is needed).
std::string preferred_openblas_coretype();

// The CPU's vector ISA as it matters for bf16: "AMX" (AMX-BF16 tiles), "AVX512-BF16" (vdpbf16ps),
// "AVX-512", "AVX2" or "baseline"; cpu_has_bf16() is true for the first two. Without bf16 instructions
// oneDNN emulates bf16 GEMMs (measured at 5 GFLOP/s against 159 fp32 on an AVX2-only EPYC): never use it there.
std::string cpu_isa();
bool cpu_has_bf16();

// Must be the first call in main(). OpenBLAS reads OPENBLAS_CORETYPE when the shared library loads,
// before main() runs, so when the variable is missing or names a weaker core than this CPU supports,
// the process re-executes itself (same argv) with the variable set. Set LORAKIT_KEEP_CORETYPE=1 to
// keep whatever the environment says. Returns normally when nothing had to change.
void ensure_blas_environment(int argc, char** argv);

// Sets LibTorch intra-op threads; n <= 0 means one per available core.
int configure_threads(int n);

struct RuntimeInfo {
  std::string blas;        // e.g. "OpenBLAS 0.3.21 (openmp)" or the library path
  std::string coretype;    // what OpenBLAS reports it runs (openblas_get_corename)
  std::string coretype_env;
  std::string allocator;   // "tcmalloc", "glibc malloc" or "AddressSanitizer (sanitizer build: ...)"
  int threads = 1;
  int cores = 1;
  std::string torch_version;
};
RuntimeInfo runtime_info();

}  // namespace lorakit
