// Batch index generation (standard library only, deterministic across
// platforms: the permutation uses our own Fisher–Yates on std::mt19937_64,
// whose output sequence the C++ standard fixes, and our own unbiased bounded
// draw instead of std::uniform_int_distribution / std::shuffle).
#pragma once

#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

namespace lorakit::data {

// Indices 0..lengths.size()-1 split into batches of batch_size (the last one
// may be smaller; with group_by_length and shuffle, that short batch is
// somewhere in the shuffled order).
//
//   shuffle=false, group_by_length=false: 0,1,2,... in order.
//   shuffle=true: a random permutation drawn from std::mt19937_64(seed).
//   group_by_length: like Hugging Face's LengthGroupedSampler — the
//     (permuted or sequential) order is cut into mega-batches of
//     batch_size*megabatch_mult indices, each mega-batch is stably sorted by
//     length, longest first, and cut into batches; then, if shuffle, the
//     order of the batches is shuffled with the same generator.
//     (Unlike HF we do not move the globally longest example to the first
//     batch.)
//
// For per-epoch reshuffles pass seed = base_seed + epoch.
// Throws std::invalid_argument if batch_size or megabatch_mult is 0.
// lengths is read only when group_by_length is true.
std::vector<std::vector<size_t>> make_batches(const std::vector<size_t>& lengths,
                                              size_t batch_size, uint64_t seed, bool shuffle,
                                              bool group_by_length, size_t megabatch_mult = 50);

// Uniform integer in [0, bound) without modulo bias (bound > 0).
uint64_t uniform_below(std::mt19937_64& gen, uint64_t bound);

// In-place Fisher–Yates shuffle: for i = n-1 .. 1, swap v[i] with v[uniform_below(i+1)].
template <typename T>
void fisher_yates(std::vector<T>& v, std::mt19937_64& gen) {
  for (size_t i = v.size(); i > 1; --i) {
    const size_t j = static_cast<size_t>(uniform_below(gen, static_cast<uint64_t>(i)));
    if (j != i - 1) std::swap(v[i - 1], v[j]);
  }
}

}  // namespace lorakit::data
