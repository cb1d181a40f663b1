// AdaLoRA as a method (SPEC 3.3; the official QingruZhang/AdaLoRA RankAllocator, PEFT's names):
//   layer        AdaLoraLayer: ΔW = B (A ⊙ E) · α/(init_r + 1e-5) on every LoRA target.
//   extra_loss   γ · mean over the A and B matrices of ‖AAᵀ − I‖_F and ‖BᵀB − I‖_F (not squared), as the
//                official compute_orth_regu adds it to the loss each step.
//   after step   while step < total − tfinal: sensitivity I = |p ⊙ ∇p| of every A, B, E entry, Ī ← β1 Ī +
//                (1−β1) I, Ū ← β2 Ū + (1−β2) |I − Ī|; score s = Ī·Ū. Triplet score of direction i:
//                s(E_i) + mean_j s(A_ij) + mean_k s(B_ki). When the budget schedule says so, the
//                init_bgt − budget lowest triplets over all modules (threshold = kthvalue, ties at the
//                threshold masked too, as the official code) get E_i = 0; their A row and B column keep
//                training. From total − tfinal on the scores stop updating, so the mask is frozen.
//   save         PEFT's AdaLoRA adapter: pruned lora_A / lora_E / lora_B (kept triplets only), rank_pattern
//                {"<module>.lora_E": [kept?...]} and peft_type ADALORA in adapter_config.json.
#pragma once
#include <array>
#include <map>
#include <memory>

#include "tuners/adalora/config.h"
#include "tuners/adalora/layer.h"
#include "tuners/lora/model.h"

namespace CLI {
class App;
}

namespace lorakit {

class AdaLoraMethod : public LoraMethod {
 public:
  explicit AdaLoraMethod(AdaLoraConfig cfg);
  std::string name() const override { return "adalora"; }
  void attach(SequenceClassifier& model) override;
  at::Tensor extra_loss(StepInfo& step) override;
  void after_optimizer_step(StepInfo& step, torch::optim::Optimizer& opt) override;
  nlohmann::json epoch_stats() override;
  void save_state(MethodState& s) const override;
  void load_state(const MethodState& s) override;
  nlohmann::json extra_config() const override;
  nlohmann::json describe() const override;
  void save(const SequenceClassifier& model, const LoadedModel& base, const std::string& dir) const override;
  // Head + kept triplets: Σ kept·(d_in + d_out + 1).
  int64_t inference_params(const SequenceClassifier& model) const override;

  // The RankAllocator's pieces (tests call them directly).
  struct Importance {
    at::Tensor ipt, avg_ipt, avg_unc;  // |p ⊙ ∇p| of the last update, Ī, Ū
  };
  void update_importance();                       // from the current gradients
  at::Tensor triplet_scores(size_t layer) const;  // [r]
  // Masks the lowest init_budget() − budget triplets (E_i = 0); returns the threshold (NaN when nothing
  // was masked).
  double mask_to_budget(int64_t budget);
  const Importance& importance(size_t layer, int which) const { return imp_.at(layer).at(which); }  // 0 A, 1 B, 2 E
  int64_t init_budget() const;
  int64_t target_budget() const { return ada_.target_r * static_cast<int64_t>(layers_.size()); }
  std::vector<int64_t> kept_ranks() const;        // per module (its rank before any masking)
  bool masked() const { return !keep_.empty(); }
  const AdaLoraConfig& adalora_config() const { return ada_; }
  std::vector<AdaLoraLayer*> ada_layers() const;

  // Ranks per module path of a pruned adapter being loaded (before attach).
  void set_module_ranks(std::map<std::string, int64_t> ranks) { load_ranks_ = std::move(ranks); }

 protected:
  LoraConfig module_config(const std::string& path) const override;

 private:
  AdaLoraConfig ada_;
  std::map<std::string, int64_t> load_ranks_;
  struct EmptyModule {
    std::string path;
    int64_t in, out;
  };
  std::vector<EmptyModule> empty_modules_;  // targets a loaded adapter pruned to rank 0 (no layer)
  std::vector<std::array<Importance, 3>> imp_;  // per layer: A, B, E
  std::vector<at::Tensor> keep_;                 // per layer, bool [r], after the last masking
  int64_t last_budget_ = -1;
  double last_threshold_ = 0;
  int64_t mask_events_ = 0;
  at::Tensor orth_sum_;
  int64_t orth_steps_ = 0;
};

// Reads a PEFT AdaLoRA adapter (adapter_config.json with peft_type ADALORA), attaches AdaLoRA layers with
// the ranks its rank_pattern keeps and loads the weights.
std::unique_ptr<LoraMethod> load_adalora_adapter(SequenceClassifier& model, const std::string& dir);
// adapter_config.json of a PEFT AdaLoRA adapter; `kept` (may be null) gets rank_pattern as module path →
// number of kept triplets.
AdaLoraConfig read_adalora_config(const std::string& dir, std::map<std::string, int64_t>* kept);

// --init-r, --target-r, --tinit, --tfinal, --delta-t, --beta1, --beta2, --orth-reg-weight.
void add_adalora_flags(CLI::App& cmd, std::shared_ptr<nlohmann::json> extra);

}  // namespace lorakit
