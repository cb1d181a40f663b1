// CLI flags of the RM-LoRA family (one adder shared by r-lora, gm-lora and rm-lora).
#include <CLI/CLI.hpp>

#include "tuners/rm_lora/model.h"

namespace lorakit {

void add_rm_lora_flags(CLI::App& cmd, std::shared_ptr<nlohmann::json> extra) {
  cmd.add_option_function<double>(
         "--orth-reg", [extra](const double& v) { (*extra)["orth_reg"] = v; },
         "r-lora / rm-lora: weight λ_orth of Σ(‖AAᵀ−I‖²_F + ‖BᵀB−I‖²_F) (default 0.1)")
      ->check(CLI::NonNegativeNumber);
  cmd.add_option_function<int64_t>(
         "--mask-directions", [extra](const int64_t& v) { (*extra)["mask_directions"] = v; },
         "gm-lora / rm-lora: directions r̂ each module updates per step (default R/2)")
      ->check(CLI::PositiveNumber);
  cmd.add_option_function<std::string>(
         "--mask-mode", [extra](const std::string& v) { (*extra)["mask_mode"] = v; },
         "gm-lora / rm-lora: update (frozen directions keep values and AdamW state) | grad (Algorithm 1: zero "
         "their gradients)")
      ->check(CLI::IsMember({"update", "grad"}));
}

}  // namespace lorakit
