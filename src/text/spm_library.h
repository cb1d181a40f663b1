// Loads liblorakit_spm.so (src/spm_shim: the only code linked against libsentencepiece) with
// dlopen(RTLD_LOCAL | RTLD_DEEPBIND) and exposes its C functions. See src/spm_shim/spm_shim.h for why
// libsentencepiece is never linked into lorakit itself. Internal to src/text.
#pragma once
#include <string>

#include "spm_shim/spm_shim.h"

namespace lorakit::text::detail {

struct SpmApi {
  decltype(&lk_spm_load) load;
  decltype(&lk_spm_free) free;
  decltype(&lk_spm_piece_size) piece_size;
  decltype(&lk_spm_piece_to_id) piece_to_id;
  decltype(&lk_spm_id_to_piece) id_to_piece;
  decltype(&lk_spm_encode) encode;
  decltype(&lk_spm_train) train;
};

// The shim, loaded once (thread-safe). Looked for at $LORAKIT_SPM_LIBRARY, beside the executable, in
// ../lib from it, in the build tree and in the install prefix. Throws TokenizerError naming every
// place tried and dlopen's reason when it cannot be loaded.
const SpmApi& spm_api();

}  // namespace lorakit::text::detail
