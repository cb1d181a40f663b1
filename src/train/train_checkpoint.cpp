#include "train/train_checkpoint.h"

#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "core/errors.h"
#include "core/fileutil.h"
#include "core/safetensors.h"

namespace lorakit {
namespace fs = std::filesystem;

namespace {

constexpr int kFormatVersion = 1;
const char* kTensors = "state.safetensors";
const char* kState = "trainer_state.json";

bool whole(const std::string& dir) { return file_exists(join_path(dir, kState)); }

TrainCheckpoint read_dir(const std::string& dir, bool with_tensors) {
  TrainCheckpoint c;
  c.dir = dir;
  const std::string sp = join_path(dir, kState);
  try {
    c.state = nlohmann::json::parse(read_text_file(sp));
  } catch (const nlohmann::json::exception& e) {
    throw Error(sp + ": not valid JSON (" + e.what() + ")");
  }
  if (!c.state.is_object() || !c.state.contains("format_version") || c.state["format_version"] != kFormatVersion)
    throw Error(sp + ": not a lorakit training checkpoint of format version " + std::to_string(kFormatVersion));
  if (with_tensors)
    for (auto& [name, t] : st::load_file(join_path(dir, kTensors))) c.tensors[name] = t;
  return c;
}

}  // namespace

void fault_point(const char* where, int64_t step) {
  static const char* spec = std::getenv("LORAKIT_FAULT");
  if (!spec || !*spec) return;
  // LORAKIT_FAULT_RANK: only that rank of a data-parallel run (RANK) takes the fault.
  static const char* only = std::getenv("LORAKIT_FAULT_RANK");
  static const char* rank = std::getenv("RANK");
  if (only && *only && std::string(only) != (rank && *rank ? rank : "0")) return;
  const std::string s = spec;
  const auto colon = s.find(':');
  if (colon == std::string::npos || s.compare(0, colon, where) != 0) return;
  if (std::atoll(s.c_str() + colon + 1) != step) return;
  const auto colon2 = s.find(':', colon + 1);
  const std::string sig = colon2 == std::string::npos ? "KILL" : s.substr(colon2 + 1);
  if (sig == "TERM" || sig == "INT") {
    ::raise(sig == "TERM" ? SIGTERM : SIGINT);
    return;
  }
  if (sig == "STOP") {  // a hung process: alive, connections open, never answering
    ::raise(SIGSTOP);
    return;
  }
  ::kill(::getpid(), SIGKILL);
  ::pause();
}

void write_train_checkpoint(const std::string& out_dir, const TrainCheckpoint& c) {
  const std::string dir = join_path(out_dir, "checkpoint"), tmp = dir + ".tmp", old = dir + ".old";
  std::error_code ec;
  fs::remove_all(tmp, ec);
  make_dirs(tmp);
  try {
    st::NamedTensors named(c.tensors.begin(), c.tensors.end());
    st::save_file(join_path(tmp, kTensors), named);
    const int64_t step = c.state.value("step", int64_t{-1});
    fault_point("checkpoint-write", step);
    nlohmann::json state = c.state;
    state["format_version"] = kFormatVersion;
    write_text_atomically(join_path(tmp, kState), state.dump(1) + "\n");
    // checkpoint/ is moved aside only once the new one is whole; if a kill left only checkpoint.old/
    // (between the two renames), that one is the newest whole checkpoint.
    if (whole(dir)) {
      fs::remove_all(old, ec);
      fs::rename(dir, old);
    } else {
      fs::remove_all(dir, ec);
    }
    fault_point("checkpoint-swap", step);
    fs::rename(tmp, dir);
    fs::remove_all(old, ec);
  } catch (const fs::filesystem_error& e) {
    fs::remove_all(tmp, ec);
    throw Error(dir + ": cannot write the training checkpoint: " + e.code().message());
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
}

void remove_train_checkpoint(const std::string& out_dir) {
  const std::string dir = join_path(out_dir, "checkpoint");
  std::error_code ec;
  for (const std::string& d : {dir + ".tmp", dir + ".old", dir}) fs::remove_all(d, ec);
}

bool has_train_checkpoint(const std::string& out_dir) {
  const std::string dir = join_path(out_dir, "checkpoint");
  return whole(dir) || whole(dir + ".old");
}

std::optional<TrainCheckpoint> read_train_checkpoint(const std::string& out_dir, bool with_tensors) {
  const std::string dir = join_path(out_dir, "checkpoint"), old = dir + ".old";
  if (whole(dir)) return read_dir(dir, with_tensors);
  if (whole(old)) return read_dir(old, with_tensors);
  return std::nullopt;
}

}  // namespace lorakit
