// The task seam (src/tasks): the registry, CIFAR files written here (whole, truncated, mislabelled),
// image batches as the model's image processor prescribes, the span QA head of every text family, and
// SQuAD's loss and "correct" mask.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>

#include "core/errors.h"
#include "core/fileutil.h"
#include "models/bert.h"
#include "models/checkpoint.h"
#include "models/deberta.h"
#include "models/distilbert.h"
#include "models/qa_model.h"
#include "support/helpers.h"
#include "support/tiny_model.h"
#include "tasks/image/cifar.h"
#include "tasks/image/png_folder.h"
#include "tasks/image/task.h"
#include "tasks/task.h"

using namespace lorakit;
using lorakit::testing::TempDir;

namespace {

// CIFAR records with label bytes `labels` (one or two per record) and pixels p[i] = (r * 7 + i) % 256.
std::string cifar_bytes(const std::vector<std::vector<uint8_t>>& labels) {
  std::string out;
  for (size_t r = 0; r < labels.size(); ++r) {
    for (uint8_t l : labels[r]) out += static_cast<char>(l);
    for (int64_t i = 0; i < data::kCifarPixels; ++i) out += static_cast<char>((r * 7 + i) % 256);
  }
  return out;
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

template <class F>
std::string error_of(F f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST(TaskRegistry, NamesAnyWayAndUnknownListsTheKnown) {
  EXPECT_EQ(make_task("MRPC")->name(), "mrpc");
  EXPECT_EQ(make_task("sts-b")->kind(), "glue");
  EXPECT_TRUE(make_task("sts-b")->is_regression());
  EXPECT_EQ(make_task("Fashion_MNIST")->name(), "fashion-mnist");
  EXPECT_EQ(make_task("fashion-mnist")->kind(), "image");
  EXPECT_EQ(make_task("SQuAD")->kind(), "squad");
  EXPECT_EQ(make_task("squad")->main_metric(), "f1");
  EXPECT_EQ(make_task("squad")->metric_names(), (std::vector<std::string>{"exact_match", "f1"}));
  EXPECT_EQ(make_task("cola")->main_metric(), "mcc");
  const std::string e = error_of([] { make_task("imagenet"); });
  EXPECT_NE(e.find("unknown task 'imagenet'"), std::string::npos) << e;
  EXPECT_NE(e.find("cifar100"), std::string::npos) << e;
  EXPECT_NE(e.find("squad"), std::string::npos) << e;
}

TEST(Cifar, ReadsRecordsOfBothLayouts) {
  TempDir d;
  write_file(d.file("c10.bin"), cifar_bytes({{3}, {0}, {9}}));
  data::CifarImages c;
  data::read_cifar_file(d.file("c10.bin"), data::CifarKind::Cifar10, c);
  ASSERT_EQ(c.count, 3);
  EXPECT_EQ(c.labels, (std::vector<int64_t>{3, 0, 9}));
  ASSERT_EQ(c.pixels.size(), 3u * data::kCifarPixels);
  EXPECT_EQ(c.pixels[data::kCifarPixels * 2 + 5], (2 * 7 + 5) % 256);  // record 2, red channel, pixel 5
  // CIFAR-100: coarse byte first, then fine.
  write_file(d.file("c100.bin"), cifar_bytes({{4, 77}, {19, 99}}));
  data::CifarImages fine, coarse;
  data::read_cifar_file(d.file("c100.bin"), data::CifarKind::Cifar100Fine, fine);
  data::read_cifar_file(d.file("c100.bin"), data::CifarKind::Cifar100Coarse, coarse);
  EXPECT_EQ(fine.labels, (std::vector<int64_t>{77, 99}));
  EXPECT_EQ(coarse.labels, (std::vector<int64_t>{4, 19}));
  EXPECT_EQ(fine.pixels, coarse.pixels);
  // A limit stops reading.
  data::CifarImages two;
  data::read_cifar_file(d.file("c10.bin"), data::CifarKind::Cifar10, two, 2);
  EXPECT_EQ(two.count, 2);
}

TEST(Cifar, CorruptFilesNameTheFileAndOffset) {
  TempDir d;
  std::string bytes = cifar_bytes({{3}, {0}, {9}});
  write_file(d.file("trunc.bin"), bytes.substr(0, bytes.size() - 5));
  data::CifarImages c;
  std::string e = error_of([&] { data::read_cifar_file(d.file("trunc.bin"), data::CifarKind::Cifar10, c); });
  EXPECT_NE(e.find("trunc.bin"), std::string::npos) << e;
  EXPECT_NE(e.find("byte offset 6146"), std::string::npos) << e;  // the third 3073-byte record breaks off
  write_file(d.file("label.bin"), cifar_bytes({{3}, {10}}));
  e = error_of([&] { data::read_cifar_file(d.file("label.bin"), data::CifarKind::Cifar10, c); });
  EXPECT_NE(e.find("label.bin: byte offset 3073: label 10 is not below 10"), std::string::npos) << e;
  // A CIFAR-10 file read as CIFAR-100 is not a whole number of 3074-byte records.
  write_file(d.file("c10.bin"), cifar_bytes({{3}, {0}}));
  e = error_of([&] { data::read_cifar_file(d.file("c10.bin"), data::CifarKind::Cifar100Fine, c); });
  EXPECT_NE(e.find("3074-byte records"), std::string::npos) << e;
  write_file(d.file("empty.bin"), "");
  e = error_of([&] { data::read_cifar_file(d.file("empty.bin"), data::CifarKind::Cifar10, c); });
  EXPECT_NE(e.find("empty.bin: empty CIFAR file"), std::string::npos) << e;
  e = error_of([&] { data::cifar_split_files(d.path(), data::CifarKind::Cifar10, true); });
  EXPECT_NE(e.find("no data_batch_1.bin"), std::string::npos) << e;
}

namespace {

// A tiny ViT checkpoint (oracle size) with its image size set, loaded with a 10-class head.
LoadedModel tiny_vit(const TempDir& d, int64_t image_size, int64_t channels = 3) {
  ModelConfig c = lorakit::testing::oracle_config("vit");
  c.image_size = image_size;
  c.patch_size = 4;
  c.num_channels = channels;
  lorakit::testing::write_perturbed_model(c, d.file("vit"));
  LoadOptions lo;
  make_task("cifar10")->head_options(lo);
  return load_model(d.file("vit"), lo);
}

}  // namespace

TEST(ImageTask, CifarBatchesFollowTheImageProcessor) {
  TempDir d;
  for (int i = 1; i <= 5; ++i) write_file(d.file("data_batch_" + std::to_string(i) + ".bin"), cifar_bytes({{1}, {2}}));
  write_file(d.file("test_batch.bin"), cifar_bytes({{7}, {8}, {9}}));
  auto task = make_task("cifar10");
  TaskOptions o;
  o.data = d.path();
  // Model size 32 = the images: no resize; pixel (p / 255 − 0.5) / 0.5.
  LoadedModel lm = tiny_vit(d, 32);
  auto train = task->load(Split::Train, lm, o);
  auto eval = task->load(Split::Eval, lm, o);
  EXPECT_EQ(train->size(), 10u);
  ASSERT_EQ(eval->size(), 3u);
  Batch b = eval->collate({2, 0});
  ASSERT_EQ(b.pixel_values.sizes(), (std::vector<int64_t>{2, 3, 32, 32}));
  EXPECT_EQ(b.labels[0].item<int64_t>(), 9);
  EXPECT_EQ(b.labels[1].item<int64_t>(), 7);
  const double p = (2 * 7 + 1024 + 33) % 256;  // record 2, green (offset 1024), row 1, col 1
  EXPECT_NEAR(b.pixel_values[0][1][1][1].item<double>(), (p / 255.0 - 0.5) / 0.5, 1e-6);
  // Model size 16: bilinear + antialias resize, as ViTImageProcessor.
  TempDir d2;
  LoadedModel small = tiny_vit(d2, 16);
  auto ev16 = task->load(Split::Eval, small, o);
  Batch b16 = ev16->collate({0});
  ASSERT_EQ(b16.pixel_values.sizes(), (std::vector<int64_t>{1, 3, 16, 16}));
  at::Tensor raw = eval->collate({0}).pixel_values;
  at::Tensor want = torch::nn::functional::interpolate(
      raw, torch::nn::functional::InterpolateFuncOptions().size(std::vector<int64_t>{16, 16}).mode(torch::kBilinear)
               .align_corners(false).antialias(true));
  EXPECT_LT((b16.pixel_values - want).abs().max().item<double>(), 1e-5);
  // The evaluation collector scores argmax against the labels.
  auto col = task->collector(*eval);
  at::Tensor logits = at::zeros({3, 10});
  logits[0][7] = 1;  // right
  logits[1][3] = 1;  // wrong
  logits[2][9] = 1;  // right
  Batch all = eval->collate({0, 1, 2});
  col->add(logits, all);
  EXPECT_NEAR(col->finish().at("accuracy"), 2.0 / 3.0, 1e-12);
  // A text model cannot run an image task.
  TempDir d3;
  lorakit::testing::write_perturbed_model(lorakit::testing::oracle_config("bert"), d3.file("bert"));
  LoadedModel bert = load_model(d3.file("bert"));
  const std::string e = error_of([&] { task->load(Split::Eval, bert, o); });
  EXPECT_NE(e.find("needs an image model (vit)"), std::string::npos) << e;
}

TEST(ImageTask, GreyImagesFillEveryChannelAndAugmentationIsSeeded) {
  TempDir d;
  LoadedModel lm = tiny_vit(d, 28);
  ImageSet s;
  s.count = 4;
  s.channels = 1;
  s.height = s.width = 28;
  for (int64_t i = 0; i < 4 * 28 * 28; ++i) s.pixels.push_back(static_cast<uint8_t>((i * 13) % 251));
  s.labels = {0, 1, 2, 3};
  auto plain = make_image_dataset(s, lm, false);
  Batch b = plain->collate({0, 1, 2, 3});
  ASSERT_EQ(b.pixel_values.sizes(), (std::vector<int64_t>{4, 3, 28, 28}));
  EXPECT_TRUE(b.pixel_values.select(1, 0).equal(b.pixel_values.select(1, 2)));
  auto aug = make_image_dataset(s, lm, true);
  aug->set_epoch(11);
  at::Tensor a1 = aug->collate({0, 1, 2, 3}).pixel_values;
  aug->set_epoch(11);
  at::Tensor a2 = aug->collate({0, 1, 2, 3}).pixel_values;
  aug->set_epoch(12);
  at::Tensor a3 = aug->collate({0, 1, 2, 3}).pixel_values;
  EXPECT_TRUE(a1.equal(a2));     // same seed, same crops and flips
  EXPECT_FALSE(a1.equal(a3));    // another epoch, others
  EXPECT_FALSE(a1.equal(b.pixel_values));
  // A crop only moves pixels (zero padding = value of pixel 0 after normalising, −1): every augmented value
  // is either −1 or one of the image's own values.
  const double pad = -1.0;
  at::Tensor row = a1[0][0].flatten();
  at::Tensor own = b.pixel_values[0][0].flatten();
  for (int64_t i = 0; i < row.numel(); i += 37) {
    const double v = row[i].item<double>();
    if (std::abs(v - pad) < 1e-6) continue;
    EXPECT_LT((own - v).abs().min().item<double>(), 1e-6) << i;
  }
}

namespace {

// Logits of `qa` equal qa_outputs applied to the hidden states of the family's own sequence-classification
// encoder carrying the same weights (the encoder already checked against transformers' equations).
void expect_qa_head_on_encoder(const std::string& model_type) {
  TempDir d;
  ModelConfig c = lorakit::testing::oracle_config(model_type);
  lorakit::testing::write_perturbed_model(c, d.file("m"));
  LoadOptions lo;
  lo.head = "question-answering";
  LoadedModel qa = load_model(d.file("m"), lo);
  ASSERT_TRUE(qa.config.is_question_answering());
  LoadedModel cls = load_model(d.file("m"));
  ASSERT_FALSE(cls.config.is_question_answering());
  // Every encoder weight came from the file; only qa_outputs is new.
  for (auto& n : qa.report.newly_initialized) EXPECT_EQ(n.rfind("qa_outputs.", 0), 0u) << model_type << ": " << n;
  qa.model->eval();
  cls.model->eval();
  auto in = lorakit::testing::padded_inputs(c, 9);
  torch::NoGradGuard ng;
  at::Tensor got = qa.model->forward(in.ids, in.mask, in.tt);
  ASSERT_EQ(got.sizes(), (std::vector<int64_t>{3, 9, 2})) << model_type;
  at::Tensor h;
  if (model_type == "bert" || model_type == "roberta")
    h = dynamic_cast<BertClassifierImpl&>(*cls.model).base(in.ids, in.mask, in.tt);
  else if (model_type == "distilbert")
    h = dynamic_cast<DistilBertClassifierImpl&>(*cls.model).base(in.ids, in.mask);
  else
    h = dynamic_cast<DebertaClassifierImpl&>(*cls.model).base(in.ids, in.mask, in.tt);
  auto& q = dynamic_cast<QuestionAnsweringModelImpl&>(*qa.model);
  at::Tensor want = at::linear(h, q.qa_outputs->weight, q.qa_outputs->bias);
  EXPECT_LT((got - want).abs().max().item<double>(), 1e-5) << model_type;
  // Saved and read back as *ForQuestionAnswering, the head loads from the file.
  save_model(qa.model, qa.config, d.file("qa"));
  const ModelConfig back = ModelConfig::from_file(d.file("qa/config.json"));
  EXPECT_TRUE(back.is_question_answering()) << model_type;
  const std::string arch = read_text_file(d.file("qa/config.json"));
  EXPECT_NE(arch.find("ForQuestionAnswering\""), std::string::npos) << arch;
  LoadedModel again = load_model(d.file("qa"));
  EXPECT_TRUE(again.report.newly_initialized.empty()) << model_type;
  again.model->eval();
  EXPECT_LT((again.model->forward(in.ids, in.mask, in.tt) - got).abs().max().item<double>(), 1e-6) << model_type;
}

}  // namespace

TEST(QuestionAnsweringHead, BertRobertaDistilbertDebertaPutQaOutputsOnTheirEncoder) {
  for (const char* t : {"bert", "roberta", "distilbert", "deberta-v2"}) expect_qa_head_on_encoder(t);
}

TEST(SquadTask, LossIsTheMeanOfStartAndEndCrossEntropyAndCorrectNeedsBoth) {
  auto task = make_task("squad");
  torch::manual_seed(3);
  at::Tensor out = at::randn({4, 6, 2}, at::kDouble);
  at::Tensor labels = at::tensor({0, 0, 2, 3, 5, 5, 1, 4}, at::kLong).view({4, 2});
  at::Tensor got = task->per_sample_loss(out, labels);
  ASSERT_EQ(got.sizes(), (std::vector<int64_t>{4}));
  for (int64_t i = 0; i < 4; ++i) {
    auto ce = [&](int64_t k) {
      at::Tensor z = out[i].select(1, k);
      return -(z[labels[i][k].item<int64_t>()] - z.exp().sum().log()).item<double>();
    };
    EXPECT_NEAR(got[i].item<double>(), 0.5 * (ce(0) + ce(1)), 1e-12) << i;
  }
  // Row 0: start and end argmax right; row 1: only start right; others wrong.
  at::Tensor o = at::zeros({3, 5, 2});
  o[0][1][0] = 5;
  o[0][3][1] = 5;
  o[1][2][0] = 5;
  o[1][0][1] = 5;
  o[2][4][0] = 5;
  o[2][4][1] = 5;
  at::Tensor l = at::tensor({1, 3, 2, 4, 0, 0}, at::kLong).view({3, 2});
  at::Tensor c = task->correct(o, l, 0.5);
  EXPECT_TRUE(c[0].item<bool>());
  EXPECT_FALSE(c[1].item<bool>());
  EXPECT_FALSE(c[2].item<bool>());
}

TEST(ImageFolder, PngClassFoldersTrainEndToEnd) {
  namespace fs = std::filesystem;
  TempDir d;
  // Two classes that differ in brightness: "bright" images ~200, "dark" ~40 (20 x 24 RGB, noise on top).
  auto make = [&](const std::string& split, const std::string& cls, int n, int base) {
    fs::create_directories(d.file("imgs/" + split + "/" + cls));
    for (int i = 0; i < n; ++i) {
      std::vector<uint8_t> px(20 * 24 * 3);
      for (size_t k = 0; k < px.size(); ++k) px[k] = static_cast<uint8_t>(base + (k * 31 + i * 17) % 40);
      data::write_png(d.file("imgs/" + split + "/" + cls + "/" + std::to_string(i) + ".png"), px, 20, 24, 3);
    }
  };
  make("train", "bright", 24, 180);
  make("train", "dark", 24, 20);
  make("test", "bright", 8, 180);
  make("test", "dark", 8, 20);
  const auto classes = data::image_folder_classes(d.file("imgs/train"));
  EXPECT_EQ(classes, (std::vector<std::string>{"bright", "dark"}));
  // Read at the model's size: resized as PIL would (bilinear, antialiased, back to 8 bits).
  ImageSet s = data::read_image_folder(d.file("imgs/test"), classes, 3, 16, 16);
  ASSERT_EQ(s.count, 16);
  EXPECT_EQ(s.height, 16);
  EXPECT_EQ(s.labels.front(), 0);
  EXPECT_EQ(s.labels.back(), 1);
  ASSERT_EQ(s.pixels.size(), 16u * 3 * 16 * 16);
  EXPECT_GE(s.pixels[0], 180);  // a bright image stays bright
  EXPECT_LT(s.pixels.back(), 60);
  // Grey: one channel.
  EXPECT_EQ(data::read_image_folder(d.file("imgs/test"), classes, 1, 20, 24).pixels.size(), 16u * 20 * 24);
  // A class the training split lacks, a file that is not a PNG: errors naming them.
  fs::create_directories(d.file("bad/other"));
  data::write_png(d.file("bad/other/x.png"), std::vector<uint8_t>(4 * 4 * 3, 1), 4, 4, 3);
  std::string e = error_of([&] { data::read_image_folder(d.file("bad"), classes, 3, 4, 4); });
  EXPECT_NE(e.find("class 'other' is not one of the training split's classes"), std::string::npos) << e;
  fs::create_directories(d.file("bad2/dark"));
  write_file(d.file("bad2/dark/broken.png"), "\x89PNG\r\n\x1a\n not really");
  e = error_of([&] { data::read_image_folder(d.file("bad2"), classes, 3, 4, 4); });
  EXPECT_NE(e.find("broken.png"), std::string::npos) << e;
  // End to end: the CLI learns the two classes (chance 0.5).
  auto r = lorakit::testing::run_cli("init-model --arch vit --hidden 32 --layers 1 --heads 2 --intermediate 64 "
                                     "--image-size 16 --patch-size 4 --num-labels 2 --out " + d.file("vit"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = lorakit::testing::run_cli("train --model " + d.file("vit") + " --task image-folder --data " + d.file("imgs") +
                                " --method full --lr 3e-3 --epochs 4 --batch-size 8 --threads 1 --no-progress --out " +
                                d.file("run"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto res = lorakit::testing::last_json_object(r.output);
  EXPECT_GE(res["final"]["eval_accuracy"].get<double>(), 0.9) << res.dump();
  r = lorakit::testing::run_cli("train --model " + d.file("vit") + " --task image-folder --out " + d.file("x"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("task image-folder needs --data"), std::string::npos) << r.output;
}
