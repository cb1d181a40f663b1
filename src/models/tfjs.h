// Reader for TensorFlow.js graph models (the format tensorflowjs_converter writes: model.json with
// "modelTopology" (a GraphDef as JSON) and "weightsManifest", plus binary weight shards).
//
// Weights: weightsManifest is a list of groups {paths: [shard files], weights: [{name, shape, dtype,
// quantization?}]}. A group's shards, concatenated in `paths` order, hold its weights back to back in
// `weights` order, little-endian, with no padding. dtypes: float32, int32, bool (1 byte each);
// quantized weights ({dtype: uint8|uint16, scale, min} affine, or {dtype: float16}) are dequantized to
// float32 as TF.js does. Everything is read and validated when the model is opened: a missing,
// unreadable, short or over-long shard, an unknown dtype or a manifest whose sizes do not add up is a
// lorakit::Error that names the file and the problem. Float weights are checked for NaN/Inf when
// read (a corrupt shard), naming the shard that holds the bad value.
//
// Topology: the nodes of modelTopology.node (name, op, inputs, attributes), enough to follow the
// architecture: find a node by name or by name suffix, read its attributes, and get the constant
// behind an input (weights are the graph's Const nodes, by the same name).
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <memory>
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
  int64_t numel() const;
};

struct GraphNode {
  std::string name, op;
  std::vector<std::string> inputs;  // as written: "node", "node:1" (output 1), "^node" (control)
  std::string attr_json;            // the node's "attr" object, serialised (parse with the helpers)

  // Attribute helpers (nullopt when absent). Strings are stored by the converter as byte arrays or
  // base64 ("s"); both are decoded.
  std::optional<std::string> attr_string(const std::string& key) const;
  std::optional<int64_t> attr_int(const std::string& key) const;
  std::optional<double> attr_float(const std::string& key) const;
  std::optional<bool> attr_bool(const std::string& key) const;
  std::vector<int64_t> attr_ints(const std::string& key) const;  // "list": {"i": [...]}
};

// "node:1" -> "node", "^node" -> "node".
std::string input_node_name(const std::string& input);

class GraphModel {
 public:
  // `path` is model.json or the directory holding it. Reads the manifest and every shard.
  static GraphModel load(const std::string& path);

  const std::string& model_json() const { return model_json_; }
  const std::string& dir() const { return dir_; }

  // --- weights ---
  const std::vector<WeightSpec>& weights() const { return weights_; }
  bool has_weight(const std::string& name) const { return by_name_.count(name) != 0; }
  const WeightSpec& weight(const std::string& name) const;  // throws naming model.json
  // A new tensor (owning its memory) with the weight's shape: float32, int32 or bool.
  at::Tensor tensor(const std::string& name) const;
  // A scalar (or one-element) weight as a double.
  double scalar(const std::string& name) const;
  // Sum of numel() over every weight of the manifest.
  int64_t total_weight_elements() const;
  // The shard file holding byte `offset` of group `group` (for messages).
  std::string shard_for(size_t group, uint64_t offset) const;

  // --- topology ---
  const std::vector<GraphNode>& nodes() const { return nodes_; }
  const GraphNode* find_node(const std::string& name) const;  // nullptr if absent
  const GraphNode& node(const std::string& name) const;      // throws naming model.json
  // The unique node whose name ends with `suffix` (a whole path component boundary: the suffix
  // must follow a '/' or be the whole name); throws if none or several.
  const GraphNode& node_by_suffix(const std::string& suffix) const;
  std::vector<const GraphNode*> nodes_by_suffix(const std::string& suffix) const;
  // The weight behind input `index` of `node` (a Const node with manifest data); throws if that
  // input is not a weight.
  const WeightSpec& input_weight(const GraphNode& node, size_t index) const;

 private:
  struct Group {
    std::vector<std::string> paths;      // absolute
    std::vector<uint64_t> shard_sizes;
    std::vector<char> data;              // the shards, concatenated
  };
  std::string model_json_, dir_;
  std::vector<Group> groups_;
  std::vector<WeightSpec> weights_;
  std::map<std::string, size_t> by_name_;
  std::vector<GraphNode> nodes_;
  std::map<std::string, size_t> node_index_;
};

}  // namespace lorakit::tfjs
