#include "core/runtime.h"

#include <cpuid.h>
#include <dlfcn.h>
#include <link.h>
#include <sched.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <ATen/Parallel.h>
#include <torch/version.h>

namespace lorakit {

std::string preferred_openblas_coretype() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
    return "SkylakeX";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
#endif
  return "";
}

namespace {
struct IsaBits {
  bool avx2 = false, avx512 = false, avx512_bf16 = false, amx_bf16 = false;
};
IsaBits isa_bits() {
  IsaBits b;
#if defined(__x86_64__)
  __builtin_cpu_init();
  b.avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  // __builtin_cpu_supports("avx512f") also checks that the OS saves the AVX-512 state (XCR0).
  b.avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  unsigned a = 0, bx = 0, c = 0, d = 0;
  if (b.avx512 && __get_cpuid_count(7, 1, &a, &bx, &c, &d)) b.avx512_bf16 = (a >> 5) & 1;  // CPUID.7.1:EAX[5]
  if (__get_cpuid_count(7, 0, &a, &bx, &c, &d)) {
    // AMX-BF16 (CPUID.7.0:EDX[22]) is usable only when the OS enabled the tile state (XCR0 bits 17, 18).
    unsigned lo = 0, hi = 0;
    const bool osxsave = [&] {
      unsigned a1 = 0, b1 = 0, c1 = 0, d1 = 0;
      return __get_cpuid(1, &a1, &b1, &c1, &d1) && ((c1 >> 27) & 1);
    }();
    if (osxsave) __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    b.amx_bf16 = ((d >> 22) & 1) && ((lo >> 17) & 3) == 3;
  }
#endif
  return b;
}
}  // namespace

std::string cpu_isa() {
  const IsaBits b = isa_bits();
  if (b.amx_bf16) return "AMX";
  if (b.avx512_bf16) return "AVX512-BF16";
  if (b.avx512) return "AVX-512";
  if (b.avx2) return "AVX2";
  return "baseline";
}

bool cpu_has_bf16() {
  const IsaBits b = isa_bits();
  return b.amx_bf16 || b.avx512_bf16;
}

void ensure_blas_environment(int argc, char** argv) {
  (void)argc;
  const char* keep = std::getenv("LORAKIT_KEEP_CORETYPE");
  if (keep && *keep && std::strcmp(keep, "0") != 0) return;
  if (std::getenv("LORAKIT_REEXECUTED")) return;  // never loop
  const std::string want = preferred_openblas_coretype();
  if (want.empty()) return;
  const char* have = std::getenv("OPENBLAS_CORETYPE");
  if (have && want == have) return;
  setenv("OPENBLAS_CORETYPE", want.c_str(), 1);
  setenv("LORAKIT_REEXECUTED", "1", 1);
  execv("/proc/self/exe", argv);
  // exec failed (no /proc?): carry on with whatever OpenBLAS picked; runtime_info() reports it.
}

int configure_threads(int n) {
  int cores = 1;
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) cores = CPU_COUNT(&set);
  if (cores < 1) cores = 1;
  const int use = n > 0 ? n : cores;
  at::set_num_threads(use);
  return use;
}

namespace {
int count_cores() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
  return 1;
}

int find_blas_cb(struct dl_phdr_info* info, size_t, void* data) {
  auto* out = static_cast<std::string*>(data);
  if (info->dlpi_name && std::strstr(info->dlpi_name, "blas") && out->empty()) *out = info->dlpi_name;
  return 0;
}
}  // namespace

RuntimeInfo runtime_info() {
  RuntimeInfo r;
  std::string path;
  dl_iterate_phdr(find_blas_cb, &path);
  using cfg_fn = char* (*)();
  auto get_config = reinterpret_cast<cfg_fn>(dlsym(RTLD_DEFAULT, "openblas_get_config"));
  auto get_core = reinterpret_cast<cfg_fn>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  if (get_config) {
    r.blas = std::string("OpenBLAS ") + get_config();
    if (!path.empty()) r.blas += " [" + path + "]";
  } else {
    r.blas = path.empty() ? "unknown" : path;
  }
  r.coretype = get_core ? get_core() : "n/a";
  const char* env = std::getenv("OPENBLAS_CORETYPE");
  r.coretype_env = env ? env : "(unset)";
  if (dlsym(RTLD_DEFAULT, "__asan_init"))  // the LORAKIT_SANITIZE build: no tcmalloc, ASan's malloc
    r.allocator = "AddressSanitizer (sanitizer build: ASan + UBSan, tcmalloc not linked)";
  else
    r.allocator = dlsym(RTLD_DEFAULT, "tc_version") ? "tcmalloc" : "glibc malloc";
  r.threads = at::get_num_threads();
  r.cores = count_cores();
  r.torch_version = TORCH_VERSION;
  return r;
}

}  // namespace lorakit
