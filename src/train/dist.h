// Data-parallel training on c10d's Gloo process group (PyTorch's own engine): ranks meet through a
// c10d TCPStore at MASTER_ADDR:MASTER_PORT, gradients are all-reduced in one flat bucket. LibTorch-light
// header: Gloo and c10d stay in dist.cpp. docs/distributed.md.
#pragma once
#include <ATen/core/Tensor.h>

#include <memory>
#include <string>
#include <vector>

namespace lorakit {

struct DistOptions {
  int rank = 0;
  int world_size = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  double timeout_seconds = 300;  // a rank that dies or hangs: every other rank fails within this
};

// RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT (torchrun's environment) over `base` where set; an Error naming
// the variable when one does not parse.
DistOptions dist_options_from_env(DistOptions base);

class Dist {
 public:
  // Rendezvous of every rank (rank 0 serves the store); an Error naming the address when it fails.
  explicit Dist(const DistOptions& o);
  ~Dist();
  int rank() const { return o_.rank; }
  int world_size() const { return o_.world_size; }
  const DistOptions& options() const { return o_; }
  // Σ over ranks, in place: the tensors travel as one flat float buffer per dtype.
  void all_reduce_sum(std::vector<at::Tensor>& tensors);
  double sum(double v);
  int64_t sum(int64_t v);
  void barrier();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  DistOptions o_;
};

}  // namespace lorakit
