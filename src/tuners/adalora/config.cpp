#include "tuners/adalora/config.h"

#include <cmath>

#include "core/errors.h"

namespace lorakit {

AdaLoraConfig AdaLoraConfig::from_options(const LoraConfig& lora, const nlohmann::json& extra) {
  AdaLoraConfig c;
  c.lora = lora;
  try {
    auto get_i = [&](const char* k, int64_t& v) {
      if (extra.contains(k)) v = extra[k].get<int64_t>();
    };
    auto get_d = [&](const char* k, double& v) {
      if (extra.contains(k)) v = extra[k].get<double>();
    };
    get_i("init_r", c.init_r);
    get_i("target_r", c.target_r);
    get_i("tinit", c.tinit);
    get_i("tfinal", c.tfinal);
    get_i("delta_t", c.delta_t);
    get_d("beta1", c.beta1);
    get_d("beta2", c.beta2);
    get_d("orth_reg_weight", c.orth_reg_weight);
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("bad AdaLoRA option: ") + e.what());
  }
  c.lora.r = c.init_r;
  c.validate();
  return c;
}

void AdaLoraConfig::validate() const {
  if (init_r <= 0) throw Error("--init-r must be positive, got " + std::to_string(init_r));
  if (target_r <= 0 || target_r > init_r)
    throw Error("--target-r must be in [1, init_r = " + std::to_string(init_r) + "], got " + std::to_string(target_r));
  if (tinit < 0 || tfinal < 0) throw Error("--tinit and --tfinal must be >= 0");
  if (delta_t <= 0) throw Error("--delta-t must be positive, got " + std::to_string(delta_t));
  for (double b : {beta1, beta2})
    if (!(b >= 0 && b < 1)) throw Error("--beta1 / --beta2 must be in [0, 1), got " + std::to_string(b));
  if (!(orth_reg_weight >= 0) || !std::isfinite(orth_reg_weight))
    throw Error("--orth-reg-weight must be a finite value >= 0");
}

void AdaLoraConfig::validate_schedule(int64_t total) const {
  // The official RankAllocator asserts total_step − tinit − tfinal > 0.
  if (total - tinit - tfinal <= 0)
    throw Error("AdaLoRA: the run has " + std::to_string(total) + " steps, not more than --tinit " +
                std::to_string(tinit) + " + --tfinal " + std::to_string(tfinal) + ": no room for the budget schedule");
}

nlohmann::json AdaLoraConfig::to_json() const {
  return {{"init_r", init_r},   {"target_r", target_r}, {"tinit", tinit}, {"tfinal", tfinal},
          {"delta_t", delta_t}, {"beta1", beta1},       {"beta2", beta2}, {"orth_reg_weight", orth_reg_weight},
          {"total_step", total_step}};
}

AdaLoraBudget adalora_budget(int64_t step, int64_t init_bgt, int64_t target_bgt, int64_t tinit, int64_t tfinal,
                             int64_t total, int64_t delta_t) {
  if (step <= tinit) return {init_bgt, false};
  if (step > total - tfinal) return {target_bgt, true};
  const double mul = 1.0 - static_cast<double>(step - tinit) / static_cast<double>(total - tfinal - tinit);
  const auto budget = static_cast<int64_t>(static_cast<double>(init_bgt - target_bgt) * std::pow(mul, 3.0) +
                                           static_cast<double>(target_bgt));
  return {budget, step % delta_t == 0};
}

}  // namespace lorakit
