#include "tuners/gr_lora/config.h"

#include <cmath>

#include "core/errors.h"

namespace lorakit {

void GrLoraConfig::validate() const {
  auto finite = [](double v) { return std::isfinite(v); };
  if (!finite(scale) || scale <= 0) throw Error("--gr-scale (λ_scale) must be positive, got " + std::to_string(scale));
  if (!finite(eps) || eps < 0) throw Error("--gr-eps must be >= 0, got " + std::to_string(eps));
  if (!finite(max_scale) || max_scale <= 0)
    throw Error("--gr-max-scale must be positive, got " + std::to_string(max_scale));
  if (!finite(reg) || reg < 0) throw Error("--gr-reg (λ_reg) must be >= 0, got " + std::to_string(reg));
  if (!finite(tau) || tau < 0) throw Error("--gr-tau must be >= 0, got " + std::to_string(tau));
  if (penalty_mode != "efficient" && penalty_mode != "naive")
    throw Error("--gr-penalty must be 'efficient' or 'naive', got '" + penalty_mode + "'");
  if (scope != "branch" && scope != "params")
    throw Error("--gr-scale-scope must be 'branch' or 'params', got '" + scope + "'");
}

nlohmann::json GrLoraConfig::to_json() const {
  nlohmann::ordered_json j;
  j["gr_no_scaling"] = !scaling;
  j["gr_scale"] = scale;
  j["gr_eps"] = eps;
  j["gr_max_scale"] = max_scale;
  // Written only when not the default: runs and checkpoints from before the flag existed (no key, "branch")
  // then describe and compare the same as a default run now.
  if (scope != "branch") j["gr_scale_scope"] = scope;
  j["gr_no_penalty"] = !penalty;
  j["gr_reg"] = reg;
  j["gr_tau"] = tau;
  j["gr_penalty"] = penalty_mode;
  return j;
}

GrLoraConfig GrLoraConfig::from_json(const nlohmann::json& j) {
  GrLoraConfig c;
  try {
    c.scaling = !j.value("gr_no_scaling", !c.scaling);
    c.scale = j.value("gr_scale", c.scale);
    c.eps = j.value("gr_eps", c.eps);
    c.max_scale = j.value("gr_max_scale", c.max_scale);
    c.scope = j.value("gr_scale_scope", c.scope);
    c.penalty = !j.value("gr_no_penalty", !c.penalty);
    c.reg = j.value("gr_reg", c.reg);
    c.tau = j.value("gr_tau", c.tau);
    c.penalty_mode = j.value("gr_penalty", c.penalty_mode);
    c.profile = j.value("gr_profile", c.profile);
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("GR-LoRA settings: ") + e.what());
  }
  c.validate();
  return c;
}

}  // namespace lorakit
