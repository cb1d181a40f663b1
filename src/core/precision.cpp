#include "core/precision.h"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>

#include <cstdlib>

#include "core/errors.h"
#include "core/runtime.h"

namespace lorakit {

namespace {
thread_local bool t_bf16 = false;
}

Bf16Scope::Bf16Scope(bool on) : prev_(t_bf16) { t_bf16 = on; }
Bf16Scope::~Bf16Scope() { t_bf16 = prev_; }

bool bf16_active() { return t_bf16; }

PrecisionChoice resolve_precision(const std::string& mode, const std::string& source) {
  PrecisionChoice c;
  if (mode == "fp32" || mode == "bf16") {
    c.bf16 = mode == "bf16";
    c.why = source == "--bf16" ? source : source + " " + mode;
    if (c.bf16) require_bf16_cpu(c.why);
  } else if (mode == "auto") {
    c.bf16 = cpu_has_bf16();
    c.why = "auto: this CPU (" + cpu_isa() + ") " +
            (c.bf16 ? "has bf16 instructions" : "has no bf16 instructions (AVX512-BF16 or AMX)");
  } else {
    throw Error(source + ": '" + mode + "' is not one of auto, fp32, bf16");
  }
  return c;
}

void require_bf16_cpu(const std::string& source) {
  if (cpu_has_bf16()) return;
  throw Error(source + ": this CPU (" + cpu_isa() +
              ") has no bf16 instructions (AVX512-BF16 or AMX); LibTorch would emulate bf16 GEMMs at a few "
              "GFLOP/s, far slower than fp32. Use --precision fp32 or auto");
}

std::string default_precision() {
  const char* e = std::getenv("LORAKIT_PRECISION");
  return e && *e ? std::string(e) : std::string("auto");
}

at::Tensor forward_autocast(const std::function<at::Tensor()>& f) {
  if (!t_bf16) return f();
  // As torch.autocast("cpu", torch.bfloat16) enters and leaves: the cast cache (bf16 copies of the
  // parameters) lives for this forward only, since the optimizer changes the parameters after it.
  const bool was = at::autocast::is_cpu_enabled();
  const at::ScalarType was_dtype = at::autocast::get_autocast_cpu_dtype();
  at::autocast::set_cpu_enabled(true);
  at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
  at::autocast::increment_nesting();
  struct Leave {
    bool was;
    at::ScalarType dtype;
    ~Leave() {
      if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
      at::autocast::set_cpu_enabled(was);
      at::autocast::set_autocast_cpu_dtype(dtype);
    }
  } leave{was, was_dtype};
  at::Tensor out = f();
  return out.scalar_type() == at::kFloat ? out : out.to(at::kFloat);
}

}  // namespace lorakit
