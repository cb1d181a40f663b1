// R-LoRA, GM-LoRA and RM-LoRA (seed 001, SPEC 3.2) on the LoRA seam:
//   R-LoRA   extra_loss = λ_orth · Σ_modules (‖A Aᵀ − I_R‖²_F + ‖Bᵀ B − I_R‖²_F), R×R Grams only.
//   GM-LoRA  every optimizer step, each adapted module independently draws r̂ distinct directions of
//            {0..R−1} from the run's seeded generator (StepInfo::rng); only those rows of A / columns of
//            B change in that step.
//              update mode (default): the other rows/columns keep their values and their AdamW moments
//                (exp_avg, exp_avg_sq, max_exp_avg_sq) bit-for-bit: snapshot in before_optimizer_step,
//                restore in after_optimizer_step (so weight decay and momentum cannot move them).
//              grad mode: Algorithm 1 literally, their gradients are zeroed before the step (AdamW's
//                momentum and weight decay still move them).
//   RM-LoRA  both.
#pragma once
#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "tuners/lora/model.h"
#include "tuners/rm_lora/config.h"

namespace CLI {
class App;
}

namespace lorakit {

// LoraLayer that also records ‖h‖_F of the branch output h = s·B A x̃ in training forwards (for the
// "mean LoRA output norm" diagnostic). The output itself is unchanged.
class RmLoraLayer : public LoraLayer {
 public:
  using LoraLayer::LoraLayer;
  at::Tensor transform_branch(const at::Tensor& h, const at::Tensor& x_dropped) override;
  // Σ ‖h‖_F (0-dim tensor, detached; undefined before the first training forward) and count, since reset.
  at::Tensor norm_sum;
  int64_t norm_count = 0;
};

// An integer uniform on [0, n) from a 64-bit generator, by rejection: the same sequence on every
// platform and standard library (std::uniform_int_distribution is implementation-defined).
uint64_t uniform_below(std::mt19937_64& rng, uint64_t n);
// r̂ distinct directions of {0..r−1} (partial Fisher–Yates), sorted ascending.
std::vector<int64_t> draw_directions(std::mt19937_64& rng, int64_t r, int64_t r_hat);

class RmLoraMethod : public LoraMethod {
 public:
  RmLoraMethod(LoraConfig lora, RmLoraConfig rm);
  std::string name() const override { return rm_.variant; }
  void attach(SequenceClassifier& model) override;
  at::Tensor extra_loss(StepInfo& step) override;
  void before_optimizer_step(StepInfo& step, torch::optim::Optimizer& opt) override;
  void after_optimizer_step(StepInfo& step, torch::optim::Optimizer& opt) override;
  nlohmann::json epoch_stats() override;
  void save_state(MethodState& s) const override;
  void load_state(const MethodState& s) override;
  nlohmann::json extra_config() const override;
  nlohmann::json describe() const override;

  const RmLoraConfig& rm_config() const { return rm_; }
  // λ_orth · Σ_modules penalty, differentiable (what extra_loss adds; defined even when regularize is off).
  at::Tensor orthogonality_loss() const;
  // The directions each module updated in the last masked step, in layers() order (sorted ascending).
  const std::vector<std::vector<int64_t>>& last_draw() const { return draw_; }

 private:
  struct Saved {  // one parameter's masked slices before the step (update mode)
    at::Tensor value, exp_avg, exp_avg_sq, max_exp_avg_sq;
    bool had_state = false;
  };
  struct ModuleMask {
    at::Tensor masked;  // kLong indices of the frozen directions (empty when r̂ = R)
    Saved a, b;
  };
  RmLoraConfig rm_;
  std::vector<int64_t> r_hat_;               // per module
  std::vector<std::vector<int64_t>> draw_;   // per module, last step
  std::vector<ModuleMask> pending_;          // filled before the step, consumed after it
  std::vector<std::vector<size_t>> shape_groups_;  // layer indices with equal A/B shapes, dtype, device
  // Epoch statistics.
  at::Tensor penalty_sum_;
  int64_t penalty_steps_ = 0, masked_steps_ = 0;
};

// --orth-reg, --mask-directions, --mask-mode (shared by r-lora, gm-lora, rm-lora); values go into `extra`.
void add_rm_lora_flags(CLI::App& cmd, std::shared_ptr<nlohmann::json> extra);

}  // namespace lorakit
