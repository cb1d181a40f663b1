#include "train/interrupt.h"

#include <signal.h>

#include <atomic>
#include <cstring>

namespace lorakit {
namespace {

std::atomic<int> g_signal{0};

extern "C" void on_stop_signal(int sig) {
  if (sig == SIGINT && g_signal.load() == SIGINT) {
    // The second Ctrl-C: the default action, now.
    ::signal(SIGINT, SIG_DFL);
    ::raise(SIGINT);
    return;
  }
  g_signal.store(sig);
}

}  // namespace

void install_stop_handlers() {
  static bool done = false;
  if (done) return;
  done = true;
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::signal(SIGXFSZ, SIG_IGN);
}

int stop_requested() { return g_signal.load(); }

std::string signal_name(int sig) {
  if (sig == SIGINT) return "SIGINT";
  if (sig == SIGTERM) return "SIGTERM";
  return "signal " + std::to_string(sig);
}

}  // namespace lorakit
