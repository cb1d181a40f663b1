#include "tasks/squad/task.h"

#include <ATen/ATen.h>

#include "core/errors.h"
#include "core/fileutil.h"
#include "models/checkpoint.h"
#include "tasks/squad/decode.h"
#include "tasks/squad/features.h"
#include "tasks/squad/squad.h"
#include "tasks/token_batch.h"
#include "text/tokenizer.h"

namespace lorakit {
namespace {

// The first `limit` questions of `d` (paragraphs and articles cut where they run out).
data::SquadDataset first_questions(const data::SquadDataset& d, int64_t limit) {
  if (limit <= 0 || static_cast<int64_t>(d.num_questions()) <= limit) return d;
  data::SquadDataset out;
  out.version = d.version;
  int64_t left = limit;
  for (auto& a : d.articles) {
    if (left <= 0) break;
    data::SquadArticle na{a.title, {}};
    for (auto& p : a.paragraphs) {
      if (left <= 0) break;
      data::SquadParagraph np{p.context, {}};
      for (auto& q : p.qas) {
        if (left <= 0) break;
        np.qas.push_back(q);
        --left;
      }
      na.paragraphs.push_back(std::move(np));
    }
    out.articles.push_back(std::move(na));
  }
  return out;
}

class SquadDataset : public TaskDataset {
 public:
  SquadDataset(data::SquadDataset d, std::vector<data::SquadFeature> f, int64_t pad_id, data::SquadDecodeOptions dec)
      : d_(std::move(d)), f_(std::move(f)), pad_(pad_id), decode_(dec) {
    for (auto& x : f_) lengths_.push_back(x.input_ids.size());
  }
  size_t size() const override { return f_.size(); }
  const std::vector<size_t>& lengths() const override { return lengths_; }
  Batch collate(const std::vector<size_t>& idx) const override {
    const int64_t B = static_cast<int64_t>(idx.size());
    Batch b;
    std::vector<TokenRow> rows;
    rows.reserve(idx.size());
    for (size_t i : idx) rows.emplace_back(&f_.at(i).input_ids, &f_.at(i).token_type_ids);
    pad_token_rows(b, rows, pad_);
    b.labels = at::empty({B, 2}, at::kLong);
    auto lab = b.labels.accessor<int64_t, 2>();
    for (int64_t r = 0; r < B; ++r) {
      const data::SquadFeature& e = f_[idx[static_cast<size_t>(r)]];
      lab[r][0] = e.start_position;
      lab[r][1] = e.end_position;
    }
    b.indices = idx;
    return b;
  }
  const data::SquadDataset& examples() const { return d_; }
  const std::vector<data::SquadFeature>& features() const { return f_; }
  const data::SquadDecodeOptions& decode_options() const { return decode_; }

 private:
  data::SquadDataset d_;
  std::vector<data::SquadFeature> f_;
  std::vector<size_t> lengths_;
  int64_t pad_;
  data::SquadDecodeOptions decode_;  // --n-best, --max-answer-len
};

class SquadCollector : public MetricCollector {
 public:
  explicit SquadCollector(const SquadDataset& ds)
      : ds_(ds), o_(ds.decode_options()), start_(ds.size()), end_(ds.size()) {}
  void add(const at::Tensor& outputs, const Batch& b) override {
    at::Tensor out = outputs.detach().to(at::kFloat).contiguous();
    for (size_t r = 0; r < b.indices.size(); ++r) {
      const size_t i = b.indices[r];
      const int64_t n = static_cast<int64_t>(ds_.features().at(i).input_ids.size());
      at::Tensor row = out[static_cast<int64_t>(r)].narrow(0, 0, n).contiguous();  // [n, 2]
      auto a = row.accessor<float, 2>();
      start_[i].resize(static_cast<size_t>(n));
      end_[i].resize(static_cast<size_t>(n));
      for (int64_t t = 0; t < n; ++t) {
        start_[i][static_cast<size_t>(t)] = a[t][0];
        end_[i][static_cast<size_t>(t)] = a[t][1];
      }
    }
  }
  std::map<std::string, double> finish() override {
    auto preds = data::decode_squad_predictions(ds_.examples(), ds_.features(), start_, end_, o_);
    data::SquadScores s = data::squad_evaluate(ds_.examples(), preds);
    return {{"exact_match", s.exact_match}, {"f1", s.f1}};
  }

 private:
  const SquadDataset& ds_;
  data::SquadDecodeOptions o_;
  std::vector<std::vector<float>> start_, end_;
};

class SquadTask : public Task {
 public:
  std::string name() const override { return "squad"; }
  std::string kind() const override { return "squad"; }
  std::string main_metric() const override { return "f1"; }
  std::vector<std::string> metric_names() const override { return {"exact_match", "f1"}; }
  void head_options(LoadOptions& lo) const override {
    lo.head = "question-answering";
    lo.num_labels = 2;
    lo.regression = false;
    lo.sentence_pair = true;
    lo.pair_mode = "concat";
  }
  void check_model(const LoadedModel& lm) const override {
    if (lm.config.is_vit())
      throw Error(lm.dir + " is an image model (model_type vit); task squad needs a text model");
  }

  void resolve_files(TaskOptions& o, bool need_train) const override {
    Task::resolve_files(o, need_train);
    if ((!need_train || !o.train_file.empty()) && !o.eval_file.empty()) return;
    const std::string dir = o.data.empty() ? "../shared/data/squad" : o.data;
    if (!file_exists(join_path(dir, "dev-v1.1.json")))
      throw Error(dir + ": no dev-v1.1.json (give --data, the folder of the SQuAD v1.1 files, or --train-file and "
                  "--eval-file)");
  }

  std::unique_ptr<TaskDataset> load(Split split, const LoadedModel& lm, const TaskOptions& o) const override {
    check_model(lm);
    const bool train = split == Split::Train;
    data::SquadDataset d = read_split(train, o);
    d = first_questions(d, train ? o.max_train_samples : o.max_eval_samples);
    auto tok = text::load_tokenizer(lm.dir);
    data::SquadFeatureOptions fo;
    fo.max_seq_len = static_cast<size_t>(o.max_seq_len);
    fo.doc_stride = o.doc_stride > 0 ? static_cast<size_t>(o.doc_stride)
                                     : static_cast<size_t>(std::min<int64_t>(128, o.max_seq_len / 4));
    auto features = data::make_squad_features(d, *tok, fo);
    o.notes.push_back(std::string(train ? "train: " : "eval: ") + std::to_string(d.articles.size()) + " articles, " +
                      std::to_string(d.num_questions()) + " questions, " + std::to_string(features.size()) +
                      " windows (max " + std::to_string(fo.max_seq_len) + " tokens, stride " +
                      std::to_string(fo.doc_stride) + ")");
    data::SquadDecodeOptions dec;
    dec.n_best = static_cast<size_t>(o.n_best);
    dec.max_answer_len = static_cast<size_t>(o.max_answer_len);
    return std::make_unique<SquadDataset>(std::move(d), std::move(features), tok->pad_id(), dec);
  }

  at::Tensor per_sample_loss(const at::Tensor& outputs, const at::Tensor& labels) const override {
    at::Tensor s = at::cross_entropy_loss(outputs.select(-1, 0), labels.select(1, 0), {}, at::Reduction::None);
    at::Tensor e = at::cross_entropy_loss(outputs.select(-1, 1), labels.select(1, 1), {}, at::Reduction::None);
    return (s + e) * 0.5;
  }
  at::Tensor correct(const at::Tensor& outputs, const at::Tensor& labels, double) const override {
    at::Tensor o = outputs.detach();
    return o.select(-1, 0).argmax(-1).eq(labels.select(1, 0)).logical_and(o.select(-1, 1).argmax(-1).eq(labels.select(1, 1)));
  }
  std::unique_ptr<MetricCollector> collector(const TaskDataset& ds) const override {
    const auto* sq = dynamic_cast<const SquadDataset*>(&ds);
    if (!sq) throw Error("task squad: evaluation data is not a SQuAD dataset");
    return std::make_unique<SquadCollector>(*sq);
  }

 private:
  data::SquadDataset read_split(bool train, const TaskOptions& o) const {
    const std::string& given = train ? o.train_file : o.eval_file;
    if (!given.empty()) return data::read_squad_file(given);
    const std::string dir = o.data.empty() ? "../shared/data/squad" : o.data;
    const std::string own = join_path(dir, train ? "train-v1.1.json" : "dev-v1.1.json");
    const std::string dev = join_path(dir, "dev-v1.1.json");
    const std::string tr = join_path(dir, "train-v1.1.json");
    if (file_exists(tr) && file_exists(dev)) return data::read_squad_file(own);
    if (!file_exists(dev))
      throw Error(dir + ": no dev-v1.1.json (give --data, the folder of the SQuAD v1.1 files, or --train-file and "
                  "--eval-file)");
    data::SquadDataset all = data::read_squad_file(dev);
    if (all.articles.size() <= kSquadTrainArticles)
      throw Error(dev + ": " + std::to_string(all.articles.size()) + " articles, too few to split by article (" +
                  std::to_string(kSquadTrainArticles) + " train + the rest evaluate)");
    auto parts = data::split_by_article(all, kSquadTrainArticles);
    o.notes.push_back("squad: only " + dev + " here: split by article, the first " +
                      std::to_string(kSquadTrainArticles) + " train, the last " +
                      std::to_string(all.articles.size() - kSquadTrainArticles) + " evaluate");
    return train ? parts.first : parts.second;
  }
};

}  // namespace

std::unique_ptr<Task> make_squad_task() { return std::make_unique<SquadTask>(); }

}  // namespace lorakit
