// Full fine-tuning: every parameter trains; saves a complete Hugging Face checkpoint.
#pragma once
#include "tuners/method.h"

namespace lorakit {
class FullFineTuning : public Method {
 public:
  std::string name() const override { return "full"; }
  void attach(SequenceClassifier& model) override;
  void save(const SequenceClassifier& model, const LoadedModel& base, const std::string& dir) const override;
};
}  // namespace lorakit
