// Compute precision of the model's forward pass (train --bf16; docs/benchmarks.md, "bf16").
//
// While a Bf16Scope(true) is alive on this thread, forward_autocast() runs its function under LibTorch's
// CPU autocast to bfloat16: GEMMs (linear, matmul, bmm) and what follows them until a residual add
// takes their inputs to bf16, with fp32 accumulation inside oneDNN; trainable parameters stay fp32 (their
// bf16 copies are made per forward and dropped after it), so gradients, AdamW's state and every method's
// arithmetic stay fp32. A bf16 run stores frozen projection weights in bf16 once (store_frozen_weights_bf16,
// models/layers.h). The returned tensor is converted back to fp32 (logits: the loss is fp32).
#pragma once
#include <functional>
#include <string>

namespace at {
class Tensor;
}

namespace lorakit {

class Bf16Scope {
 public:
  explicit Bf16Scope(bool on);
  ~Bf16Scope();
  Bf16Scope(const Bf16Scope&) = delete;
  Bf16Scope& operator=(const Bf16Scope&) = delete;

 private:
  bool prev_;
};

bool bf16_active();

// train --precision (and sweep runs): "auto" is bf16 on a CPU with AVX512-BF16 or AMX and fp32 elsewhere
// (without those instructions oneDNN emulates bf16 GEMMs at a few GFLOP/s); "fp32"; "bf16" (refused, with an
// Error, on a CPU without them). `source` ("--precision", "--bf16", "LORAKIT_PRECISION") names where `mode`
// came from, in the errors.
struct PrecisionChoice {
  bool bf16 = false;
  std::string why;  // "auto: this CPU has AVX512-BF16", "--precision fp32", ...
};
PrecisionChoice resolve_precision(const std::string& mode, const std::string& source = "--precision");
// The refusal of bf16 on a CPU without bf16 instructions, naming `source` (an Error; nothing on a CPU with them).
void require_bf16_cpu(const std::string& source);
// The default of --precision: $LORAKIT_PRECISION when it is set and not empty (as accelerate's
// ACCELERATE_MIXED_PRECISION; the test suite sets fp32 so that its numerics do not depend on the CPU), else "auto".
std::string default_precision();

// f() under bf16 autocast when bf16_active(), else f() as it is; the result in fp32.
at::Tensor forward_autocast(const std::function<at::Tensor()>& f);

}  // namespace lorakit
