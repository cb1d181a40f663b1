// The file-level half of the TF.js graph-model reader (models/tfjs.h), without LibTorch: model.json's
// weightsManifest and modelTopology, and the weight shards, read and validated. GraphModel::load
// calls read_graph_files; fuzz/harnesses/tfjs.cpp calls it on files it writes.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace lorakit::tfjs {

struct Quantization {
  std::string dtype;  // "uint8", "uint16" or "float16"
  std::optional<double> scale, min;  // affine (uint8/uint16): value = q * scale + min
};

struct WeightSpec {
  std::string name;
  std::vector<int64_t> shape;
  std::string dtype;                         // the logical dtype: "float32", "int32", "bool"
  std::optional<Quantization> quantization;  // how it is stored, when quantized
  size_t group = 0;                          // index into weightsManifest
  uint64_t offset = 0, nbytes = 0;           // byte range in the group's concatenated shards
  int64_t numel() const;                     // read_graph_files has checked that it fits
};

struct GraphNode {
  std::string name, op;
  std::vector<std::string> inputs;  // as written: "node", "node:1" (output 1), "^node" (control)
  std::string attr_json;            // the node's "attr" object, serialised (parse with the helpers)
  std::string source;               // the model.json it came from, for error messages

  // Attribute helpers (nullopt when absent). Strings are stored by the converter as byte arrays or
  // base64 ("s"); both are decoded. A present attribute of the wrong shape (attr_int on a "type" that
  // names a dtype, a number out of int64's range, ...) is a lorakit::Error naming the model.json, the
  // node and the attribute.
  std::optional<std::string> attr_string(const std::string& key) const;
  std::optional<int64_t> attr_int(const std::string& key) const;
  std::optional<double> attr_float(const std::string& key) const;
  std::optional<bool> attr_bool(const std::string& key) const;
  std::vector<int64_t> attr_ints(const std::string& key) const;  // "list": {"i": [...]}
};

// "node:1" -> "node", "^node" -> "node".
std::string input_node_name(const std::string& input);

struct WeightGroup {
  std::vector<std::string> paths;  // model.json's folder / the manifest's path
  std::vector<uint64_t> shard_sizes;
  std::vector<char> data;          // the shards, concatenated
};

struct GraphFiles {
  std::string model_json, dir;
  std::vector<WeightGroup> groups;
  std::vector<WeightSpec> weights;  // every weight's [offset, offset + nbytes) lies in its group's data
  std::map<std::string, size_t> by_name;
  std::vector<GraphNode> nodes;
  std::map<std::string, size_t> node_index;
};

// `path` is model.json or the directory holding it. Reads the manifest and every shard; a missing,
// unreadable, short or over-long shard, a shard path outside model.json's folder, an unknown dtype, a
// shape too large (over 2^40 bytes), or a manifest whose sizes do not add up is a lorakit::Error
// naming the file.
GraphFiles read_graph_files(const std::string& path);

// Bytes per stored element of `w` (its quantized dtype if quantized); 0 for an unsupported dtype.
size_t stored_size(const WeightSpec& w);

// A quantized weight's stored bytes (`src`: w.nbytes of them) dequantized to w.numel() floats, as TF.js does.
void dequantize(const WeightSpec& w, const char* src, float* out);

}  // namespace lorakit::tfjs
