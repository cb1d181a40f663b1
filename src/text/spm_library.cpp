#include "text/spm_library.h"

#include <dlfcn.h>

#include <filesystem>
#include <mutex>
#include <vector>

#include "text/tokenizer.h"

namespace lorakit::text::detail {
namespace {

std::vector<std::string> candidates() {
  std::vector<std::string> out;
  if (const char* env = std::getenv("LORAKIT_SPM_LIBRARY")) out.emplace_back(env);
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    out.push_back((exe.parent_path() / "liblorakit_spm.so").string());
    out.push_back((exe.parent_path().parent_path() / "lib" / "liblorakit_spm.so").string());
    out.push_back((exe.parent_path().parent_path() / "lib64" / "liblorakit_spm.so").string());
  }
#ifdef LORAKIT_SPM_BUILD_PATH
  out.emplace_back(LORAKIT_SPM_BUILD_PATH);
#endif
#ifdef LORAKIT_SPM_INSTALL_PATH
  out.emplace_back(LORAKIT_SPM_INSTALL_PATH);
#endif
  return out;
}

// Opens one library of the SentencePiece chain. Normally dlopen(flags). The sanitizer build
// (LORAKIT_SPM_DLMOPEN, CMake's LORAKIT_SANITIZE) cannot: ASan's dlopen ends the process on RTLD_DEEPBIND,
// and without it libsentencepiece's protobuf-lite 3.14 binds to LibTorch's libprotobuf 3.21 and fails
// its version check. There the chain goes into a link-map namespace of its own (dlmopen LM_ID_NEWLM, which
// ASan does not intercept), with its own libc, libstdc++ and protobuf: nothing it exports is seen by
// lorakit or LibTorch. Only C types and callbacks cross (spm_shim.h), so nothing is freed across namespaces;
// the shim is built uninstrumented, so no second ASan runtime is pulled into that namespace.
void* open_library(const char* path, int flags) {
#ifdef LORAKIT_SPM_DLMOPEN
  (void)flags;
  static Lmid_t ns = LM_ID_NEWLM;  // only called under spm_api()'s call_once
  void* h = dlmopen(ns, path, RTLD_NOW | RTLD_LOCAL);
  if (h && ns == LM_ID_NEWLM && dlinfo(h, RTLD_DI_LMID, &ns) != 0) ns = LM_ID_NEWLM;
  return h;
#else
  return dlopen(path, flags);
#endif
}

SpmApi load_api() {
  // libsentencepiece first, on its own: RTLD_DEEPBIND makes it bind to its bundled protobuf-lite,
  // RTLD_LOCAL keeps those symbols from interposing on LibTorch's libprotobuf. AddressSanitizer refuses
  // RTLD_DEEPBIND; the sanitizer build of fuzz/ links no LibTorch (so no libprotobuf to clash with)
  // and defines LORAKIT_SPM_NO_DEEPBIND.
#ifdef LORAKIT_SPM_NO_DEEPBIND
  const int flags = RTLD_NOW | RTLD_LOCAL;
#else
  const int flags = RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND;
#endif
  std::string why;
  for (const char* lib : {"libsentencepiece.so.0", "libsentencepiece_train.so.0"}) {
    if (!open_library(lib, flags)) {
      const char* e = dlerror();
      throw TokenizerError(std::string("cannot load ") + lib + " (Debian package libsentencepiece0): " + (e ? e : "?"));
    }
  }
  void* h = nullptr;
  std::string tried;
  for (const auto& path : candidates()) {
    if (!std::filesystem::exists(path)) {
      tried += "\n  " + path + " (absent)";
      continue;
    }
    h = open_library(path.c_str(), flags);
    if (h) break;
    const char* e = dlerror();
    tried += "\n  " + path + " (" + (e ? e : "?") + ")";
  }
  if (!h) {
    // Last: the bare name, through the executable's RUNPATH (lorakitConfig.cmake adds the install
    // prefix's lib directory to consumers) and the loader's search path.
    h = open_library("liblorakit_spm.so", flags);
    if (!h) {
      const char* e = dlerror();
      tried += std::string("\n  liblorakit_spm.so on the library path (") + (e ? e : "?") + ")";
    }
  }
  if (!h) throw TokenizerError("cannot load liblorakit_spm.so (SentencePiece support); tried:" + tried);
  auto sym = [&](const char* name) {
    void* p = dlsym(h, name);
    if (!p) throw TokenizerError(std::string("liblorakit_spm.so lacks ") + name);
    return p;
  };
  auto version = reinterpret_cast<decltype(&lk_spm_abi_version)>(sym("lk_spm_abi_version"));
  if (version() != 1) throw TokenizerError("liblorakit_spm.so has interface version " + std::to_string(version()) + ", expected 1");
  SpmApi api{};
  api.load = reinterpret_cast<decltype(api.load)>(sym("lk_spm_load"));
  api.free = reinterpret_cast<decltype(api.free)>(sym("lk_spm_free"));
  api.piece_size = reinterpret_cast<decltype(api.piece_size)>(sym("lk_spm_piece_size"));
  api.piece_to_id = reinterpret_cast<decltype(api.piece_to_id)>(sym("lk_spm_piece_to_id"));
  api.id_to_piece = reinterpret_cast<decltype(api.id_to_piece)>(sym("lk_spm_id_to_piece"));
  api.encode = reinterpret_cast<decltype(api.encode)>(sym("lk_spm_encode"));
  api.train = reinterpret_cast<decltype(api.train)>(sym("lk_spm_train"));
  return api;
}

}  // namespace

const SpmApi& spm_api() {
  static std::once_flag once;
  static SpmApi api;
  static std::string error;
  std::call_once(once, [] {
    try {
      api = load_api();
    } catch (const std::exception& e) {
      error = e.what();
    }
  });
  if (!error.empty()) throw TokenizerError(error);
  return api;
}

}  // namespace lorakit::text::detail
