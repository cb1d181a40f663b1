#include <gtest/gtest.h>

#include <cstdlib>

#include "core/runtime.h"

int main(int argc, char** argv) {
  lorakit::ensure_blas_environment(argc, argv);
  // ctest runs test processes in parallel: one LibTorch thread each avoids oversubscribing the cores.
  lorakit::configure_threads(1);
  // train's and sweep's default precision is auto (bf16 on a CPU with bf16 instructions): the suite's
  // tolerances are fp32's on every machine, so the CLI runs it starts default to fp32; the tests of bf16 and
  // of auto ask for them (tests/test_bf16.cpp).
  setenv("LORAKIT_PRECISION", "fp32", 1);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
