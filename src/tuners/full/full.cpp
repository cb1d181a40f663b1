#include "tuners/full/full.h"

namespace lorakit {

void FullFineTuning::attach(SequenceClassifier& model) {
  for (auto& p : model->parameters(true)) p.set_requires_grad(true);
}

void FullFineTuning::save(const SequenceClassifier& model, const LoadedModel& base, const std::string& dir) const {
  save_model(model, model->cfg, dir, base.source_dtypes);
  copy_tokenizer_files(base.dir, dir);
}

}  // namespace lorakit
