#include <gtest/gtest.h>

#include "core/runtime.h"

int main(int argc, char** argv) {
  lorakit::ensure_blas_environment(argc, argv);
  lorakit::configure_threads(0);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
