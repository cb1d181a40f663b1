// SoRA (Ding et al. 2023; SPEC 3.3; the official TsinghuaC3I/SoRA code): LoRA with a gate g ∈ R^r
// between A and B, h = s · B (g ⊙ A x̃), g ~ N(0, 1) at init.
//   extra_loss   sparse_lambda · Σ|g| / numel over every gate (the official SparseTrainer's L1 term).
//   optimizer    the gates in their own AdamW group: lr --sora-gate-lr (default: the run's lr), no weight
//                decay, the run's warm-up/decay schedule (the official code gives the gate optimizer its own
//                linear warm-up/decay schedule of the same length).
//   after step   the official SparseAdamW threshold with ξ = sparse_lambda_2, NOT multiplied by the lr, as
//                three in-place steps: g[g > ξ] −= ξ; g[g < −ξ] += ξ; g[|g| < ξ] = 0. So |g| < 2ξ ends at 0
//                and the rest shrinks by ξ (not the textbook soft threshold). `--sora-threshold textbook`
//                applies sign(g)·max(|g| − ξ, 0) instead.
//   save         exported pruned: a plain PEFT LoRA adapter whose module keeps only its non-zero gates
//                (B' = B[:, kept] · diag(g_kept), A' = A[kept]), per-module rank in rank_pattern and
//                alpha_pattern chosen so the scaling is unchanged. A module with no gate left keeps one
//                direction with a zero B column (PEFT refuses r = 0), so ΔW is exactly 0 there.
#pragma once
#include <memory>

#include "tuners/adalora/layer.h"
#include "tuners/lora/model.h"

namespace CLI {
class App;
}

namespace lorakit {

struct SoraConfig {
  double sparse_lambda = 1e-3;    // L1 weight (η in the paper)
  double sparse_lambda_2 = 1e-3;  // threshold ξ
  double gate_lr = -1;            // < 0: the run's lr
  bool textbook = false;          // sign(g)·max(|g| − ξ, 0) instead of the official steps
  static SoraConfig from_options(const nlohmann::json& extra);
  nlohmann::json to_json() const;
};

// The threshold steps on a gate tensor, in place.
void sora_threshold_(at::Tensor& g, double xi, bool textbook);

class SoraLayer : public LoraLayer {
 public:
  SoraLayer(AdaptableLinearImpl& host, const LoraConfig& cfg);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& base_out) override;
  at::Tensor effective_A() const override;  // diag(g) · A: ΔW = s · B · diag(g) · A
  ParameterHolder lora_gate{nullptr};        // [1, r]
};

class SoraMethod : public LoraMethod {
 public:
  SoraMethod(LoraConfig lora, SoraConfig sora);
  std::string name() const override { return "sora"; }
  std::vector<ParamGroup> param_groups(SequenceClassifier& model, double weight_decay) override;
  at::Tensor extra_loss(StepInfo& step) override;
  void after_optimizer_step(StepInfo& step, torch::optim::Optimizer& opt) override;
  nlohmann::json epoch_stats() override;
  void save_state(MethodState& s) const override;
  void load_state(const MethodState& s) override;
  nlohmann::json extra_config() const override;
  void save(const SequenceClassifier& model, const LoadedModel& base, const std::string& dir) const override;
  int64_t inference_params(const SequenceClassifier& model) const override;  // head + kept·(d_in + d_out)

  std::vector<SoraLayer*> sora_layers() const;
  std::vector<int64_t> kept_ranks() const;  // non-zero gates per module
  const SoraConfig& sora_config() const { return sora_; }

 private:
  SoraConfig sora_;
  at::Tensor l1_sum_;
  int64_t l1_steps_ = 0;
};

void add_sora_flags(CLI::App& cmd, std::shared_ptr<nlohmann::json> extra);
// Seed 001 Table 3's SoRA λ per task (CoLA, MRPC, STS-B 1e-3; SST-2, QQP, MNLI, RTE 5e-3; QNLI 1e-4; WNLI 1e-2).
double sora_table_lambda(const std::string& task);

}  // namespace lorakit
