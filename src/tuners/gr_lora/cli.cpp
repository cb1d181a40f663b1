// GR-LoRA's flags on the train command; parsed values go into the shared `extra` JSON, which
// GrLoraConfig::from_json reads.
#include <CLI/CLI.hpp>

#include <sstream>

#include "tuners/gr_lora/model.h"

namespace lorakit {

namespace {
std::string fmt_num(double v) {
  std::ostringstream o;
  o << v;
  return o.str();
}
}  // namespace

void add_gr_lora_flags(CLI::App& cmd, std::shared_ptr<nlohmann::json> extra) {
  const GrLoraConfig d;
  auto num = [&](const std::string& flag, const std::string& key, double def, const std::string& help) {
    cmd.add_option_function<double>(
        flag, [extra, key](const double& v) { (*extra)[key] = v; }, help + " (default " + fmt_num(def) + ")");
  };
  num("--gr-scale", "gr_scale", d.scale, "GR-LoRA: λ_scale of the inverse-norm gradient scaling c = min(λ/(‖h‖+ε), max)");
  num("--gr-eps", "gr_eps", d.eps, "GR-LoRA: ε of the gradient scaling");
  num("--gr-max-scale", "gr_max_scale", d.max_scale, "GR-LoRA: upper clamp of the gradient scale c");
  num("--gr-reg", "gr_reg", d.reg, "GR-LoRA: λ_reg of the correctness-aware gradient penalty");
  num("--gr-tau", "gr_tau", d.tau, "GR-LoRA: regression tolerance |ŷ−y| ≤ τ counted as correct");
  cmd.add_flag_function(
      "--gr-no-scaling", [extra](std::int64_t) { (*extra)["gr_no_scaling"] = true; },
      "GR-LoRA: switch the inverse-norm gradient scaling off");
  cmd.add_flag_function(
      "--gr-no-penalty", [extra](std::int64_t) { (*extra)["gr_no_penalty"] = true; },
      "GR-LoRA: switch the correctness-aware gradient penalty off");
  cmd.add_option_function<std::string>(
         "--gr-penalty", [extra](const std::string& v) { (*extra)["gr_penalty"] = v; },
         "GR-LoRA: penalty computation, efficient (batched per-sample gradients) | naive (one backward per sample)")
      ->check(CLI::IsMember({"efficient", "naive"}));
  cmd.add_option_function<std::string>(
         "--gr-scale-scope", [extra](const std::string& v) { (*extra)["gr_scale_scope"] = v; },
         "GR-LoRA: what c scales, branch (the gradient at the branch output, SPEC 3.1) | params (only the "
         "task gradients of A and B) (default branch)")
      ->check(CLI::IsMember({"branch", "params"}));
}

}  // namespace lorakit
