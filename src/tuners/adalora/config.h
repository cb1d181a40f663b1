// AdaLoRA (Zhang et al. 2023; SPEC 3.3) settings, with PEFT's AdaLoraConfig names.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "tuners/lora/config.h"

namespace lorakit {

struct AdaLoraConfig {
  LoraConfig lora;          // targets, lora_alpha, lora_dropout, modules_to_save (lora.r is not used)
  int64_t init_r = 12;      // rank each module starts with
  int64_t target_r = 8;     // average rank per module at the end of the budget schedule
  int64_t tinit = 0;        // steps of initial warm-up (no pruning)
  int64_t tfinal = 0;       // final steps with the mask frozen
  int64_t delta_t = 1;      // mask every deltaT steps while the budget decreases
  double beta1 = 0.85;      // EMA of the sensitivity |p ⊙ ∇p|
  double beta2 = 0.85;      // EMA of its uncertainty
  double orth_reg_weight = 0.5;  // γ of the orthogonality term
  int64_t total_step = 0;   // the run's optimizer steps (set when training starts)

  // Defaults overridden by the CLI's parsed flags (keys "init_r", "target_r", "tinit", "tfinal", "delta_t",
  // "beta1", "beta2", "orth_reg_weight"); throws lorakit::Error on bad values.
  static AdaLoraConfig from_options(const LoraConfig& lora, const nlohmann::json& extra);
  void validate() const;                      // settings alone
  void validate_schedule(int64_t total) const;  // with the run's total steps
  nlohmann::json to_json() const;             // for lorakit_config.json / describe
};

// The cubic budget schedule of the official RankAllocator.budget_schedule (budgets in triplets summed over
// modules): step ≤ tinit → init_bgt, no masking; step > total − tfinal → target_bgt, masking (every step,
// frozen scores); in between budget = int((init − target)·(1 − (step − tinit)/(total − tfinal − tinit))³
// + target), masking when step % deltaT == 0. `step` counts optimizer steps taken before this one.
struct AdaLoraBudget {
  int64_t budget;
  bool mask;
};
AdaLoraBudget adalora_budget(int64_t step, int64_t init_bgt, int64_t target_bgt, int64_t tinit, int64_t tfinal,
                             int64_t total_step, int64_t delta_t);

}  // namespace lorakit
