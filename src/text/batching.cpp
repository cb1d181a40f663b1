#include "text/batching.h"

#include <algorithm>
#include <numeric>
#include <stdexcept>
#include <utility>

namespace lorakit::data {

uint64_t uniform_below(std::mt19937_64& gen, uint64_t bound) {
  if (bound == 0) throw std::invalid_argument("uniform_below: bound must be > 0");
  // Reject the lowest (2^64 mod bound) values so that r % bound is uniform.
  const uint64_t threshold = (0 - bound) % bound;
  uint64_t r;
  do {
    r = gen();
  } while (r < threshold);
  return r % bound;
}

std::vector<std::vector<size_t>> make_batches(const std::vector<size_t>& lengths,
                                              size_t batch_size, uint64_t seed, bool shuffle,
                                              bool group_by_length, size_t megabatch_mult) {
  if (batch_size == 0) throw std::invalid_argument("make_batches: batch_size must be > 0");
  if (group_by_length && megabatch_mult == 0)
    throw std::invalid_argument("make_batches: megabatch_mult must be > 0");

  const size_t n = lengths.size();
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  std::mt19937_64 gen(seed);
  if (shuffle) fisher_yates(order, gen);

  std::vector<std::vector<size_t>> batches;
  batches.reserve((n + batch_size - 1) / batch_size);
  auto chunk = [&](size_t begin, size_t end) {
    for (size_t b = begin; b < end; b += batch_size)
      batches.emplace_back(order.begin() + static_cast<std::ptrdiff_t>(b),
                           order.begin() + static_cast<std::ptrdiff_t>(std::min(end, b + batch_size)));
  };

  if (!group_by_length) {
    chunk(0, n);
    return batches;
  }

  // Mega-batch size, guarding against overflow of batch_size * megabatch_mult.
  const size_t mega = (megabatch_mult > n / batch_size + 1) ? n : batch_size * megabatch_mult;
  for (size_t m = 0; m < n; m += std::max<size_t>(mega, 1)) {
    const size_t end = std::min(n, m + std::max<size_t>(mega, 1));
    std::stable_sort(order.begin() + static_cast<std::ptrdiff_t>(m),
                     order.begin() + static_cast<std::ptrdiff_t>(end),
                     [&](size_t a, size_t b) { return lengths[a] > lengths[b]; });
    chunk(m, end);
  }
  if (shuffle) fisher_yates(batches, gen);
  return batches;
}

}  // namespace lorakit::data
