#include <gtest/gtest.h>

#include "core/runtime.h"

int main(int argc, char** argv) {
  lorakit::ensure_blas_environment(argc, argv);
  // ctest runs test processes in parallel: one LibTorch thread each avoids oversubscribing the cores.
  lorakit::configure_threads(1);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
