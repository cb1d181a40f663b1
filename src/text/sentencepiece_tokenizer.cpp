#include "text/sentencepiece_tokenizer.h"

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <unordered_map>
#include <type_traits>
#include <utility>

#include "text/encoding.h"
#include "text/spm_library.h"
#include "text/tokenizer_io.h"
#include "text/unicode.h"

namespace lorakit::text {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {
void append_bytes(void* ctx, const char* bytes, size_t len) { static_cast<std::string*>(ctx)->append(bytes, len); }
void set_error(void* ctx, const char* msg, size_t len) { static_cast<std::string*>(ctx)->assign(msg, len); }
}  // namespace

// A libsentencepiece processor behind liblorakit_spm.so's C interface.
struct SpmProcessor {
  void* handle = nullptr;
  ~SpmProcessor() {
    if (handle) detail::spm_api().free(handle);
  }
  int PieceToId(const std::string& t) const { return detail::spm_api().piece_to_id(handle, t.data(), t.size()); }
  std::string IdToPiece(int id) const {
    std::string out;
    detail::spm_api().id_to_piece(handle, id, append_bytes, &out);
    return out;
  }
  int GetPieceSize() const { return detail::spm_api().piece_size(handle); }
};

struct SentencePieceTokenizer::Impl {
  SpmProcessor sp;
  std::string bytes;  // the serialized model
  size_t pieces = 0;
  // Piece lookups that are safe for any id (libsentencepiece does not range-check).
  bool is_piece(int64_t id) const { return id >= 0 && static_cast<size_t>(id) < pieces; }
  int64_t piece_id(const std::string& t) const {  // -1 if the model has no such piece
    const int id = sp.PieceToId(t);
    if (!is_piece(id) || sp.IdToPiece(id) != t) return -1;
    return id;
  }
};

namespace {

constexpr int64_t kMaxExtraId = int64_t{1} << 26;

// Walks a protobuf message's wire format: true when `data` is a sequence of well-formed fields
// (varint, 64-bit, length-delimited, 32-bit). Records which top-level field numbers occur.
bool walk_protobuf(const std::string& data, size_t begin, size_t end, std::vector<uint64_t>* fields, int depth) {
  auto varint = [&](size_t& p, uint64_t& v) {
    v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p >= end) return false;
      const auto byte = static_cast<unsigned char>(data[p++]);
      v |= static_cast<uint64_t>(byte & 0x7F) << shift;
      if (!(byte & 0x80)) return true;
    }
    return false;
  };
  size_t p = begin;
  while (p < end) {
    uint64_t key = 0;
    if (!varint(p, key)) return false;
    const uint64_t field = key >> 3;
    const unsigned wt = key & 7;
    if (field == 0) return false;
    switch (wt) {
      case 0: {
        uint64_t v;
        if (!varint(p, v)) return false;
        break;
      }
      case 1:
        if (end - p < 8) return false;
        p += 8;
        break;
      case 2: {
        uint64_t len;
        if (!varint(p, len) || len > end - p) return false;
        // ModelProto's messages: pieces (1), trainer_spec (2), normalizer_spec (3), denormalizer (5).
        if (depth == 0 && (field == 1 || field == 2 || field == 3 || field == 5) &&
            !walk_protobuf(data, p, p + len, nullptr, depth + 1))
          return false;
        p += len;
        break;
      }
      case 5:
        if (end - p < 4) return false;
        p += 4;
        break;
      default:
        return false;
    }
    if (fields) fields->push_back(field);
  }
  return p == end;
}

void check_model_bytes(const std::string& bytes, const std::string& source) {
  if (bytes.empty()) throw TokenizerError("SentencePiece model '" + source + "' is empty");
  std::vector<uint64_t> fields;
  const bool ok = walk_protobuf(bytes, 0, bytes.size(), &fields, 0);
  const bool has_pieces = std::find(fields.begin(), fields.end(), 1) != fields.end();
  const bool has_normalizer = std::find(fields.begin(), fields.end(), 3) != fields.end();
  if (!ok || !has_pieces || !has_normalizer) {
    throw TokenizerError("SentencePiece model '" + source + "' is truncated or not a SentencePiece model" +
                         (ok ? std::string(" (no ") + (has_pieces ? "normalizer spec" : "pieces") + ")"
                             : std::string(" (malformed protobuf data)")));
  }
}

struct TokenSink {
  std::vector<std::string>* out;
  static constexpr bool kWantsOffsets = false;
  void emit(int64_t, const std::string& piece, size_t, size_t) { out->push_back(piece); }
};
struct IdSink {
  std::vector<int64_t>* out;
  static constexpr bool kWantsOffsets = false;
  void emit(int64_t id, const std::string&, size_t, size_t) { out->push_back(id); }
};
struct OffsetSink {
  std::vector<Token>* out;
  static constexpr bool kWantsOffsets = true;
  void emit(int64_t id, const std::string& piece, size_t s, size_t e) { out->push_back(Token{id, piece, s, e}); }
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// construction

SentencePieceTokenizer SentencePieceTokenizer::from_serialized_model(const std::string& model_bytes, Options opt,
                                                                     const std::string& source) {
  check_model_bytes(model_bytes, source);
  auto impl = std::make_shared<Impl>();
  impl->bytes = model_bytes;
  std::string why;
  impl->sp.handle = detail::spm_api().load(impl->bytes.data(), impl->bytes.size(), set_error, &why);
  if (!impl->sp.handle) throw TokenizerError("cannot load SentencePiece model '" + source + "': " + why);
  const int n = impl->sp.GetPieceSize();
  if (n <= 0) throw TokenizerError("SentencePiece model '" + source + "' has no pieces");
  impl->pieces = static_cast<size_t>(n);

  SentencePieceTokenizer tok;
  tok.impl_ = impl;
  tok.opt_ = std::move(opt);
  size_t next = impl->pieces;
  auto add_extra = [&](const std::string& content, int64_t id) {
    if (content.empty()) throw TokenizerError("added token with empty content for '" + source + "'");
    const int64_t piece = impl->piece_id(content);
    if (id < 0) id = piece >= 0 ? piece : static_cast<int64_t>(next);
    if (id >= kMaxExtraId) throw TokenizerError("added token '" + content + "' of '" + source + "' has an id that is too large");
    if (id == piece) return;  // the model's own piece
    if (impl->is_piece(id)) {
      throw TokenizerError("added token '" + content + "' of '" + source + "' has id " + std::to_string(id) +
                           ", which is the model's piece '" + impl->sp.IdToPiece(static_cast<int>(id)) + "'");
    }
    tok.extra_ids_[content] = id;
    tok.extra_tokens_[id] = content;
    next = std::max(next, static_cast<size_t>(id) + 1);
  };
  for (auto& t : tok.opt_.added_tokens) add_extra(t.content, t.id);
  auto find = [&](const std::string& t) -> int64_t {
    auto it = tok.extra_ids_.find(t);
    if (it != tok.extra_ids_.end()) return it->second;
    return impl->piece_id(t);
  };
  auto need = [&](const std::string& t, const char* what) {
    const int64_t id = find(t);
    if (id < 0) throw TokenizerError(std::string(what) + " token '" + t + "' is not in SentencePiece model '" + source + "'");
    return id;
  };
  tok.cls_id_ = need(tok.opt_.cls_token, "CLS");
  tok.sep_id_ = need(tok.opt_.sep_token, "SEP");
  tok.pad_id_ = need(tok.opt_.pad_token, "pad");
  tok.unk_id_ = need(tok.opt_.unk_token, "unknown");
  tok.mask_id_ = find(tok.opt_.mask_token);
  if (tok.mask_id_ < 0) {  // deberta-v3: [MASK] comes after the spm vocabulary
    add_extra(tok.opt_.mask_token, static_cast<int64_t>(next));
    tok.mask_id_ = tok.extra_ids_.at(tok.opt_.mask_token);
  }
  tok.vocab_size_ = next;

  // Literal matches: every added token and special token, longest first.
  std::vector<AddedToken> added;
  auto add = [&](const std::string& t, int64_t id) {
    for (const auto& x : added)
      if (x.content == t) return;
    added.push_back(AddedToken{t, id, false, false});
  };
  for (const auto& [t, id] : tok.extra_ids_) add(t, id);
  for (const std::string* t : {&tok.opt_.cls_token, &tok.opt_.sep_token, &tok.opt_.pad_token, &tok.opt_.unk_token,
                               &tok.opt_.mask_token})
    add(*t, find(*t));
  std::sort(added.begin(), added.end(), [](const AddedToken& x, const AddedToken& y) {
    return x.content.size() != y.content.size() ? x.content.size() > y.content.size() : x.content < y.content;
  });
  tok.added_ = std::move(added);
  for (const auto& a : tok.added_) tok.added_cps_.push_back(unicode::decode_utf8(a.content));
  return tok;
}

SentencePieceTokenizer SentencePieceTokenizer::from_model_file(const std::string& spm_model, Options opt) {
  return from_serialized_model(detail::read_file_bytes(spm_model, "SentencePiece model"), std::move(opt), spm_model);
}

SentencePieceTokenizer SentencePieceTokenizer::from_model_dir(const std::string& dir) {
  const fs::path d(dir);
  std::error_code ec;
  if (!fs::is_directory(d, ec)) throw TokenizerError("tokenizer directory '" + dir + "' does not exist");
  const fs::path cfg_path = d / "tokenizer_config.json", added_path = d / "added_tokens.json";
  Options opt;
  if (fs::exists(cfg_path, ec)) {
    const json cfg = detail::read_tokenizer_config(dir);
    if (auto lower = detail::bool_setting(cfg, "do_lower_case", cfg_path.string())) opt.do_lower_case = *lower;
    auto sp = cfg.find("split_by_punct");
    if (sp != cfg.end() && sp->is_boolean() && sp->get<bool>())
      throw TokenizerError("tokenizer config '" + cfg_path.string() + "': split_by_punct=true is not supported");
    struct Key {
      const char* key;
      std::string* field;
    } keys[] = {{"cls_token", &opt.cls_token}, {"sep_token", &opt.sep_token}, {"pad_token", &opt.pad_token},
                {"unk_token", &opt.unk_token}, {"mask_token", &opt.mask_token}};
    for (const auto& k : keys)
      if (auto t = detail::token_setting(cfg, k.key)) *k.field = *t;
    auto dec = cfg.find("added_tokens_decoder");
    if (dec != cfg.end() && dec->is_object()) {
      for (auto e = dec->begin(); e != dec->end(); ++e) {
        int64_t id = -1;
        try {
          size_t used = 0;
          id = std::stoll(e.key(), &used);
          if (used != e.key().size()) id = -1;
        } catch (...) {
        }
        if (id < 0 || !e.value().is_object() || !e.value().contains("content") || !e.value()["content"].is_string())
          throw TokenizerError("tokenizer config '" + cfg_path.string() + "': bad added_tokens_decoder entry '" + e.key() + "'");
        opt.added_tokens.push_back(AddedToken{e.value()["content"].get<std::string>(), id, false, false});
      }
    }
  }
  if (fs::exists(added_path, ec)) {
    const json added = detail::parse_json_file(added_path.string(), "added tokens file");
    if (!added.is_object()) throw TokenizerError("added tokens file '" + added_path.string() + "' is not a JSON object");
    for (auto it = added.begin(); it != added.end(); ++it) {
      if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0)
        throw TokenizerError("added tokens file '" + added_path.string() + "': the id of '" + it.key() +
                             "' is not a non-negative integer");
      opt.added_tokens.push_back(AddedToken{it.key(), it.value().get<int64_t>(), false, false});
    }
  }
  return from_model_file((d / "spm.model").string(), std::move(opt));
}

// ---------------------------------------------------------------------------------------------
// tokenization

template <class Sink>
void SentencePieceTokenizer::run_segment(const std::u32string& chars, size_t begin, size_t end, Sink& sink) const {
  if (begin >= end) return;
  // UTF-8 of the segment (lower-cased if asked) and, per byte, the original char it came from.
  std::string utf8;
  std::vector<uint32_t> byte_char;
  for (size_t k = begin; k < end; ++k) {
    if (opt_.do_lower_case) {
      for (char32_t c : unicode::lower_chars(std::u32string(1, chars[k]))) unicode::append_utf8(utf8, c);
    } else {
      unicode::append_utf8(utf8, chars[k]);
    }
    if constexpr (Sink::kWantsOffsets) byte_char.resize(utf8.size(), static_cast<uint32_t>(k));
  }
  struct Piece {
    int id;
    std::string piece;
    uint32_t begin, end;
  };
  std::vector<Piece> pieces;
  auto collect = [](void* ctx, int id, const char* piece, size_t len, uint32_t b, uint32_t e) {
    static_cast<std::vector<Piece>*>(ctx)->push_back(Piece{id, piece ? std::string(piece, len) : std::string(), b, e});
  };
  const bool with_pieces = !std::is_same_v<Sink, IdSink>;
  std::string why;
  if (detail::spm_api().encode(impl_->sp.handle, utf8.data(), utf8.size(), with_pieces ? 1 : 0, collect, &pieces,
                               set_error, &why) != 0)
    throw TokenizerError("SentencePiece encoding failed: " + why);
  for (const auto& p : pieces) {
    size_t s0 = 0, s1 = 0;
    if constexpr (Sink::kWantsOffsets) {
      const size_t b = std::min<size_t>(p.begin, utf8.size()), e = std::min<size_t>(p.end, utf8.size());
      if (e > b) {
        s0 = byte_char[b];
        s1 = byte_char[e - 1] + 1;
      } else {
        s0 = s1 = b < utf8.size() ? byte_char[b] : end;
      }
    }
    sink.emit(static_cast<int64_t>(p.id), p.piece, s0, s1);
  }
}

template <class Sink>
void SentencePieceTokenizer::run(const std::string& text, Sink& sink) const {
  const std::u32string chars = unicode::decode_utf8(text);
  const size_t n = chars.size();
  size_t seg_start = 0, pos = 0;
  while (pos < n) {
    const AddedToken* match = nullptr;
    size_t len = 0;
    for (size_t k = 0; k < added_.size(); ++k) {  // longest first
      const std::u32string& t = added_cps_[k];
      if (!t.empty() && t[0] == chars[pos] && chars.compare(pos, t.size(), t) == 0) {
        match = &added_[k];
        len = t.size();
        break;
      }
    }
    if (!match) {
      ++pos;
      continue;
    }
    run_segment(chars, seg_start, pos, sink);
    sink.emit(match->id, match->content, pos, pos + len);
    pos = seg_start = pos + len;
  }
  run_segment(chars, seg_start, n, sink);
}

std::vector<std::string> SentencePieceTokenizer::tokenize(const std::string& text) const {
  std::vector<std::string> out;
  TokenSink sink{&out};
  run(text, sink);
  return out;
}

std::vector<int64_t> SentencePieceTokenizer::tokenize_to_ids(const std::string& text) const {
  std::vector<int64_t> out;
  IdSink sink{&out};
  run(text, sink);
  return out;
}

std::vector<Token> SentencePieceTokenizer::tokenize_with_offsets(const std::string& text) const {
  std::vector<Token> out;
  OffsetSink sink{&out};
  run(text, sink);
  return out;
}

Encoding SentencePieceTokenizer::encode(const std::string& a, const std::string* b, size_t max_length) const {
  std::vector<int64_t> ids_a = tokenize_to_ids(a), ids_b;
  if (b) ids_b = tokenize_to_ids(*b);
  detail::truncate_longest_first(ids_a, b ? &ids_b : nullptr, b ? 3 : 2, max_length);
  return encode_ids(ids_a, b ? &ids_b : nullptr);
}

Encoding SentencePieceTokenizer::encode_ids(const std::vector<int64_t>& a, const std::vector<int64_t>* b) const {
  return detail::wrap_with_specials(cls_id_, sep_id_, a, b, /*double_sep=*/false, /*b_type=*/1);
}

// ---------------------------------------------------------------------------------------------
// lookups

size_t SentencePieceTokenizer::piece_count() const { return impl_->pieces; }
const std::string& SentencePieceTokenizer::serialized_model() const { return impl_->bytes; }

int64_t SentencePieceTokenizer::token_to_id(const std::string& t) const {
  auto it = extra_ids_.find(t);
  if (it != extra_ids_.end()) return it->second;
  const int64_t id = impl_->piece_id(t);
  return id >= 0 ? id : unk_id_;
}

std::string SentencePieceTokenizer::id_to_token(int64_t id) const {
  auto it = extra_tokens_.find(id);
  if (it != extra_tokens_.end()) return it->second;
  if (impl_->is_piece(id)) return impl_->sp.IdToPiece(static_cast<int>(id));
  return opt_.unk_token;
}

// ---------------------------------------------------------------------------------------------
// saving

void SentencePieceTokenizer::save(const std::string& dir) const {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (!fs::is_directory(dir, ec)) throw TokenizerError("cannot create tokenizer directory '" + dir + "'");
  const fs::path d(dir);
  json cfg = {{"tokenizer_class", "DebertaV2Tokenizer"},
              {"do_lower_case", opt_.do_lower_case},
              {"split_by_punct", false},
              {"vocab_type", "spm"},
              {"model_max_length", 512},
              {"bos_token", opt_.cls_token},
              {"eos_token", opt_.sep_token},
              {"cls_token", opt_.cls_token},
              {"sep_token", opt_.sep_token},
              {"pad_token", opt_.pad_token},
              {"unk_token", opt_.unk_token},
              {"mask_token", opt_.mask_token}};
  json map = {{"bos_token", opt_.cls_token}, {"eos_token", opt_.sep_token}, {"cls_token", opt_.cls_token},
              {"sep_token", opt_.sep_token}, {"pad_token", opt_.pad_token}, {"unk_token", opt_.unk_token},
              {"mask_token", opt_.mask_token}};
  json added = json::object();
  for (const auto& [t, id] : extra_ids_) added[t] = id;
  detail::write_file_atomically((d / "spm.model").string(), impl_->bytes, "SentencePiece model");
  detail::write_file_atomically((d / "tokenizer_config.json").string(), cfg.dump(2) + "\n", "tokenizer config");
  detail::write_file_atomically((d / "special_tokens_map.json").string(), map.dump(2) + "\n", "special tokens map");
  const fs::path added_path = d / "added_tokens.json";
  if (!added.empty()) {
    detail::write_file_atomically(added_path.string(), added.dump(2) + "\n", "added tokens file");
  } else {
    fs::remove(added_path, ec);
  }
}

// ---------------------------------------------------------------------------------------------
// training

namespace {

}  // namespace

SentencePieceTokenizer train_sentencepiece(const std::vector<std::string>& sentences, const SentencePieceTrainOptions& opt) {
  // libsentencepiece wants valid UTF-8 and one line per sentence.
  std::vector<std::string> clean;
  clean.reserve(sentences.size());
  for (const auto& s : sentences) {
    std::string t = unicode::encode_utf8(unicode::decode_utf8(s));
    std::replace(t.begin(), t.end(), '\n', ' ');
    std::replace(t.begin(), t.end(), '\r', ' ');
    if (t.find_first_not_of(' ') != std::string::npos) clean.push_back(std::move(t));
  }
  if (clean.empty()) throw TokenizerError("cannot train a SentencePiece model: no non-empty sentences");
  if (opt.vocab_size < 5) throw TokenizerError("cannot train a SentencePiece model with vocab_size < 5");
  if (opt.num_threads < 1) throw TokenizerError("cannot train a SentencePiece model with num_threads < 1");
  std::unordered_map<std::string, std::string> args = {
      {"model_type", "unigram"},
      {"vocab_size", std::to_string(opt.vocab_size)},
      {"character_coverage", std::to_string(opt.character_coverage)},
      {"normalization_rule_name", opt.normalization_rule_name},
      {"num_threads", std::to_string(opt.num_threads)},
      {"max_sentence_length", std::to_string(opt.max_sentence_length)},
      {"hard_vocab_limit", opt.hard_vocab_limit ? "true" : "false"},
      {"input_sentence_size", "0"},  // every sentence, no random sampling
      {"shuffle_input_sentence", "false"},
      {"pad_id", "0"},
      {"pad_piece", "[PAD]"},
      {"bos_id", "1"},
      {"bos_piece", "[CLS]"},
      {"eos_id", "2"},
      {"eos_piece", "[SEP]"},
      {"unk_id", "3"},
      {"unk_piece", "[UNK]"},
  };
  if (opt.quiet) args["minloglevel"] = "1";
  std::vector<const char*> keys, values, texts;
  std::vector<size_t> lens;
  for (auto& [k, v] : args) {
    keys.push_back(k.c_str());
    values.push_back(v.c_str());
  }
  for (auto& t : clean) {
    texts.push_back(t.data());
    lens.push_back(t.size());
  }
  std::string model, why;
  if (detail::spm_api().train(keys.data(), values.data(), keys.size(), texts.data(), lens.data(), texts.size(),
                              append_bytes, &model, set_error, &why) != 0)
    throw TokenizerError("SentencePiece training failed: " + why);
  return SentencePieceTokenizer::from_serialized_model(model, {}, "<trained SentencePiece model>");
}

}  // namespace lorakit::text
