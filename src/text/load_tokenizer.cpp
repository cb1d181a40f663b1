// load_tokenizer(): picks the tokenizer of a model directory (see tokenizer.h).
#include <filesystem>
#include <nlohmann/json.hpp>

#include "text/bpe_tokenizer.h"
#include "text/sentencepiece_tokenizer.h"
#include "text/tokenizer.h"
#include "text/tokenizer_io.h"
#include "text/unigram_tokenizer.h"

namespace lorakit::text {
namespace fs = std::filesystem;
using nlohmann::json;

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& model_dir) {
  const fs::path dir(model_dir);
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw TokenizerError("tokenizer directory '" + model_dir + "' does not exist");
  const fs::path tj = dir / "tokenizer.json", vocab = dir / "vocab.txt", cfg_path = dir / "tokenizer_config.json";
  const fs::path vj = dir / "vocab.json", merges = dir / "merges.txt", spm = dir / "spm.model";

  const json cfg = detail::read_tokenizer_config(model_dir);
  auto bool_setting = [&](const char* key) { return detail::bool_setting(cfg, key, cfg_path.string()); };

  if (fs::exists(tj, ec)) {
    const json j = detail::parse_json_file(tj.string(), "tokenizer file");
    std::string type = "WordPiece";  // BertTokenizer's default for a model without "type"
    if (j.is_object()) {
      auto m = j.find("model");
      if (m != j.end() && m->is_object()) {
        auto t = m->find("type");
        if (t != m->end() && t->is_string()) type = t->get<std::string>();
      }
    }
    if (type == "BPE") return std::make_unique<BpeTokenizer>(BpeTokenizer::from_model_dir(model_dir));
    if (type == "Unigram") {
      // DebertaV2TokenizerFast's tokenizer.json: the slow tokenizer's spm.model is the source of truth.
      if (fs::exists(spm, ec))
        return std::make_unique<SentencePieceTokenizer>(SentencePieceTokenizer::from_model_dir(model_dir));
      throw TokenizerError("tokenizer file '" + tj.string() + "': model type 'Unigram' is supported only with spm.model next to it");
    }
    if (type != "WordPiece") throw TokenizerError("tokenizer file '" + tj.string() + "': model type '" + type + "' is not supported");
    BertTokenizer::NormalizerOverrides ov;
    ov.do_lower_case = bool_setting("do_lower_case");
    if (cfg.contains("strip_accents")) ov.strip_accents = bool_setting("strip_accents");  // null => follow lowercase
    ov.tokenize_chinese_chars = bool_setting("tokenize_chinese_chars");
    return std::make_unique<BertTokenizer>(BertTokenizer::from_tokenizer_json(tj.string(), ov));
  }
  // USE-lite's SentencePiece-unigram pieces (vocab.json of [piece, score] pairs, no merges.txt).
  if (!fs::exists(vocab, ec) && fs::exists(vj, ec) && UnigramTokenizer::is_unigram_vocab_json(vj.string()))
    return std::make_unique<UnigramTokenizer>(UnigramTokenizer::from_model_dir(model_dir));
  if (fs::exists(vj, ec) && fs::exists(merges, ec))
    return std::make_unique<BpeTokenizer>(BpeTokenizer::from_model_dir(model_dir));
  if (fs::exists(spm, ec))
    return std::make_unique<SentencePieceTokenizer>(SentencePieceTokenizer::from_model_dir(model_dir));
  if (fs::exists(vocab, ec)) {
    BertTokenizer::Options opt;
    if (auto v = bool_setting("do_lower_case")) opt.do_lower_case = *v;
    opt.strip_accents = bool_setting("strip_accents");
    if (auto v = bool_setting("tokenize_chinese_chars")) opt.tokenize_chinese_chars = *v;
    if (auto t = detail::token_setting(cfg, "unk_token")) opt.unk_token = *t;
    if (auto t = detail::token_setting(cfg, "cls_token")) opt.cls_token = *t;
    if (auto t = detail::token_setting(cfg, "sep_token")) opt.sep_token = *t;
    if (auto t = detail::token_setting(cfg, "pad_token")) opt.pad_token = *t;
    if (auto t = detail::token_setting(cfg, "mask_token")) opt.mask_token = *t;
    return std::make_unique<BertTokenizer>(BertTokenizer::from_vocab_file(vocab.string(), opt));
  }
  if (fs::exists(vj, ec))
    throw TokenizerError("tokenizer directory '" + model_dir + "' has vocab.json but no merges.txt (byte-level BPE needs both)");
  throw TokenizerError("no tokenizer.json, vocab.json + merges.txt, spm.model or vocab.txt in '" + model_dir + "'");
}

}  // namespace lorakit::text
