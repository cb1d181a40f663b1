// init-model: a randomly initialised model directory in Hugging Face layout for any family, with the
// family's own tokenizer files (WordPiece vocab.txt; RoBERTa's vocab.json + merges.txt; DeBERTa's
// spm.model) or, for ViT, preprocessor_config.json.
#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/errors.h"
#include "core/fileutil.h"
#include "models/checkpoint.h"
#include "models/vit.h"
#include "text/bpe_tokenizer.h"
#include "text/glue.h"
#include "text/sentencepiece_tokenizer.h"
#include "text/tokenizer.h"

namespace lorakit::cli {
namespace {

struct Opts {
  std::string arch = "bert", vocab, out;
  int64_t hidden = 64, layers = 2, heads = 4, intermediate = 128, max_pos = 512, num_labels = 2;
  int64_t image_size = 224, patch_size = 16, channels = 3, position_buckets = -1, spm_vocab_size = 2000;
  std::string spm_corpus;
  uint64_t seed = 42;
  double dropout = -1;  // < 0: the family's default (0.1; ViT 0)
};

// ../shared/data/<rel> next to the source tree the binary was built in (build/lorakit → <repo>/../shared),
// or under $LORAKIT_SHARED_DIR. Empty when neither exists.
std::string find_shared_data(const std::string& rel) {
  std::vector<std::filesystem::path> roots;
  if (const char* env = std::getenv("LORAKIT_SHARED_DIR")) roots.emplace_back(env);
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    roots.push_back(exe.parent_path().parent_path().parent_path() / "shared");
    roots.push_back(exe.parent_path().parent_path() / "shared");
  }
  for (auto& r : roots)
    if (std::filesystem::exists(r / "data" / rel)) return (r / "data" / rel).string();
  return "";
}

std::string default_vocab(const std::string& arch) {
  const std::string rel = arch == "roberta" ? "vocab/roberta-base" : "vocab/bert-base-uncased-vocab.txt";
  std::string p = find_shared_data(rel);
  if (p.empty())
    throw Error("init-model --arch " + arch + ": no --vocab given and ../shared/data/" + rel +
                " not found (set LORAKIT_SHARED_DIR or pass --vocab)");
  return p;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

struct TokenizerInfo {
  int64_t vocab_size = 0, pad_id = 0;
};

// The sentences a DeBERTa SentencePiece model is trained on: a text file, one sentence per line, or
// (default) both columns of ../shared's GLUE MRPC train.tsv.
std::vector<std::string> spm_corpus(const std::string& path) {
  std::vector<std::string> out;
  if (!path.empty()) {
    std::istringstream is(read_text_file(path));
    for (std::string line; std::getline(is, line);) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (!line.empty()) out.push_back(line);
    }
    if (out.empty()) throw Error(path + ": --spm-corpus has no sentences");
    return out;
  }
  const std::string mrpc = find_shared_data("glue/MRPC/train.tsv");
  if (mrpc.empty())
    throw Error("init-model --arch deberta-v2: no --vocab spm.model, no --spm-corpus, and ../shared/data/glue/MRPC "
                "not found to train a SentencePiece model on");
  for (auto& e : data::read_glue_file(data::glue_task("mrpc"), mrpc)) {
    out.push_back(e.text_a);
    if (e.has_b) out.push_back(e.text_b);
  }
  return out;
}

// Writes the tokenizer files of `arch` into `out` and tells the vocabulary size and pad id.
//   bert / distilbert: a WordPiece vocab.txt (default ../shared's bert-base-uncased);
//   roberta: byte-level BPE — a directory with vocab.json + merges.txt (or tokenizer.json), or a
//            vocab.json with merges.txt beside it (default ../shared's roberta-base);
//   deberta-v2: a SentencePiece spm.model, or one trained here on --spm-corpus;
//   any text family: a vocab.txt given explicitly makes it WordPiece.
TokenizerInfo write_tokenizer(const Opts& o) {
  TokenizerInfo info;
  auto finish = [&](const text::Tokenizer& t) {
    info.vocab_size = static_cast<int64_t>(t.vocab_size());
    info.pad_id = t.pad_id();
  };
  const bool wordpiece = ends_with(o.vocab, ".txt") || (o.vocab.empty() && (o.arch == "bert" || o.arch == "distilbert"));
  if (o.arch == "roberta" && !wordpiece) {
    const std::string v = o.vocab.empty() ? default_vocab(o.arch) : o.vocab;
    auto tok = dir_exists(v) ? text::BpeTokenizer::from_model_dir(v)
                             : text::BpeTokenizer::from_files(v, join_path(std::filesystem::path(v).parent_path().string(),
                                                                           "merges.txt"));
    tok.save(o.out);
    finish(tok);
    return info;
  }
  if (o.arch == "deberta-v2" && !wordpiece) {
    if (!o.vocab.empty()) {
      auto tok = dir_exists(o.vocab) ? text::SentencePieceTokenizer::from_model_dir(o.vocab)
                                     : text::SentencePieceTokenizer::from_model_file(o.vocab);
      tok.save(o.out);
      finish(tok);
      return info;
    }
    text::SentencePieceTrainOptions to;
    to.vocab_size = static_cast<size_t>(o.spm_vocab_size);
    auto tok = text::train_sentencepiece(spm_corpus(o.spm_corpus), to);
    tok.save(o.out);
    finish(tok);
    return info;
  }
  const std::string vocab = o.vocab.empty() ? default_vocab("bert") : o.vocab;
  auto tok = text::BertTokenizer::from_vocab_file(vocab);
  tok.save_vocab(join_path(o.out, "vocab.txt"));
  const char* cls = o.arch == "distilbert" ? "DistilBertTokenizer" : "BertTokenizer";
  nlohmann::ordered_json tc = {{"tokenizer_class", cls}, {"do_lower_case", true}, {"model_max_length", o.max_pos}};
  write_text_atomically(join_path(o.out, "tokenizer_config.json"), tc.dump(2) + "\n");
  finish(tok);
  return info;
}

ModelConfig make_config(const Opts& o, const TokenizerInfo& t) {
  ModelConfig c;
  c.model_type = o.arch;
  c.vocab_size = t.vocab_size;
  c.hidden_size = o.hidden;
  c.num_hidden_layers = o.layers;
  c.num_attention_heads = o.heads;
  c.intermediate_size = o.intermediate;
  c.num_labels = o.num_labels;
  c.pad_token_id = t.pad_id;
  c.max_position_embeddings = o.max_pos;
  if (c.is_roberta()) {
    c.type_vocab_size = 1;
    c.layer_norm_eps = 1e-5;
    c.max_position_embeddings = o.max_pos + c.pad_token_id + 1;
  } else if (o.arch == "distilbert") {
    c.type_vocab_size = 1;
  } else if (o.arch == "deberta-v2") {
    // deberta-v3-base's settings: log-bucketed relative positions, shared keys, p2c + c2p.
    c.type_vocab_size = 0;
    c.layer_norm_eps = 1e-7;
    c.relative_attention = true;
    c.position_buckets = o.position_buckets > 0 ? o.position_buckets : std::min<int64_t>(256, o.max_pos);
    c.max_relative_positions = -1;
    c.share_att_key = true;
    c.pos_att_type = {"p2c", "c2p"};
    c.norm_rel_ebd = "layer_norm";
    c.position_biased_input = false;
  } else if (o.arch == "vit") {
    c.vocab_size = 1;
    c.pad_token_id = 0;
    c.type_vocab_size = 1;
    c.hidden_dropout_prob = c.attention_probs_dropout_prob = 0.0;
    c.image_size = o.image_size;
    c.patch_size = o.patch_size;
    c.num_channels = o.channels;
    c.max_position_embeddings = (o.image_size / o.patch_size) * (o.image_size / o.patch_size) + 1;
  }
  if (o.dropout >= 0) {
    // Every dropout of the encoder and its heads (DistilBERT's seq_classif / qa too).
    c.hidden_dropout_prob = c.attention_probs_dropout_prob = o.dropout;
    c.seq_classif_dropout = c.qa_dropout = o.dropout;
  }
  return c;
}

}  // namespace

void register_init_model_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("init-model", "Write a randomly initialised model directory (Hugging Face layout)");
  auto o = std::make_shared<Opts>();
  cmd->add_option("--arch", o->arch, "bert | roberta | distilbert | deberta-v2 | vit")
      ->check(CLI::IsMember({"bert", "roberta", "distilbert", "deberta-v2", "vit"}));
  cmd->add_option("--hidden", o->hidden, "hidden size");
  cmd->add_option("--layers", o->layers, "number of layers");
  cmd->add_option("--heads", o->heads, "attention heads");
  cmd->add_option("--intermediate", o->intermediate, "feed-forward size");
  cmd->add_option("--max-position", o->max_pos, "longest sequence in tokens");
  cmd->add_option("--num-labels", o->num_labels, "classifier outputs");
  cmd->add_option("--vocab", o->vocab,
                  "tokenizer: a WordPiece vocab.txt (default for bert/distilbert: ../shared's bert-base-uncased); "
                  "roberta: a directory with vocab.json + merges.txt, or vocab.json (default: ../shared's roberta-base); "
                  "deberta-v2: an spm.model (default: train one on --spm-corpus)");
  cmd->add_option("--spm-corpus", o->spm_corpus,
                  "deberta-v2: text file, one sentence per line, to train the SentencePiece model on "
                  "(default: ../shared's GLUE MRPC train.tsv)");
  cmd->add_option("--spm-vocab-size", o->spm_vocab_size, "deberta-v2: pieces of the trained SentencePiece model");
  cmd->add_option("--position-buckets", o->position_buckets, "deberta-v2: relative-position buckets (default min(256, max-position))");
  cmd->add_option("--image-size", o->image_size, "vit: image height and width");
  cmd->add_option("--dropout", o->dropout,
                  "hidden and attention dropout (default: the family's, 0.1; ViT 0); 0 makes training deterministic "
                  "under data parallelism")
      ->check(CLI::Range(0.0, 0.9));
  cmd->add_option("--patch-size", o->patch_size, "vit: patch height and width");
  cmd->add_option("--channels", o->channels, "vit: image channels");
  cmd->add_option("--seed", o->seed, "random seed");
  cmd->add_option("--out", o->out, "output directory")->required();
  cmd->callback([o] {
    if (o->spm_vocab_size < 16) throw Error("init-model: --spm-vocab-size must be at least 16");
    if (o->arch == "vit" && !o->vocab.empty()) throw Error("init-model --arch vit: ViT has no tokenizer (drop --vocab)");
    if (o->arch == "vit" && (o->patch_size <= 0 || o->image_size < o->patch_size))
      throw Error("init-model: --image-size must be at least --patch-size (> 0)");
    // Everything is written into a temporary directory first: a failure leaves `out` as it was.
    const std::string final_out = o->out;
    Opts tmp = *o;
    tmp.out = final_out + ".tmp-init." + std::to_string(::getpid());
    std::filesystem::remove_all(tmp.out);
    make_dirs(tmp.out);
    try {
      TokenizerInfo t{1, 0};
      if (o->arch != "vit") t = write_tokenizer(tmp);
      ModelConfig c = make_config(tmp, t);
      c.validate("init-model");
      torch::manual_seed(o->seed);
      SequenceClassifier m(c);
      m->init_weights();
      save_model(m, c, tmp.out);
      if (c.is_vit()) {
        ImageProcessorConfig p = ImageProcessorConfig::for_model(tmp.out, c);
        write_text_atomically(join_path(tmp.out, "preprocessor_config.json"), p.to_json_text());
      }
      make_dirs(final_out);
      for (auto& e : std::filesystem::directory_iterator(tmp.out))
        std::filesystem::rename(e.path(), std::filesystem::path(final_out) / e.path().filename());
      std::filesystem::remove_all(tmp.out);
      int64_t n = 0;
      for (auto& p : m->parameters()) n += p.numel();
      fmt::print("wrote {} ({} {} layers, hidden {}, {} parameters)\n", final_out, c.model_type, c.num_hidden_layers,
                 c.hidden_size, n);
    } catch (...) {
      std::error_code ec;
      std::filesystem::remove_all(tmp.out, ec);
      throw;
    }
  });
}

}  // namespace lorakit::cli
