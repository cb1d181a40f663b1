// AdaLoRA's flags on the train command (PEFT AdaLoraConfig names); values go into `extra`.
#include <CLI/CLI.hpp>

#include "tuners/adalora/model.h"

namespace lorakit {

void add_adalora_flags(CLI::App& cmd, std::shared_ptr<nlohmann::json> extra) {
  auto integer = [&](const std::string& flag, const std::string& key, const std::string& help) {
    cmd.add_option_function<int64_t>(flag, [extra, key](const int64_t& v) { (*extra)[key] = v; }, help);
  };
  auto number = [&](const std::string& flag, const std::string& key, const std::string& help) {
    cmd.add_option_function<double>(flag, [extra, key](const double& v) { (*extra)[key] = v; }, help);
  };
  integer("--init-r", "init_r", "adalora: initial rank of every module (default 12)");
  integer("--target-r", "target_r", "adalora: average rank per module the budget ends at (default 8)");
  integer("--tinit", "tinit", "adalora: initial warm-up steps without pruning (default 0)");
  integer("--tfinal", "tfinal", "adalora: final steps with the rank mask frozen (default 0)");
  integer("--delta-t", "delta_t", "adalora: mask every deltaT steps while the budget falls (default 1)");
  number("--beta1", "beta1", "adalora: EMA factor of the sensitivity (default 0.85)");
  number("--beta2", "beta2", "adalora: EMA factor of the uncertainty (default 0.85)");
  number("--orth-reg-weight", "orth_reg_weight", "adalora: weight γ of the orthogonality term (default 0.5)");
}

}  // namespace lorakit
