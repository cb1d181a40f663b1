// GLUE registry and TSV readers: real GLUE files in shared/data/glue and
// malformed / synthetic files written to a temporary directory.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <string>

#include <unistd.h>

#include "text/glue.h"

namespace fs = std::filesystem;
using lorakit::data::Example;
using lorakit::data::glue_task;
using lorakit::data::glue_task_names;
using lorakit::data::GlueError;
using lorakit::data::LabelMode;
using lorakit::data::read_glue_file;
using lorakit::data::TaskInfo;

namespace {

std::string glue_path(const std::string& dir, const std::string& file) {
  return std::string(LORAKIT_SHARED_DIR) + "/data/glue/" + dir + "/" + file;
}

std::vector<Example> read_real(const std::string& task, const std::string& file) {
  const TaskInfo& t = glue_task(task);
  return read_glue_file(t, glue_path(t.dir_name, file), LabelMode::Required);
}

size_t count_label(const std::vector<Example>& v, float label) {
  size_t n = 0;
  for (const auto& e : v) n += e.label == label;
  return n;
}

class GlueTmp : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           (std::string("lorakit_glue_") + info->name() + "_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& content) {
    const std::string p = (dir_ / name).string();
    std::ofstream(p, std::ios::binary) << content;
    return p;
  }

  // Expects a GlueError whose message contains every one of `parts`.
  static void expect_error(const std::function<void()>& f,
                           std::initializer_list<std::string> parts) {
    try {
      f();
      ADD_FAILURE() << "expected GlueError";
    } catch (const GlueError& e) {
      const std::string msg = e.what();
      for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos)
          << "message '" << msg << "' lacks '" << p << "'";
    }
  }

  fs::path dir_;
};

}  // namespace

// ---------------------------------------------------------------- registry

TEST(GlueRegistry, NamesAndAliases) {
  const std::vector<std::string> want = {"cola", "sst2", "mrpc", "stsb", "qqp",
                                         "mnli", "qnli", "rte", "wnli"};
  EXPECT_EQ(glue_task_names(), want);
  EXPECT_EQ(glue_task("MRPC").name, "mrpc");
  EXPECT_EQ(glue_task("mrpc").dir_name, "MRPC");
  EXPECT_EQ(glue_task("SST-2").name, "sst2");
  EXPECT_EQ(glue_task("sst2").dir_name, "SST-2");
  EXPECT_EQ(glue_task("sts-b").name, "stsb");
  EXPECT_EQ(glue_task("STS_B").dir_name, "STS-B");
  EXPECT_EQ(glue_task("CoLA").name, "cola");
  EXPECT_EQ(&glue_task("Qnli"), &glue_task("QNLI"));
  for (const auto& n : want) EXPECT_EQ(glue_task(n).name, n);
}

TEST(GlueRegistry, UnknownTaskListsKnownOnes) {
  try {
    glue_task("squad");
    FAIL() << "expected GlueError";
  } catch (const GlueError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("squad"), std::string::npos) << m;
    EXPECT_NE(m.find("cola"), std::string::npos) << m;
    EXPECT_NE(m.find("wnli"), std::string::npos) << m;
  }
}

TEST(GlueRegistry, TaskProperties) {
  const TaskInfo& stsb = glue_task("stsb");
  EXPECT_TRUE(stsb.is_regression);
  EXPECT_EQ(stsb.num_labels, 1);
  EXPECT_TRUE(stsb.has_pair);
  EXPECT_EQ(stsb.main_metric, "pearson");

  const TaskInfo& mnli = glue_task("mnli");
  EXPECT_EQ(mnli.num_labels, 3);
  EXPECT_EQ(mnli.label_names,
            (std::vector<std::string>{"contradiction", "entailment", "neutral"}));
  EXPECT_EQ(mnli.eval_files,
            (std::vector<std::string>{"dev_matched.tsv", "dev_mismatched.tsv"}));
  EXPECT_EQ(mnli.train_file, "train.tsv");

  EXPECT_EQ(glue_task("qnli").label_names,
            (std::vector<std::string>{"entailment", "not_entailment"}));
  EXPECT_EQ(glue_task("rte").label_names,
            (std::vector<std::string>{"entailment", "not_entailment"}));
  EXPECT_EQ(glue_task("wnli").label_names, (std::vector<std::string>{"0", "1"}));

  const TaskInfo& cola = glue_task("cola");
  EXPECT_FALSE(cola.has_pair);
  EXPECT_FALSE(cola.is_regression);
  EXPECT_EQ(cola.num_labels, 2);
  EXPECT_EQ(cola.main_metric, "mcc");
  EXPECT_EQ(cola.eval_files, (std::vector<std::string>{"dev.tsv"}));
  EXPECT_FALSE(glue_task("sst2").has_pair);
  EXPECT_TRUE(glue_task("mrpc").has_pair);
  EXPECT_EQ(glue_task("mrpc").main_metric, "accuracy");
  EXPECT_EQ(glue_task("qqp").metric_names,
            (std::vector<std::string>{"accuracy", "f1", "acc_and_f1"}));
}

// ---------------------------------------------------------------- real files

TEST(GlueRealFiles, MrpcTrainAndDev) {
  const auto train = read_real("mrpc", "train.tsv");
  ASSERT_EQ(train.size(), 3668u);
  // Line 1 is the BOM-prefixed header; it was found by name despite the BOM.
  EXPECT_EQ(train[0].line, 2u);
  EXPECT_TRUE(train[0].has_b);
  EXPECT_EQ(train[0].text_a,
            "Amrozi accused his brother, whom he called \"the witness\", of deliberately "
            "distorting his evidence.");
  EXPECT_EQ(train[0].text_b,
            "Referring to him as only \"the witness\", Amrozi accused his brother of "
            "deliberately distorting his evidence.");
  EXPECT_EQ(train[0].label, 1.f);
  EXPECT_EQ(train[1].label, 0.f);
  EXPECT_EQ(train[1].text_a.rfind("Yucaipa owned Dominick's", 0), 0u);
  EXPECT_EQ(count_label(train, 1.f), 2474u);
  EXPECT_EQ(count_label(train, 0.f), 1194u);

  const auto dev = read_real("mrpc", "dev.tsv");
  ASSERT_EQ(dev.size(), 408u);
  // An unbalanced quote is kept verbatim: GLUE TSVs are not quoted CSV.
  EXPECT_EQ(dev[0].text_b,
            "\"The foodservice pie business does not fit our long-term growth strategy.");
  EXPECT_EQ(dev[0].label, 1.f);
  EXPECT_EQ(dev.back().line, 409u);
  EXPECT_EQ(dev.back().text_a.rfind("Ex-KGB agent Putin", 0), 0u);
  EXPECT_EQ(count_label(dev, 1.f), 279u);
}

TEST(GlueRealFiles, Sst2TrainAndDev) {
  const auto train = read_real("sst2", "train.tsv");
  ASSERT_EQ(train.size(), 67349u);
  // Text is returned as stored, including SST-2's trailing space.
  EXPECT_EQ(train[0].text_a, "hide new secretions from the parental units ");
  EXPECT_FALSE(train[0].has_b);
  EXPECT_TRUE(train[0].text_b.empty());
  EXPECT_EQ(train[0].label, 0.f);
  EXPECT_EQ(train[0].line, 2u);
  EXPECT_EQ(count_label(train, 1.f), 37569u);
  EXPECT_EQ(count_label(train, 0.f), 29780u);
  EXPECT_EQ(train.back().text_a,
            "this new jangle of noise , mayhem and stupidity must be a serious contender "
            "for the title . ");
  EXPECT_EQ(train.back().line, 67350u);

  const auto dev = read_real("sst2", "dev.tsv");
  ASSERT_EQ(dev.size(), 872u);
  EXPECT_EQ(dev[0].text_a, "it 's a charming and often affecting journey . ");
  EXPECT_EQ(dev[0].label, 1.f);
  EXPECT_EQ(dev[1].text_a, "unflinchingly bleak and desperate ");
  EXPECT_EQ(dev[1].label, 0.f);
  EXPECT_EQ(count_label(dev, 1.f), 444u);
}

TEST(GlueRealFiles, ColaTrainAndDev) {
  const auto train = read_real("cola", "train.tsv");
  ASSERT_EQ(train.size(), 8551u);
  EXPECT_EQ(train[0].text_a,
            "Our friends won't buy this analysis, let alone the next one we propose.");
  EXPECT_EQ(train[0].label, 1.f);
  EXPECT_EQ(train[0].line, 1u);  // no header
  EXPECT_EQ(train.back().text_a, "Gilgamesh hasn't kissed Ishtar.");
  EXPECT_EQ(count_label(train, 1.f), 6023u);
  EXPECT_EQ(count_label(train, 0.f), 2528u);

  // dev.tsv has no final newline: the last row is still read.
  const auto dev = read_real("cola", "dev.tsv");
  ASSERT_EQ(dev.size(), 1043u);
  EXPECT_EQ(dev[0].text_a, "The sailors rode the breeze clear of the rocks.");
  EXPECT_EQ(dev.back().text_a, "John talked to Bill about himself.");
  EXPECT_EQ(dev.back().line, 1043u);
  EXPECT_EQ(count_label(dev, 1.f), 721u);
  EXPECT_EQ(count_label(dev, 0.f), 322u);
}

TEST(GlueRealFiles, StsbTrainAndDev) {
  const auto train = read_real("stsb", "train.tsv");
  ASSERT_EQ(train.size(), 5749u);
  EXPECT_EQ(train[0].text_a, "A plane is taking off.");
  EXPECT_EQ(train[0].text_b, "An air plane is taking off.");
  EXPECT_FLOAT_EQ(train[0].label, 5.0f);
  EXPECT_EQ(train[1].text_a, "A man is playing a large flute.");
  EXPECT_FLOAT_EQ(train[1].label, 3.8f);
  double sum = 0;
  for (const auto& e : train) {
    EXPECT_GE(e.label, 0.f);
    EXPECT_LE(e.label, 5.f);
    sum += e.label;
  }
  // awk -F'\t' 'NR>1{s+=$10}' STS-B/train.tsv -> 15528.043397
  EXPECT_NEAR(sum, 15528.043397, 1e-2);

  const auto dev = read_real("stsb", "dev.tsv");
  ASSERT_EQ(dev.size(), 1500u);
  EXPECT_EQ(dev[0].text_a, "A man with a hard hat is dancing.");
  EXPECT_EQ(dev[0].text_b, "A man wearing a hard hat is dancing.");
  EXPECT_FLOAT_EQ(dev[0].label, 5.0f);
  EXPECT_FLOAT_EQ(dev[1].label, 4.75f);
  EXPECT_EQ(dev.back().text_a, "New video shows US police officers beating mentally-ill man");
  EXPECT_FLOAT_EQ(dev.back().label, 0.0f);
}

// ---------------------------------------------------------------- malformed

TEST_F(GlueTmp, GlueErrorTooFewColumns) {
  const std::string p = write("train.tsv",
                              "\xEF\xBB\xBFQuality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
                              "1\t1\t2\tA cat.\tA cat sat.\n"
                              "0\t3\t4\tA dog.\n");
  expect_error([&] { read_glue_file(glue_task("mrpc"), p); },
               {p + ":3:", "expected 5 tab-separated columns, got 4"});
}

TEST_F(GlueTmp, GlueErrorTooManyColumnsColaHeaderless) {
  const std::string p = write("train.tsv",
                              "gj04\t1\t\tGood sentence.\n"
                              "gj04\t0\t*\tBad\tsentence.\n");
  expect_error([&] { read_glue_file(glue_task("cola"), p); },
               {p + ":2:", "expected 4 tab-separated columns, got 5"});
}

TEST_F(GlueTmp, GlueErrorBadLabel) {
  const std::string p = write("dev.tsv", "sentence\tlabel\ngood movie\t1\nodd movie\t2\n");
  expect_error([&] { read_glue_file(glue_task("sst2"), p); },
               {p + ":3:", "label '2'", "0, 1"});
  const std::string q = write("rte.tsv",
                              "index\tsentence1\tsentence2\tlabel\n"
                              "0\tA.\tB.\tentailment\n"
                              "1\tA.\tB.\tcontradiction\n");
  expect_error([&] { read_glue_file(glue_task("rte"), q); },
               {q + ":3:", "'contradiction'", "not_entailment"});
}

TEST_F(GlueTmp, GlueErrorBadScore) {
  const std::string hdr = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\t"
                          "sentence1\tsentence2\tscore\n";
  const std::string p = write("a.tsv", hdr + "0\tg\tf\t2012\t1\tn\tn\tA.\tB.\tabc\n");
  expect_error([&] { read_glue_file(glue_task("stsb"), p); },
               {p + ":2:", "'abc'", "finite number"});
  const std::string q = write("b.tsv", hdr + "0\tg\tf\t2012\t1\tn\tn\tA.\tB.\t1.5\n" +
                                           "1\tg\tf\t2012\t1\tn\tn\tA.\tB.\tnan\n");
  expect_error([&] { read_glue_file(glue_task("stsb"), q); }, {q + ":3:", "'nan'"});
  const std::string r = write("c.tsv", hdr + "0\tg\tf\t2012\t1\tn\tn\tA.\tB.\t2.5x\n");
  expect_error([&] { read_glue_file(glue_task("stsb"), r); }, {r + ":2:", "'2.5x'"});
}

TEST_F(GlueTmp, GlueErrorMissingHeader) {
  // SST-2 rows without the header line: line 1 is taken as a header and lacks "sentence".
  const std::string p = write("train.tsv", "good movie\t1\nbad movie\t0\n");
  expect_error([&] { read_glue_file(glue_task("sst2"), p); },
               {p + ":1:", "'sentence'"});
  // MRPC without header.
  const std::string q = write("mrpc.tsv", "1\t702876\t702977\tA.\tB.\n");
  expect_error([&] { read_glue_file(glue_task("mrpc"), q); }, {q + ":1:", "'#1 String'"});
  // A header whose label column is misspelled: fine in Auto mode only if that is
  // meant as a test file; Required mode names the column.
  const std::string r = write("dev.tsv", "sentence\tlabels\ngood\t1\n");
  expect_error([&] { read_glue_file(glue_task("sst2"), r, LabelMode::Required); },
               {r + ":1:", "'label'"});
}

TEST_F(GlueTmp, GlueErrorMissingEmptyOrHeaderOnly) {
  const std::string missing = (dir_ / "nope.tsv").string();
  expect_error([&] { read_glue_file(glue_task("sst2"), missing); }, {missing, "cannot open"});
  expect_error([&] { read_glue_file(glue_task("sst2"), dir_.string()); },
               {dir_.string(), "directory"});
  const std::string empty = write("empty.tsv", "");
  expect_error([&] { read_glue_file(glue_task("cola"), empty); }, {empty + ":1:", "empty"});
  const std::string blank = write("blank.tsv", "\r\n\n");
  expect_error([&] { read_glue_file(glue_task("sst2"), blank); }, {blank + ":1:", "empty"});
  const std::string hdr = write("hdr.tsv", "sentence\tlabel\n");
  expect_error([&] { read_glue_file(glue_task("sst2"), hdr); }, {hdr + ":1:", "no examples"});
}

// ---------------------------------------------------------------- layouts

TEST_F(GlueTmp, GlueCrlfBomAndTrailingEmptyLine) {
  const std::string p = write("cola.tsv",
                              "\xEF\xBB\xBFgj04\t1\t\tFirst one.\r\n"
                              "gj04\t0\t*\tSecond one.\r\n"
                              "\r\n");
  const auto v = read_glue_file(glue_task("cola"), p);
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(v[0].text_a, "First one.");
  EXPECT_EQ(v[0].label, 1.f);
  EXPECT_EQ(v[1].text_a, "Second one.");  // no stray '\r'
  EXPECT_EQ(v[1].label, 0.f);
  EXPECT_EQ(v[1].line, 2u);

  const std::string q = write("sst.tsv", "sentence\tlabel\r\na b \t1\r\nc\t0\r\n\r\n");
  const auto w = read_glue_file(glue_task("sst2"), q);
  ASSERT_EQ(w.size(), 2u);
  EXPECT_EQ(w[0].text_a, "a b ");
  EXPECT_EQ(w[1].label, 0.f);
}

TEST_F(GlueTmp, GlueColumnsFoundByHeaderName) {
  // STS-B columns in a different order: found by name, not position.
  const std::string p = write("stsb.tsv", "score\tsentence2\tsentence1\n3.25\tSecond.\tFirst.\n");
  const auto v = read_glue_file(glue_task("stsb"), p);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].text_a, "First.");
  EXPECT_EQ(v[0].text_b, "Second.");
  EXPECT_FLOAT_EQ(v[0].label, 3.25f);
}

TEST_F(GlueTmp, GlueMnliLayoutsAndLabels) {
  // dev layout: label1..label5 then gold_label last; quotes kept verbatim.
  const std::string dev =
      "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\t"
      "sentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tlabel2\tlabel3\t"
      "label4\tlabel5\tgold_label\n"
      "0\t63735\t63735n\tslate\t( ( b ) )\t( c )\t(ROOT b)\t(ROOT c)\t"
      "The new rights are nice enough\tEveryone really likes the \"newest benefits \t"
      "neutral\tentailment\tneutral\tneutral\tneutral\tneutral\n"
      "1\t91383\t91383c\tgovernment\tx\ty\tx\ty\tThis site includes a list.\t"
      "The Government Executive articles housed on the website are not able to be searched.\t"
      "contradiction\tcontradiction\tcontradiction\tcontradiction\tcontradiction\tcontradiction\n"
      "2\t755\t755e\tfiction\tx\ty\tx\ty\tuh i don't know\tI like it.\t"
      "entailment\tentailment\tentailment\tentailment\tentailment\tentailment\n";
  const std::string p = write("dev_matched.tsv", dev);
  const auto v = read_glue_file(glue_task("mnli"), p, LabelMode::Required);
  ASSERT_EQ(v.size(), 3u);
  EXPECT_EQ(v[0].text_a, "The new rights are nice enough");
  EXPECT_EQ(v[0].text_b, "Everyone really likes the \"newest benefits ");
  EXPECT_EQ(v[0].label, 2.f);  // neutral
  EXPECT_EQ(v[1].label, 0.f);  // contradiction
  EXPECT_EQ(v[2].label, 1.f);  // entailment

  // train layout: label1 then gold_label (12 columns).
  const std::string train =
      "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\t"
      "sentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tgold_label\n"
      "0\t1\t1n\tg\tx\ty\tx\ty\tA\tB\tneutral\tneutral\n"
      "1\t2\t2e\tg\tx\ty\tx\ty\tC\tD\tentailment\t-\n";
  const std::string q = write("train.tsv", train);
  expect_error([&] { read_glue_file(glue_task("mnli"), q); }, {q + ":3:", "label '-'"});
}

TEST_F(GlueTmp, GlueQqpQnliRteWnli) {
  const std::string qqp = write(
      "qqp.tsv",
      "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"
      "201359\t303345\t303346\tWhy are African-Americans so beautiful?\t"
      "Why are hispanics so beautiful?\t0\n"
      "263843\t69383\t380476\tI want to pursue PhD in Computer Science about \"social network\t"
      "\"Is there any good \"\"research\"\" on it?\t1\n");
  const auto a = read_glue_file(glue_task("qqp"), qqp);
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[0].text_b, "Why are hispanics so beautiful?");
  EXPECT_EQ(a[0].label, 0.f);
  EXPECT_EQ(a[1].text_a, "I want to pursue PhD in Computer Science about \"social network");
  EXPECT_EQ(a[1].text_b, "\"Is there any good \"\"research\"\" on it?");
  EXPECT_EQ(a[1].label, 1.f);

  const std::string qnli = write("qnli.tsv",
                                 "index\tquestion\tsentence\tlabel\n"
                                 "0\tWhat came into force?\tThe law came.\tentailment\n"
                                 "1\tWhat is it?\tNothing.\tnot_entailment\n");
  const auto b = read_glue_file(glue_task("qnli"), qnli);
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(b[0].text_a, "What came into force?");
  EXPECT_EQ(b[0].text_b, "The law came.");
  EXPECT_EQ(b[0].label, 0.f);
  EXPECT_EQ(b[1].label, 1.f);

  const std::string rte = write("rte.tsv",
                                "index\tsentence1\tsentence2\tlabel\n"
                                "0\tNo weapons.\tWeapons found.\tnot_entailment\n");
  const auto c = read_glue_file(glue_task("rte"), rte);
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].text_b, "Weapons found.");
  EXPECT_EQ(c[0].label, 1.f);

  const std::string wnli = write("wnli.tsv",
                                 "index\tsentence1\tsentence2\tlabel\n"
                                 "0\tI stuck a pin.\tThe pin had a hole.\t1\n"
                                 "1\tJohn left.\tHe left.\t0\n");
  const auto d = read_glue_file(glue_task("wnli"), wnli);
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(d[0].label, 1.f);
  EXPECT_EQ(d[1].label, 0.f);
  expect_error([&] {
    read_glue_file(glue_task("wnli"), write("w2.tsv", "index\tsentence1\tsentence2\tlabel\n"
                                                      "0\tA.\tB.\tentailment\n"));
  }, {"w2.tsv:2:", "'entailment'"});
}

TEST_F(GlueTmp, GlueUnlabeledTestLayouts) {
  const std::string p = write("test.tsv", "index\tsentence\n0\tuneasy mishmash of styles\n"
                                          "1\tthis film 's relationship\n");
  const auto v = read_glue_file(glue_task("sst2"), p);
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(v[0].text_a, "uneasy mishmash of styles");
  EXPECT_TRUE(std::isnan(v[0].label));
  expect_error([&] { read_glue_file(glue_task("sst2"), p, LabelMode::Required); },
               {p + ":1:", "'label'"});

  const std::string c = write("cola_test.tsv", "index\tsentence\n0\tBill whistled past the house.\n");
  const auto w = read_glue_file(glue_task("cola"), c);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0].text_a, "Bill whistled past the house.");
  EXPECT_TRUE(std::isnan(w[0].label));
  EXPECT_EQ(w[0].line, 2u);
  expect_error([&] { read_glue_file(glue_task("cola"), c, LabelMode::Required); },
               {c + ":1:", "test layout"});
}

TEST(GlueSplit, TabOnlyNoQuotes) {
  using lorakit::data::split_tsv_line;
  EXPECT_EQ(split_tsv_line("a\t\"b\tc\"\t"),
            (std::vector<std::string>{"a", "\"b", "c\"", ""}));
  EXPECT_EQ(split_tsv_line(""), (std::vector<std::string>{""}));
  EXPECT_EQ(split_tsv_line("x, y"), (std::vector<std::string>{"x, y"}));
}
