// C interface of liblorakit_spm.so, the one place that touches libsentencepiece.
//
// Why a separate shared object: Debian's libsentencepiece.so bundles protobuf-lite and exports its
// symbols. Linked into a process that also loads LibTorch's libprotobuf.so.32, those symbols interpose
// on libprotobuf's own and the process crashes before main() (libprotobuf's static initialisers call
// the bundled MergeFromImpl). lorakit therefore never links libsentencepiece: src/text loads this shim
// with dlopen(RTLD_LOCAL | RTLD_DEEPBIND), so libsentencepiece binds to its own protobuf copy and
// stays out of the global symbol scope. Only plain C types and callbacks cross this boundary (no
// ownership of memory, no exceptions).
#pragma once
#include <stddef.h>
#include <stdint.h>

extern "C" {

// Called with an error message (valid during the call only).
typedef void (*lk_spm_error_fn)(void* ctx, const char* msg, size_t len);
// One piece of an encoding: id, piece text, byte offsets [begin, end) in the encoded text.
typedef void (*lk_spm_piece_fn)(void* ctx, int id, const char* piece, size_t len, uint32_t begin, uint32_t end);
// Bytes out (a piece string, a serialized model).
typedef void (*lk_spm_bytes_fn)(void* ctx, const char* bytes, size_t len);

// A processor loaded from a serialized ModelProto; null on failure (err called).
void* lk_spm_load(const char* bytes, size_t len, lk_spm_error_fn err, void* ctx);
void lk_spm_free(void* processor);
int lk_spm_piece_size(void* processor);
int lk_spm_piece_to_id(void* processor, const char* piece, size_t len);
void lk_spm_id_to_piece(void* processor, int id, lk_spm_bytes_fn out, void* ctx);
// Encodes `text`; `with_pieces` 0: only ids (piece null, offsets 0). Returns 0 on success.
int lk_spm_encode(void* processor, const char* text, size_t len, int with_pieces, lk_spm_piece_fn out, void* ctx,
                  lk_spm_error_fn err, void* err_ctx);
// Trains a model: `keys` / `values` are sentencepiece trainer flags (n_args of each), `sentences`
// (n_sentences, lengths in `lens`) the corpus. The serialized model goes to `out`. Returns 0 on success.
int lk_spm_train(const char* const* keys, const char* const* values, size_t n_args, const char* const* sentences,
                 const size_t* lens, size_t n_sentences, lk_spm_bytes_fn out, void* ctx, lk_spm_error_fn err,
                 void* err_ctx);
// Version of this interface (the loader checks it).
int lk_spm_abi_version(void);
}
