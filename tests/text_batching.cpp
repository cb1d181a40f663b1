// make_batches: coverage, sizes, determinism, length grouping.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>
#include <set>
#include <stdexcept>

#include "text/batching.h"

using lorakit::data::fisher_yates;
using lorakit::data::make_batches;
using lorakit::data::uniform_below;
using Batches = std::vector<std::vector<size_t>>;

namespace {

std::vector<size_t> pseudo_lengths(size_t n) {
  std::vector<size_t> len(n);
  for (size_t i = 0; i < n; ++i) len[i] = 5 + (i * 37 + 11) % 60;  // 5..64, many ties
  return len;
}

void expect_each_index_once(const Batches& b, size_t n) {
  std::vector<int> seen(n, 0);
  size_t total = 0;
  for (const auto& batch : b)
    for (size_t i : batch) {
      ASSERT_LT(i, n);
      ++seen[i];
      ++total;
    }
  EXPECT_EQ(total, n);
  for (size_t i = 0; i < n; ++i) EXPECT_EQ(seen[i], 1) << "index " << i;
}

}  // namespace

TEST(BatchingBasic, SequentialWithoutShuffle) {
  const auto b = make_batches(std::vector<size_t>(10, 1), 4, 123, false, false);
  EXPECT_EQ(b, (Batches{{0, 1, 2, 3}, {4, 5, 6, 7}, {8, 9}}));
  // batch larger than the data -> one batch
  EXPECT_EQ(make_batches(std::vector<size_t>(3, 1), 8, 0, false, false), (Batches{{0, 1, 2}}));
  EXPECT_TRUE(make_batches({}, 4, 0, true, true).empty());
  EXPECT_THROW(make_batches({1, 2}, 0, 0, false, false), std::invalid_argument);
  EXPECT_THROW(make_batches({1, 2}, 2, 0, false, true, 0), std::invalid_argument);
}

TEST(BatchingBasic, EveryIndexOnceAndSizes) {
  const size_t n = 103, bs = 8;  // 12 full batches + one of 7
  const auto len = pseudo_lengths(n);
  for (bool shuffle : {false, true})
    for (bool group : {false, true})
      for (size_t mult : {size_t{1}, size_t{3}, size_t{50}}) {
        SCOPED_TRACE(::testing::Message() << "shuffle=" << shuffle << " group=" << group
                                          << " mult=" << mult);
        const auto b = make_batches(len, bs, 42, shuffle, group, mult);
        expect_each_index_once(b, n);
        ASSERT_EQ(b.size(), 13u);
        size_t small = 0;
        for (const auto& batch : b) {
          if (batch.size() == bs) continue;
          EXPECT_EQ(batch.size(), 7u);
          ++small;
        }
        EXPECT_EQ(small, 1u);
        if (!group) {
          EXPECT_EQ(b.back().size(), 7u);  // no batch-order shuffle without grouping
        }
      }
}

TEST(BatchingShuffle, SeedDeterminism) {
  const auto len = pseudo_lengths(200);
  for (bool group : {false, true}) {
    const auto a = make_batches(len, 16, 7, true, group, 2);
    EXPECT_EQ(a, make_batches(len, 16, 7, true, group, 2));
    EXPECT_NE(a, make_batches(len, 16, 8, true, group, 2));  // seed = base + epoch
    EXPECT_NE(a, make_batches(len, 16, 7, false, group, 2));
  }
  // The permutation is a real shuffle: not the identity and not the same for seeds 0..9.
  std::set<Batches> distinct;
  for (uint64_t s = 0; s < 10; ++s) distinct.insert(make_batches(len, 16, s, true, false));
  EXPECT_EQ(distinct.size(), 10u);
}

TEST(BatchingShuffle, PermutationIsOurFisherYates) {
  // Without grouping the batches are the Fisher–Yates permutation of 0..n-1
  // drawn from mt19937_64(seed), cut into chunks.
  const size_t n = 50;
  std::vector<size_t> perm(n);
  std::iota(perm.begin(), perm.end(), size_t{0});
  std::mt19937_64 gen(99);
  fisher_yates(perm, gen);
  const auto b = make_batches(std::vector<size_t>(n, 1), 10, 99, true, false);
  std::vector<size_t> flat;
  for (const auto& x : b) flat.insert(flat.end(), x.begin(), x.end());
  EXPECT_EQ(flat, perm);
  EXPECT_NE(perm[0] + perm[1] * 100, size_t{0 + 100});  // not the identity prefix
}

TEST(BatchingShuffle, GeneratorAndUniformBelow) {
  // The C++ standard fixes mt19937_64: the 10000th output with the default seed.
  std::mt19937_64 g;
  g.discard(9999);
  EXPECT_EQ(g(), 9981545732273789042ULL);
  // uniform_below stays in range and is roughly uniform (30000 draws, bound 3).
  std::mt19937_64 h(1);
  size_t c[3] = {0, 0, 0};
  for (int i = 0; i < 30000; ++i) {
    const uint64_t r = uniform_below(h, 3);
    ASSERT_LT(r, 3u);
    ++c[r];
  }
  for (size_t k : c) {
    EXPECT_GT(k, 9500u);
    EXPECT_LT(k, 10500u);
  }
  EXPECT_EQ(uniform_below(h, 1), 0u);
  EXPECT_THROW(uniform_below(h, 0), std::invalid_argument);
}

TEST(BatchingGroup, SequentialMegabatchesSortedDescending) {
  // n = 20, batch 3, mult 2 -> megabatches of 6 indices: [0,6) [6,12) [12,18) [18,20)
  std::vector<size_t> len = {3, 9, 1, 9, 4, 2,   // -> 1,3 (9,9 stable), 4, 0, 5, 2
                             5, 5, 5, 8, 1, 7,   // -> 9, 11, 6,7,8, 10
                             1, 2, 3, 4, 5, 6,   // -> 17,16,15,14,13,12
                             2, 2};              // -> 18,19
  const auto b = make_batches(len, 3, 0, false, true, 2);
  EXPECT_EQ(b, (Batches{{1, 3, 4}, {0, 5, 2}, {9, 11, 6}, {7, 8, 10},
                        {17, 16, 15}, {14, 13, 12}, {18, 19}}));
}

TEST(BatchingGroup, ShuffledMatchesMegabatchConstruction) {
  const size_t n = 1000, bs = 8, mult = 4, mega = bs * mult;
  const auto len = pseudo_lengths(n);
  const uint64_t seed = 2024;
  const auto b = make_batches(len, bs, seed, true, true, mult);
  expect_each_index_once(b, n);

  // Every batch is sorted by length, longest first.
  for (const auto& batch : b)
    for (size_t i = 1; i < batch.size(); ++i)
      EXPECT_GE(len[batch[i - 1]], len[batch[i]]);

  // Rebuild: permutation -> megabatches sorted by length (desc, stable) -> chunks.
  std::vector<size_t> perm(n);
  std::iota(perm.begin(), perm.end(), size_t{0});
  std::mt19937_64 gen(seed);
  fisher_yates(perm, gen);
  Batches expected;
  for (size_t m = 0; m < n; m += mega) {
    const size_t end = std::min(n, m + mega);
    std::stable_sort(perm.begin() + m, perm.begin() + end,
                     [&](size_t x, size_t y) { return len[x] > len[y]; });
    for (size_t s = m; s < end; s += bs)
      expected.emplace_back(perm.begin() + s, perm.begin() + std::min(end, s + bs));
  }
  // Same batches, in a shuffled order (the same generator continues).
  EXPECT_NE(b, expected);
  Batches sorted_b = b, sorted_e = expected;
  std::sort(sorted_b.begin(), sorted_b.end());
  std::sort(sorted_e.begin(), sorted_e.end());
  EXPECT_EQ(sorted_b, sorted_e);
  Batches reshuffled = expected;
  fisher_yates(reshuffled, gen);
  EXPECT_EQ(b, reshuffled);

  // Grouping reduces padding: summed max length per batch is below the ungrouped one.
  auto padded = [&](const Batches& bb) {
    size_t s = 0;
    for (const auto& batch : bb) {
      size_t mx = 0;
      for (size_t i : batch) mx = std::max(mx, len[i]);
      s += mx * batch.size();
    }
    return s;
  };
  EXPECT_LT(padded(b), padded(make_batches(len, bs, seed, true, false)));
}
