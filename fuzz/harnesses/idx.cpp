// IDX (MNIST-family) files, plain or gzipped: data::read_idx / read_idx_images
// (src/tasks/image/idx.h). The first byte picks the call (and a limit); the rest is split at
// kSeparator into the images file and the labels file.
#include "harness.h"
#include "tasks/image/idx.h"

LORAKIT_FUZZ_TARGET(idx) {
  if (size == 0) return 0;
  const int mode = data[0] % 4;
  const int64_t limit = (data[0] / 4) % 3;  // 0 (all), 1 or 2 items
  const auto& scratch = lorakit::fuzz::Scratch::get("idx");
  auto parts = lorakit::fuzz::split_input(data + 1, size - 1, 2);
  scratch.write_parts({"images-idx3-ubyte", "labels-idx1-ubyte"}, parts);
  lorakit::fuzz::expect_clean(
      [&] {
        if (mode < 2) {
          const auto a = lorakit::data::read_idx(scratch.path("images-idx3-ubyte"), limit);
          uint64_t n = 1;
          for (int64_t d : a.dims) n *= static_cast<uint64_t>(d);
          if (a.data.size() != n) lorakit::fuzz::fail("IDX data size does not match its dimensions");
        } else {
          const auto im = lorakit::data::read_idx_images(scratch.path("images-idx3-ubyte"),
                                                         scratch.path("labels-idx1-ubyte"), limit, mode == 3 ? 10 : 0);
          if (im.pixels.size() != static_cast<size_t>(im.count * im.rows * im.cols) ||
              im.labels.size() != static_cast<size_t>(im.count))
            lorakit::fuzz::fail("IDX images and labels do not match their counts");
        }
      },
      scratch.dir());
  return 0;
}
