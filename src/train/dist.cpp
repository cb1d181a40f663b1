#define USE_C10D_GLOO 1
#include "train/dist.h"

#include <ATen/ATen.h>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <chrono>
#include <cstdlib>
#include <map>

#include "core/errors.h"

namespace lorakit {

namespace {

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  const long x = std::strtol(v, &end, 10);
  if (!end || *end != '\0' || x < 0 || x > (1L << 30))
    throw Error(std::string("environment variable ") + name + "='" + v + "' is not a non-negative integer");
  return static_cast<int>(x);
}

// c10d / Gloo failures (a peer closed the connection, a timeout) as a lorakit::Error in words.
[[noreturn]] void fail(const DistOptions& o, const std::string& what, const std::exception& e) {
  std::string msg = e.what();
  if (auto* c = dynamic_cast<const c10::Error*>(&e)) msg = c->what_without_backtrace();
  const auto nl = msg.find('\n');
  if (nl != std::string::npos) msg = msg.substr(0, nl);
  throw Error("distributed: rank " + std::to_string(o.rank) + " of " + std::to_string(o.world_size) + ": " + what +
              " failed (" + msg + "); another rank died or hung, or --dist-timeout " +
              std::to_string(static_cast<int64_t>(o.timeout_seconds)) + " s passed");
}

}  // namespace

DistOptions dist_options_from_env(DistOptions o) {
  o.rank = env_int("RANK", o.rank);
  o.world_size = env_int("WORLD_SIZE", o.world_size);
  if (const char* a = std::getenv("MASTER_ADDR"); a && *a) o.master_addr = a;
  o.master_port = env_int("MASTER_PORT", o.master_port);
  return o;
}

struct Dist::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;
};

Dist::Dist(const DistOptions& o) : impl_(std::make_unique<Impl>()), o_(o) {
  if (o.world_size < 1 || o.rank < 0 || o.rank >= o.world_size)
    throw Error("distributed: rank " + std::to_string(o.rank) + " is not in [0, world size " +
                std::to_string(o.world_size) + ")");
  if (o.master_port <= 0 || o.master_port > 65535)
    throw Error("distributed: --master-port " + std::to_string(o.master_port) + " is not a TCP port");
  if (!(o.timeout_seconds > 0)) throw Error("distributed: --dist-timeout must be positive");
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(o.timeout_seconds * 1000));
  try {
    c10d::TCPStoreOptions so;
    so.port = static_cast<uint16_t>(o.master_port);
    so.isServer = o.rank == 0;
    so.numWorkers = o.world_size;
    so.waitWorkers = true;
    so.timeout = timeout;
    impl_->store = c10::make_intrusive<c10d::TCPStore>(o.master_addr, so);
    auto opts = c10d::ProcessGroupGloo::Options::create();
    opts->timeout = timeout;
    opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(o.master_addr));
    impl_->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(impl_->store, o.rank, o.world_size, opts);
  } catch (const std::exception& e) {
    fail(o, "rendezvous at " + o.master_addr + ":" + std::to_string(o.master_port), e);
  }
}

Dist::~Dist() = default;

void Dist::all_reduce_sum(std::vector<at::Tensor>& tensors) {
  // One flat buffer per dtype (the bucket), summed, copied back.
  std::map<at::ScalarType, std::vector<size_t>> by_type;
  for (size_t i = 0; i < tensors.size(); ++i) by_type[tensors[i].scalar_type()].push_back(i);
  for (auto& [type, idx] : by_type) {
    std::vector<at::Tensor> flat;
    for (size_t i : idx) flat.push_back(tensors[i].reshape(-1));
    std::vector<at::Tensor> buf = {at::cat(flat)};
    try {
      impl_->pg->allreduce(buf)->wait();
    } catch (const std::exception& e) {
      fail(o_, "all-reduce", e);
    }
    int64_t off = 0;
    for (size_t i : idx) {
      const int64_t n = tensors[i].numel();
      tensors[i].copy_(buf[0].narrow(0, off, n).view(tensors[i].sizes()));
      off += n;
    }
  }
}

double Dist::sum(double v) {
  std::vector<at::Tensor> t = {at::full({1}, v, at::kDouble)};
  all_reduce_sum(t);
  return t[0].item<double>();
}

int64_t Dist::sum(int64_t v) {
  std::vector<at::Tensor> t = {at::full({1}, v, at::kLong)};
  all_reduce_sum(t);
  return t[0].item<int64_t>();
}

void Dist::barrier() {
  try {
    impl_->pg->barrier()->wait();
  } catch (const std::exception& e) {
    fail(o_, "barrier", e);
  }
}

}  // namespace lorakit
