// CIFAR-10 / CIFAR-100 binary files: data::read_cifar_file (src/tasks/image/cifar.h). The first byte
// picks the kind (10, 100 fine, 100 coarse) and a limit; the rest is the file.
#include "harness.h"
#include "tasks/image/cifar.h"

LORAKIT_FUZZ_TARGET(cifar) {
  if (size == 0) return 0;
  const lorakit::data::CifarKind kinds[] = {lorakit::data::CifarKind::Cifar10, lorakit::data::CifarKind::Cifar100Fine,
                                            lorakit::data::CifarKind::Cifar100Coarse};
  const auto kind = kinds[data[0] % 3];
  const int64_t limit = (data[0] / 3) % 3;
  const auto& scratch = lorakit::fuzz::Scratch::get("cifar");
  const std::string path = scratch.write("data_batch_1.bin", std::string(reinterpret_cast<const char*>(data) + 1, size - 1));
  lorakit::fuzz::expect_clean(
      [&] {
        lorakit::data::CifarImages out;
        lorakit::data::read_cifar_file(path, kind, out, limit);
        if (out.pixels.size() != static_cast<size_t>(out.count * lorakit::data::kCifarPixels) ||
            out.labels.size() != static_cast<size_t>(out.count))
          lorakit::fuzz::fail("CIFAR pixels and labels do not match the count");
      },
      path);
  return 0;
}
