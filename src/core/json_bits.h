// Exact doubles in JSON: a double as its IEEE-754 bit pattern (an unsigned integer), so that NaN, ±inf
// and every last bit survive a round trip (training checkpoints).
#pragma once
#include <cstdint>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>

#include "core/errors.h"

namespace lorakit {

inline nlohmann::json f64_bits(double v) {
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof bits);
  return bits;
}

// `what` names the value in the error when `j` is not a bit pattern.
inline double f64_from_bits(const nlohmann::json& j, const std::string& what) {
  if (!j.is_number_unsigned()) throw Error("training checkpoint: '" + what + "' is missing or not a bit pattern");
  const uint64_t bits = j.get<uint64_t>();
  double v = 0;
  std::memcpy(&v, &bits, sizeof v);
  return v;
}

}  // namespace lorakit
