#include "models/task_model.h"

#include "core/errors.h"
#include "models/bert.h"
#include "models/deberta.h"
#include "models/distilbert.h"
#include "models/qa_model.h"
#include "models/use_lite_task.h"
#include "models/vit.h"

namespace lorakit {

at::Tensor TaskModelImpl::forward_pixels(const at::Tensor&) {
  throw Error("model_type '" + cfg.model_type + "' takes token ids, not pixel values");
}

at::Tensor TaskModelImpl::forward_to(int64_t, const at::Tensor&, const at::Tensor&, const at::Tensor&) {
  throw Error("model_type '" + cfg.model_type + "' has no frozen-prefix stages");
}

at::Tensor TaskModelImpl::forward_from(int64_t, const at::Tensor&, const at::Tensor&, const at::Tensor&) {
  throw Error("model_type '" + cfg.model_type + "' has no frozen-prefix stages");
}

SequenceClassifier::SequenceClassifier(const ModelConfig& c) : ModuleHolder(nullptr) {
  if (c.is_question_answering())
    impl_ = std::make_shared<QuestionAnsweringModelImpl>(c);
  else if (c.model_type == "bert" || c.model_type == "roberta")
    impl_ = std::make_shared<BertClassifierImpl>(c);
  else if (c.model_type == "distilbert")
    impl_ = std::make_shared<DistilBertClassifierImpl>(c);
  else if (c.model_type == "deberta-v2")
    impl_ = std::make_shared<DebertaClassifierImpl>(c);
  else if (c.model_type == "vit")
    impl_ = std::make_shared<ViTClassifierImpl>(c);
  else if (c.model_type == "use-lite")
    impl_ = std::make_shared<UseLiteClassifierImpl>(c);
  else
    throw Error("model_type '" + c.model_type + "' has no task model");
}

}  // namespace lorakit
