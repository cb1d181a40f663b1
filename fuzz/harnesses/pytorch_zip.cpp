// pytorch_model.bin: list_torch_zip (src/models/checkpoint_files.h), the zip checks read_pytorch_bin
// makes before LibTorch's reader sees the file, on the input as the whole file.
#include "harness.h"
#include "models/checkpoint_files.h"

LORAKIT_FUZZ_TARGET(pytorch_zip) {
  const std::string name = "fuzz/pytorch_model.bin";
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  lorakit::fuzz::expect_clean(
      [&] {
        for (const auto& e : lorakit::list_torch_zip(bytes, name)) {
          if (e.data_offset > size || e.compressed_size > size - e.data_offset)
            lorakit::fuzz::fail("entry '" + e.name + "' accepted with data outside the file");
          if (e.name.empty() || e.name[0] == '/' || e.name.find("..") == 0)
            lorakit::fuzz::fail("entry name '" + e.name + "' accepted");
        }
      },
      name);
  return 0;
}
