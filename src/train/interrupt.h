// SIGINT / SIGTERM during training: the handler only records the signal; the trainer finishes the step it
// is in, writes a checkpoint and throws Interrupted (the CLI exits 128 + the signal's number). A second
// SIGINT ends the process at once.
#pragma once
#include <string>

#include "core/errors.h"

namespace lorakit {

struct Interrupted : Error {
  Interrupted(const std::string& what, int sig) : Error(what), signal(sig) {}
  int signal;
};

// Installs the handlers (idempotent). Also ignores SIGXFSZ, so that a write past `ulimit -f` fails with
// an error (EFBIG) the writer reports, instead of killing the process.
void install_stop_handlers();
// The signal received since the handlers were installed, 0 when none.
int stop_requested();
// "SIGINT", "SIGTERM", ...
std::string signal_name(int sig);

}  // namespace lorakit
