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

#include "models/tfjs_graph.h"  // WeightSpec, GraphNode, read_graph_files (no LibTorch)

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace lorakit::tfjs {

class GraphModel {
 public:
  // `path` is model.json or the directory holding it. Reads the manifest and every shard.
  static GraphModel load(const std::string& path);

  const std::string& model_json() const { return f_.model_json; }
  const std::string& dir() const { return f_.dir; }

  // --- weights ---
  const std::vector<WeightSpec>& weights() const { return f_.weights; }
  bool has_weight(const std::string& name) const { return f_.by_name.count(name) != 0; }
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
  const std::vector<GraphNode>& nodes() const { return f_.nodes; }
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
  GraphFiles f_;
};

}  // namespace lorakit::tfjs
