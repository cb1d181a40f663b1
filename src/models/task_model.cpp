#include "models/task_model.h"

#include "core/errors.h"
#include "models/bert.h"
#include "models/use_lite_task.h"

namespace lorakit {

SequenceClassifier::SequenceClassifier(const ModelConfig& c) : ModuleHolder(nullptr) {
  if (c.model_type == "bert" || c.model_type == "roberta")
    impl_ = std::make_shared<BertClassifierImpl>(c);
  else if (c.model_type == "use-lite")
    impl_ = std::make_shared<UseLiteClassifierImpl>(c);
  else
    throw Error("model_type '" + c.model_type + "' has no task model");
}

}  // namespace lorakit
