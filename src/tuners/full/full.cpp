#include "tuners/full/full.h"

namespace lorakit {

void FullFineTuning::attach(SequenceClassifier& model) {
  for (auto& p : model->named_parameters(true)) {
    // DistilBERT's sinusoidal position table is fixed in transformers (requires_grad False).
    if (model->cfg.sinusoidal_pos_embds && p.key().find("embeddings.position_embeddings") != std::string::npos) continue;
    p.value().set_requires_grad(true);
  }
}

void FullFineTuning::save(const SequenceClassifier& model, const LoadedModel& base, const std::string& dir) const {
  save_model(model, model->cfg, dir, base.source_dtypes);
  copy_tokenizer_files(base.dir, dir);
}

}  // namespace lorakit
