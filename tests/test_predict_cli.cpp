// The CLI in a user's hands: predict (GLUE submission layout + logits), tokenize (ids, tokens, offsets),
// and the messages for a task that does not fit the adapter or model, an adapter moved away from its
// base, a RoBERTa sequence over its limit, and flags rejected before anything is loaded.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/errors.h"
#include "core/fileutil.h"
#include "models/checkpoint.h"
#include "support/helpers.h"
#include "text/glue.h"

using namespace lorakit;
using lorakit::testing::last_json_object;
using lorakit::testing::read_jsonl;
using lorakit::testing::run_cli;
using lorakit::testing::run_command;
using lorakit::testing::TempDir;
namespace fs = std::filesystem;

namespace {

std::vector<std::vector<std::string>> read_tsv(const std::string& path) {
  std::vector<std::vector<std::string>> rows;
  std::istringstream is(read_text_file(path));
  std::string line;
  while (std::getline(is, line)) rows.push_back(data::split_tsv_line(line));
  return rows;
}

class PredictCli : public lorakit::testing::TinyModelSuite<PredictCli> {
 public:
  static constexpr const char* kModelFlags = "--layers 1 --max-position 64";

 protected:
  static void SetUpTestSuite() {
    TinyModelSuite::SetUpTestSuite();
    if (HasFatalFailure()) return;
    for (const char* task : {"mrpc", "stsb"}) {
      auto t = run_cli("train --model " + model() + " --task " + task + " --data " + data() +
                       " --max-train-samples 48 --max-eval-samples 40 --max-seq-len 48 --batch-size 16 --epochs 1"
                       " --lr 2e-3 --threads 1 --no-progress --method lora --r 4 --alpha 8 --out " +
                       dir_->file(std::string("run-") + task));
      ASSERT_EQ(t.exit_code, 0) << t.output;
    }
  }
  static std::string adapter(const std::string& task) { return dir_->file("run-" + task) + "/last"; }
};

}  // namespace

TEST_F(PredictCli, ClassificationPredictionsAndLogitsAgreeWithEval) {
  const std::string out = dir_->file("mrpc.tsv"), logits = dir_->file("mrpc-logits.jsonl");
  auto r = run_cli("predict --adapter " + adapter("mrpc") + " --task mrpc --data " + data() +
                   " --split dev --max-seq-len 48 --threads 1 --out " + out + " --logits " + logits);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto rows = read_tsv(out);
  ASSERT_EQ(rows.size(), 409u);  // header + the 408 dev pairs
  EXPECT_EQ(rows[0], (std::vector<std::string>{"index", "prediction"}));
  auto lj = read_jsonl(logits);
  ASSERT_EQ(lj.size(), 408u);
  const auto& task = data::glue_task("mrpc");
  auto dev = data::read_glue_file(task, data() + "/MRPC/dev.tsv", data::LabelMode::Required);
  double correct = 0;
  for (size_t i = 0; i < lj.size(); ++i) {
    EXPECT_EQ(rows[i + 1][0], std::to_string(i));
    EXPECT_EQ(lj[i]["index"], i);
    auto l = lj[i]["logits"].get<std::vector<double>>();
    ASSERT_EQ(l.size(), 2u);
    const std::string label = l[1] > l[0] ? "1" : "0";
    EXPECT_EQ(rows[i + 1][1], label);
    correct += (label == "1") == (dev[i].label == 1.f);
  }
  // The same accuracy as `lorakit eval` on the same file and settings.
  auto ev = run_cli("eval --adapter " + adapter("mrpc") + " --task mrpc --data " + data() +
                    " --max-seq-len 48 --threads 1");
  ASSERT_EQ(ev.exit_code, 0) << ev.output;
  EXPECT_DOUBLE_EQ(correct / 408.0, last_json_object(ev.output)["eval_accuracy"].get<double>());

  // The merged model predicts the same labels.
  auto mr = run_cli("merge --adapter " + adapter("mrpc") + " --out " + dir_->file("merged"));
  ASSERT_EQ(mr.exit_code, 0) << mr.output;
  const std::string out2 = dir_->file("mrpc-merged.tsv");
  auto r2 = run_cli("predict --model " + dir_->file("merged") + " --task mrpc --data " + data() +
                    " --split dev --max-seq-len 48 --threads 1 --out " + out2);
  ASSERT_EQ(r2.exit_code, 0) << r2.output;
  EXPECT_EQ(read_tsv(out2), rows);
}

TEST_F(PredictCli, RegressionOnAnUnlabeledTestFile) {
  // A test.tsv in GLUE's STS-B test layout (no score column).
  const std::string in = dir_->file("sts-test.tsv");
  lorakit::testing::write_text(in,
                               "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\n"
                               "0\tmain-news\tx\t2012\t0\tnone\tnone\tA man is playing a flute.\tA man plays a flute.\n"
                               "1\tmain-news\tx\t2012\t1\tnone\tnone\tA cat sleeps.\tThe stock market fell.\n");
  const std::string out = dir_->file("sts.tsv"), logits = dir_->file("sts.jsonl");
  auto r = run_cli("predict --adapter " + adapter("stsb") + " --task stsb --input " + in +
                   " --max-seq-len 48 --threads 1 --out " + out + " --logits " + logits);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto rows = read_tsv(out);
  ASSERT_EQ(rows.size(), 3u);
  auto lj = read_jsonl(logits);
  ASSERT_EQ(lj.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    ASSERT_EQ(lj[i]["logits"].size(), 1u);
    const double v = lj[i]["logits"][0].get<double>();
    EXPECT_NEAR(std::stod(rows[i + 1][1]), v, 5e-4);  // written with 3 decimals
  }
  // Without test.tsv under --data, the default split names the way out.
  auto miss = run_cli("predict --adapter " + adapter("stsb") + " --task stsb --data " + data() + " --out " + out);
  EXPECT_EQ(miss.exit_code, 1);
  EXPECT_NE(miss.output.find("--split dev"), std::string::npos) << miss.output;
}

TEST_F(PredictCli, TokenizePrintsIdsTokensAndOffsets) {
  auto r = run_cli("tokenize --model " + model() + " --text 'Hello, ΟΔΟΣ world!'");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto j = nlohmann::json::parse(r.output.substr(r.output.find('{')));
  EXPECT_EQ(j["tokens"], (std::vector<std::string>{"[CLS]", "hello", ",", "ο", "##δ", "##ο", "##σ", "world", "!", "[SEP]"}));
  EXPECT_EQ(j["ids"], (std::vector<int64_t>{101, 7592, 1010, 1169, 29722, 29730, 29733, 2088, 999, 102}));
  EXPECT_EQ(j["offsets"], nlohmann::json::parse("[[0,0],[0,5],[5,6],[7,8],[8,9],[9,10],[10,11],[12,17],[17,18],[0,0]]"));
  // A file of texts, one JSON line each; --no-special-tokens leaves [CLS]/[SEP] out.
  const std::string in = dir_->file("texts.txt");
  lorakit::testing::write_text(in, "first line\nnaïve café\n");
  auto f = run_cli("tokenize --model " + model() + " --no-special-tokens --input " + in);
  ASSERT_EQ(f.exit_code, 0) << f.output;
  std::vector<nlohmann::json> lines;
  std::istringstream is(f.output);
  std::string line;
  while (std::getline(is, line))
    if (!line.empty() && line[0] == '{') lines.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[1]["tokens"], (std::vector<std::string>{"naive", "cafe"}));
  EXPECT_EQ(lines[1]["offsets"], nlohmann::json::parse("[[0,5],[6,10]]"));
  auto bad = run_cli("tokenize --model " + dir_->file("nope") + " --text x");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.output.find("nope"), std::string::npos) << bad.output;
}

TEST_F(PredictCli, TokenizeUseLite) {
  std::string err;
  const std::string& dir = lorakit::testing::use_lite_dir(&err);
  ASSERT_FALSE(dir.empty()) << err;
  auto r = run_cli("tokenize --model use-lite --text 'Hello world'");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto j = nlohmann::json::parse(r.output.substr(r.output.find('{')));
  ASSERT_FALSE(j["ids"].empty());
  // No special tokens; the pieces cover the text left to right, the space belongs to "▁world".
  EXPECT_EQ(j["offsets"].front()[0], 0);
  EXPECT_EQ(j["offsets"].back()[1], 11);
  std::string joined;
  for (auto& t : j["tokens"]) joined += t.get<std::string>();
  EXPECT_EQ(joined, "\xE2\x96\x81Hello\xE2\x96\x81world");
}

TEST_F(PredictCli, TaskThatDoesNotFitTheHeadIsRefusedInWords) {
  // An MRPC adapter (2 labels) on STS-B, an STS-B adapter (regression) on MRPC.
  auto a = run_cli("eval --adapter " + adapter("mrpc") + " --task stsb --data " + data() + " --threads 1");
  EXPECT_EQ(a.exit_code, 1);
  EXPECT_NE(a.output.find("2-label classification head"), std::string::npos) << a.output;
  EXPECT_NE(a.output.find("task stsb needs a regression head"), std::string::npos) << a.output;
  EXPECT_EQ(a.output.find("size of tensor"), std::string::npos) << a.output;
  auto b = run_cli("predict --adapter " + adapter("stsb") + " --task mrpc --data " + data() +
                   " --split dev --out " + dir_->file("x.tsv"));
  EXPECT_EQ(b.exit_code, 1);
  EXPECT_NE(b.output.find("regression head"), std::string::npos) << b.output;
  EXPECT_EQ(b.output.find("out of bounds"), std::string::npos) << b.output;
  EXPECT_FALSE(file_exists(dir_->file("x.tsv")));
  // A plain PEFT adapter (no lorakit_config.json): the head tensor's shape says it.
  const std::string plain = dir_->file("plain-stsb");
  fs::copy(adapter("stsb"), plain);
  fs::remove(plain + "/lorakit_config.json");
  auto c = run_cli("eval --adapter " + plain + " --task mrpc --data " + data() + " --threads 1");
  EXPECT_EQ(c.exit_code, 1);
  EXPECT_NE(c.output.find("different number of labels"), std::string::npos) << c.output;
  // A fine-tuned model directory (full FT / merged) carries its head too.
  auto m = run_cli("merge --adapter " + adapter("stsb") + " --out " + dir_->file("merged-stsb"));
  ASSERT_EQ(m.exit_code, 0) << m.output;
  auto d = run_cli("eval --model " + dir_->file("merged-stsb") + " --task mrpc --data " + data() + " --threads 1");
  EXPECT_EQ(d.exit_code, 1);
  EXPECT_NE(d.output.find("task mrpc needs a 2-label classification head"), std::string::npos) << d.output;
}

TEST_F(PredictCli, AdapterFoundFromAnotherDirectoryAndWhenMovedWithItsBase) {
  // base_model_name_or_path is absolute: eval works from any working directory.
  auto r = run_command("cd / && " + std::string(LORAKIT_CLI) + " eval --adapter " + adapter("mrpc") +
                       " --task mrpc --data " + data() + " --max-eval-samples 8 --threads 1 2>&1");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  // A tree moved as a whole still finds its base through the relative path in lorakit_config.json.
  const std::string moved = dir_->file("moved");
  fs::create_directories(moved + "/runs");
  fs::copy(model(), moved + "/model", fs::copy_options::recursive);
  fs::copy(adapter("mrpc"), moved + "/runs/last", fs::copy_options::recursive);
  nlohmann::json cfg = nlohmann::json::parse(read_text_file(moved + "/runs/last/adapter_config.json"));
  cfg["base_model_name_or_path"] = "/nonexistent/elsewhere/model";
  lorakit::testing::write_text(moved + "/runs/last/adapter_config.json", cfg.dump(2));
  nlohmann::json side = nlohmann::json::parse(read_text_file(moved + "/runs/last/lorakit_config.json"));
  side["base_model_relative"] = "../../model";
  lorakit::testing::write_text(moved + "/runs/last/lorakit_config.json", side.dump(2));
  auto m = run_cli("eval --adapter " + moved + "/runs/last --task mrpc --data " + data() +
                   " --max-eval-samples 8 --threads 1");
  EXPECT_EQ(m.exit_code, 0) << m.output;
  // Neither exists: the error says the path came from adapter_config.json.
  fs::remove_all(moved + "/model");
  auto e = run_cli("eval --adapter " + moved + "/runs/last --task mrpc --data " + data() + " --threads 1");
  EXPECT_EQ(e.exit_code, 1);
  EXPECT_NE(e.output.find("adapter_config.json: base_model_name_or_path '/nonexistent/elsewhere/model'"),
            std::string::npos)
      << e.output;
  EXPECT_NE(e.output.find("--model"), std::string::npos) << e.output;
}

TEST(CliMessages, RobertaLimitIs512NotMaxPositionEmbeddings) {
  TempDir d;
  auto r = lorakit::testing::init_tiny_model(d.file("rb"), "--arch roberta --layers 1 --max-position 512");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  LoadOptions lo;
  lo.num_labels = 2;
  LoadedModel m = load_model(d.file("rb"), lo);
  m.model->eval();
  at::Tensor ok = at::randint(5, 100, {1, 512}, at::kLong), over = at::randint(5, 100, {1, 513}, at::kLong);
  EXPECT_NO_THROW(m.model->forward(ok, {}, {}));
  try {
    m.model->forward(over, {}, {});
    ADD_FAILURE() << "513 tokens accepted";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("sequence of 513 tokens exceeds the model's limit of 512 tokens"), std::string::npos) << msg;
  }
  // The CLI caps --max-seq-len at that limit (as run_glue.py does) and says so.
  auto c = run_cli("eval --model " + d.file("rb") + " --task mrpc --data " + lorakit::testing::shared_dir() +
                   "/data/glue --max-seq-len 600 --max-eval-samples 4 --threads 1");
  EXPECT_EQ(c.exit_code, 0) << c.output;
  EXPECT_NE(c.output.find("--max-seq-len 600 is longer than the model's limit of 512 tokens"), std::string::npos)
      << c.output;
}

TEST(CliMessages, BadFlagsAreRejectedBeforeAnythingIsLoaded) {
  // The model does not exist: the flag, not the model, must be what the error is about.
  for (const char* flags : {"--batch-size 0", "--batch-size -3", "--eval-batch-size 0", "--lr 0", "--epochs 0",
                            "--max-seq-len 2"}) {
    SCOPED_TRACE(flags);
    auto r = run_cli(std::string("train --model /nonexistent/model --task mrpc --out /nonexistent/out ") + flags);
    EXPECT_EQ(r.exit_code, 1) << r.output;
    const std::string flag = std::string(flags).substr(0, std::string(flags).find(' '));
    EXPECT_NE(r.output.find(flag == "--epochs" ? "--epochs > 0" : flag), std::string::npos) << r.output;
    EXPECT_EQ(r.output.find("/nonexistent/model"), std::string::npos) << r.output;
  }
  auto p = run_cli("predict --model /nonexistent/model --task mrpc --input x.tsv --out y.tsv --batch-size 0");
  EXPECT_EQ(p.exit_code, 1);
  EXPECT_NE(p.output.find("--batch-size"), std::string::npos) << p.output;
}
