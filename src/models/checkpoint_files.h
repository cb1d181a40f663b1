// The byte- and JSON-level parts of reading a model directory's weights, without LibTorch:
// model.safetensors.index.json, and the zip container of a pytorch_model.bin (checked here before
// LibTorch's unpickler sees it). models/checkpoint.cpp calls these; fuzz/harnesses/ feed them bytes.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace lorakit {

// model.safetensors.index.json: its "weight_map" grouped by shard file (each a plain file name in the
// index's folder), tensor names in name order. Throws lorakit::Error naming `path`.
std::map<std::string, std::vector<std::string>> parse_safetensors_index(const std::string& text,
                                                                        const std::string& path);

struct ZipEntry {
  std::string name;          // as stored, e.g. "archive/data.pkl"
  uint16_t method = 0;       // 0 stored, 8 deflated
  uint64_t data_offset = 0;  // where the entry's (compressed) bytes start in the file
  uint64_t compressed_size = 0, size = 0;
};

// The entries of a zip pytorch_model.bin (torch.save's format: zip or zip64, entries stored or deflated
// under one top-level folder, "<folder>/data.pkl" among them), from its central directory. Every
// offset and size is checked against the file: the end-of-central-directory record, the zip64 record
// when there is one, each central and local header, each entry's name (relative, no "..", no NUL, the
// same folder for all, no duplicates) and data range; a deflated entry may not claim more than 1032 ×
// its compressed size (deflate's limit). Throws lorakit::Error "<path>: invalid pytorch_model.bin zip: ...".
std::vector<ZipEntry> list_torch_zip(const std::string& bytes, const std::string& path);

}  // namespace lorakit
