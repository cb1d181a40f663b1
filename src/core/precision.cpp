#include "core/precision.h"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>

namespace lorakit {

namespace {
thread_local bool t_bf16 = false;
}

Bf16Scope::Bf16Scope(bool on) : prev_(t_bf16) { t_bf16 = on; }
Bf16Scope::~Bf16Scope() { t_bf16 = prev_; }

bool bf16_active() { return t_bf16; }

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
