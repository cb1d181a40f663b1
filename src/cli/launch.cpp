#include "cli/launch.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/core.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "core/errors.h"

namespace lorakit::cli {
namespace {

std::vector<std::string> g_args;
volatile sig_atomic_t g_forward = 0;

extern "C" void on_parent_signal(int sig) { g_forward = sig; }

// A TCP port free on the loopback now (the kernel picks it), for the ranks' store.
int free_port() {
  const int s = ::socket(AF_INET, SOCK_STREAM, 0);
  if (s < 0) throw Error(std::string("--nproc: cannot open a socket: ") + std::strerror(errno));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    ::close(s);
    throw Error(std::string("--nproc: cannot find a free port: ") + std::strerror(errno));
  }
  ::close(s);
  return ntohs(a.sin_port);
}

std::string status_words(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("was killed by ") + strsignal(WTERMSIG(status));
  return "ended";
}

int status_code(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

}  // namespace

void set_command_line(int argc, char** argv) { g_args.assign(argv, argv + argc); }

int launch_local_ranks(int nproc, double timeout_seconds) {
  if (g_args.empty()) throw Error("--nproc: the command line was not recorded");
  const int port = free_port();
  struct sigaction sa {};
  sa.sa_handler = on_parent_signal;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGINT, &sa, nullptr);  // Ctrl-C reaches the ranks too (same process group); they checkpoint
  std::vector<pid_t> pids(nproc, -1);
  for (int r = 0; r < nproc; ++r) {
    const pid_t pid = ::fork();
    if (pid < 0) throw Error(std::string("--nproc: fork failed: ") + std::strerror(errno));
    if (pid == 0) {
      ::setenv("RANK", std::to_string(r).c_str(), 1);
      ::setenv("LOCAL_RANK", std::to_string(r).c_str(), 1);
      ::setenv("WORLD_SIZE", std::to_string(nproc).c_str(), 1);
      ::setenv("LOCAL_WORLD_SIZE", std::to_string(nproc).c_str(), 1);
      ::setenv("MASTER_ADDR", "127.0.0.1", 1);
      ::setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
      std::vector<char*> argv;
      for (auto& a : g_args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      ::execv("/proc/self/exe", argv.data());
      std::fprintf(stderr, "lorakit: --nproc: cannot start rank %d: %s\n", r, std::strerror(errno));
      std::_Exit(127);
    }
    pids[r] = pid;
  }
  int first_failure = 0, running = nproc;
  bool stopping = false;
  auto deadline = std::chrono::steady_clock::time_point::max();
  while (running > 0) {
    if (g_forward) {
      for (pid_t p : pids)
        if (p > 0) ::kill(p, g_forward == SIGINT ? SIGINT : SIGTERM);
      g_forward = 0;
    }
    int status = 0;
    const pid_t done = ::waitpid(-1, &status, WNOHANG);
    if (done <= 0) {
      if (done < 0 && errno == ECHILD) break;
      if (stopping && std::chrono::steady_clock::now() > deadline) {
        for (pid_t p : pids)
          if (p > 0) ::kill(p, SIGKILL);
        deadline = std::chrono::steady_clock::time_point::max();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      continue;
    }
    int rank = -1;
    for (int r = 0; r < nproc; ++r)
      if (pids[r] == done) rank = r;
    if (rank < 0) continue;
    pids[rank] = -1;
    --running;
    const int code = status_code(status);
    if (code != 0 && first_failure == 0) {
      first_failure = code;
      if (running > 0) {
        fmt::print(stderr, "lorakit: rank {} of {} {}; stopping the other ranks\n", rank, nproc, status_words(status));
        // SIGCONT too: a stopped rank (SIGSTOP, a debugger's ^Z) would otherwise hold SIGTERM until the
        // SIGKILL below.
        for (pid_t p : pids)
          if (p > 0) {
            ::kill(p, SIGTERM);
            ::kill(p, SIGCONT);
          }
        stopping = true;
        deadline = std::chrono::steady_clock::now() +
                   std::chrono::milliseconds(static_cast<int64_t>(timeout_seconds * 1000) + 10000);
      }
    }
  }
  return first_failure;
}

}  // namespace lorakit::cli
