#include "spm_shim/spm_shim.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <exception>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

void report(lk_spm_error_fn err, void* ctx, const std::string& msg) {
  if (err) err(ctx, msg.data(), msg.size());
}

// Runs f (returning 0 on success), turning any exception into an error report and 1: nothing thrown
// crosses the C interface.
template <class F>
int guarded(lk_spm_error_fn err, void* ctx, F&& f) {
  try {
    return f();
  } catch (const std::exception& e) {
    report(err, ctx, e.what());
  } catch (...) {
    report(err, ctx, "unknown error");
  }
  return 1;
}

class VectorIterator : public sentencepiece::SentenceIterator {
 public:
  explicit VectorIterator(std::vector<std::string> v) : v_(std::move(v)) {}
  bool done() const override { return i_ >= v_.size(); }
  void Next() override { ++i_; }
  const std::string& value() const override { return v_[i_]; }
  sentencepiece::util::Status status() const override { return sentencepiece::util::Status(); }

 private:
  std::vector<std::string> v_;
  size_t i_ = 0;
};

}  // namespace

extern "C" {

int lk_spm_abi_version(void) { return 1; }

void* lk_spm_load(const char* bytes, size_t len, lk_spm_error_fn err, void* ctx) {
  try {
    // Owned until returned: LoadFromSerializedProto can also throw (a malformed model found by
    // fuzz/harnesses/spm_model.cpp did), and the processor must not leak then.
    auto sp = std::make_unique<sentencepiece::SentencePieceProcessor>();
    const auto st = sp->LoadFromSerializedProto(std::string(bytes, len));
    if (!st.ok()) {
      report(err, ctx, st.ToString());
      return nullptr;
    }
    return sp.release();
  } catch (const std::exception& e) {
    report(err, ctx, e.what());
  } catch (...) {
    report(err, ctx, "unknown error");
  }
  return nullptr;
}

void lk_spm_free(void* p) { delete static_cast<sentencepiece::SentencePieceProcessor*>(p); }

int lk_spm_piece_size(void* p) { return static_cast<sentencepiece::SentencePieceProcessor*>(p)->GetPieceSize(); }

int lk_spm_piece_to_id(void* p, const char* piece, size_t len) {
  try {
    return static_cast<sentencepiece::SentencePieceProcessor*>(p)->PieceToId(std::string(piece, len));
  } catch (...) {
    return -1;
  }
}

void lk_spm_id_to_piece(void* p, int id, lk_spm_bytes_fn out, void* ctx) {
  try {
    const std::string& s = static_cast<sentencepiece::SentencePieceProcessor*>(p)->IdToPiece(id);
    out(ctx, s.data(), s.size());
  } catch (...) {
  }
}

int lk_spm_encode(void* p, const char* text, size_t len, int with_pieces, lk_spm_piece_fn out, void* ctx,
                  lk_spm_error_fn err, void* err_ctx) {
  return guarded(err, err_ctx, [&] {
    auto* sp = static_cast<sentencepiece::SentencePieceProcessor*>(p);
    const std::string input(text, len);
    if (!with_pieces) {
      std::vector<int> ids;
      const auto st = sp->Encode(input, &ids);
      if (!st.ok()) {
        report(err, err_ctx, st.ToString());
        return 1;
      }
      for (int id : ids) out(ctx, id, nullptr, 0, 0, 0);
      return 0;
    }
    sentencepiece::ImmutableSentencePieceText spt;
    const auto st = sp->Encode(input, spt.mutable_proto());
    if (!st.ok()) {
      report(err, err_ctx, st.ToString());
      return 1;
    }
    for (const auto& piece : spt.pieces()) {
      const std::string& s = piece.piece();
      out(ctx, static_cast<int>(piece.id()), s.data(), s.size(), piece.begin(), piece.end());
    }
    return 0;
  });
}

int lk_spm_train(const char* const* keys, const char* const* values, size_t n_args, const char* const* sentences,
                 const size_t* lens, size_t n_sentences, lk_spm_bytes_fn out, void* ctx, lk_spm_error_fn err,
                 void* err_ctx) {
  return guarded(err, err_ctx, [&] {
    std::unordered_map<std::string, std::string> args;
    for (size_t i = 0; i < n_args; ++i) args[keys[i]] = values[i];
    std::vector<std::string> v;
    v.reserve(n_sentences);
    for (size_t i = 0; i < n_sentences; ++i) v.emplace_back(sentences[i], lens[i]);
    VectorIterator it(std::move(v));
    std::string model;
    const auto st = sentencepiece::SentencePieceTrainer::Train(args, &it, &model);
    if (!st.ok()) {
      report(err, err_ctx, st.ToString());
      return 1;
    }
    out(ctx, model.data(), model.size());
    return 0;
  });
}

}  // extern "C"
