// Loads a base model and a PEFT LoRA adapter through the installed lorakit library and prints what the
// model predicts for one sentence pair: {"logits": [...], "prediction": k} on one JSON line.
//   lorakit_consumer ADAPTER_DIR "sentence one" "sentence two" [--model BASE_DIR]
#include <lorakit/core/errors.h>
#include <lorakit/core/runtime.h>
#include <lorakit/models/checkpoint.h>
#include <lorakit/text/tokenizer.h>
#include <lorakit/tuners/lora/model.h>
#include <torch/torch.h>

#include <cstdio>
#include <iostream>
#include <string>

int main(int argc, char** argv) {
  lorakit::ensure_blas_environment(argc, argv);  // OpenBLAS core type (re-executes once if needed)
  if (argc != 4 && argc != 6) {
    std::fprintf(stderr, "usage: %s ADAPTER_DIR SENTENCE_A SENTENCE_B [--model BASE_DIR]\n", argv[0]);
    return 2;
  }
  try {
    const std::string adapter = argv[1], a = argv[2], b = argv[3];
    const std::string base = argc == 6 ? argv[5] : lorakit::adapter_base_model(adapter);
    lorakit::configure_threads(1);

    // The head the adapter was trained with (lorakit_config.json), else two labels.
    const nlohmann::json extra = lorakit::read_adapter_extra(adapter);
    lorakit::LoadOptions lo;
    lo.num_labels = extra.value("num_labels", 2);
    lo.regression = extra.value("problem_type", std::string()) == "regression";
    lorakit::LoadedModel lm = lorakit::load_model(base, lo);
    lorakit::load_adapter(lm.model, adapter);

    auto tok = lorakit::text::load_tokenizer(lm.dir);
    const lorakit::text::Encoding e = tok->encode(a, &b, 128);
    const auto n = static_cast<int64_t>(e.input_ids.size());
    at::Tensor ids = torch::tensor(e.input_ids, torch::kLong).view({1, n});
    at::Tensor types = torch::tensor(e.token_type_ids, torch::kLong).view({1, n});
    at::Tensor mask = torch::ones({1, n}, torch::kLong);

    lm.model->eval();
    torch::NoGradGuard no_grad;
    at::Tensor logits = lm.model->forward(ids, mask, types).squeeze(0).to(torch::kFloat);
    nlohmann::json out;
    std::vector<double> row;
    for (int64_t k = 0; k < logits.size(0); ++k) row.push_back(logits[k].item<double>());
    out["logits"] = row;
    out["prediction"] = lo.regression ? nlohmann::json(row.at(0)) : nlohmann::json(logits.argmax().item<int64_t>());
    std::cout << out.dump() << "\n";
  } catch (const lorakit::Error& e) {
    std::fprintf(stderr, "lorakit_consumer: %s\n", e.what());
    return 1;
  }
  return 0;
}
