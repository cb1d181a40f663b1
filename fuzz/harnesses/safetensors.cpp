// safetensors header + offsets: st::parse_header (src/core/safetensors_header.h), the byte-level half
// of SafetensorsFile, on the input as a whole file.
#include "core/safetensors_header.h"
#include "harness.h"

LORAKIT_FUZZ_TARGET(safetensors) {
  const std::string name = "fuzz/model.safetensors";
  lorakit::fuzz::expect_clean(
      [&] {
        const auto h = lorakit::st::parse_header(data, size, name);
        // What SafetensorsFile::load then relies on: each tensor's bytes lie inside the file and match
        // its shape x dtype.
        for (const auto& [n, t] : h.tensors) {
          if (t.begin > t.end || h.data_start > size || t.end > size - h.data_start)
            lorakit::fuzz::fail("tensor '" + n + "' accepted with data outside the file");
          uint64_t numel = 1;
          for (int64_t d : t.shape) numel *= static_cast<uint64_t>(d);
          if (numel * lorakit::st::dtype_size(t.dtype) != t.end - t.begin)
            lorakit::fuzz::fail("tensor '" + n + "' accepted with a byte count that does not match its shape");
        }
      },
      name);
  return 0;
}
