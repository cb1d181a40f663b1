#include "models/tfjs.h"

#include <cstring>

#include "core/errors.h"

namespace lorakit::tfjs {

GraphModel GraphModel::load(const std::string& path) {
  GraphModel m;
  m.f_ = read_graph_files(path);
  return m;
}

const WeightSpec& GraphModel::weight(const std::string& name) const {
  auto it = f_.by_name.find(name);
  if (it == f_.by_name.end()) throw Error("TF.js model '" + f_.model_json + "' has no weight '" + name + "'");
  return f_.weights[it->second];
}

std::string GraphModel::shard_for(size_t group, uint64_t offset) const {
  const WeightGroup& g = f_.groups.at(group);
  uint64_t pos = 0;
  for (size_t i = 0; i < g.paths.size(); ++i) {
    if (offset < pos + g.shard_sizes[i]) return g.paths[i];
    pos += g.shard_sizes[i];
  }
  return g.paths.empty() ? f_.model_json : g.paths.back();
}

at::Tensor GraphModel::tensor(const std::string& name) const {
  const WeightSpec& w = weight(name);
  const char* src = f_.groups[w.group].data.data() + w.offset;
  const int64_t n = w.numel();
  at::Tensor t;
  if (w.quantization) {
    std::vector<float> v(static_cast<size_t>(n));
    dequantize(w, src, v.data());
    t = torch::from_blob(v.data(), {n}, torch::kFloat32).clone();
    if (w.dtype == "int32") t = t.round().to(torch::kInt32);
  } else if (w.dtype == "float32") {
    t = torch::empty({n}, torch::kFloat32);
    std::memcpy(t.data_ptr(), src, w.nbytes);
  } else if (w.dtype == "int32") {
    t = torch::empty({n}, torch::kInt32);
    std::memcpy(t.data_ptr(), src, w.nbytes);
  } else {  // bool
    t = torch::empty({n}, torch::kUInt8);
    std::memcpy(t.data_ptr(), src, w.nbytes);
    t = t.ne(0);
  }
  if (t.scalar_type() == torch::kFloat32 && n > 0) {
    at::Tensor bad = t.isfinite().logical_not().nonzero();
    if (bad.numel() > 0) {
      const int64_t i = bad[0][0].item<int64_t>();
      const uint64_t byte = w.offset + static_cast<uint64_t>(i) * stored_size(w);
      throw Error("TF.js weight shard '" + shard_for(w.group, byte) + "' is corrupt: weight '" + name +
                  "' has a non-finite value at element " + std::to_string(i));
    }
  }
  return t.reshape(w.shape);
}

double GraphModel::scalar(const std::string& name) const {
  at::Tensor t = tensor(name);
  if (t.numel() != 1)
    throw Error("TF.js model '" + f_.model_json + "': weight '" + name + "' is not a scalar (" +
                std::to_string(t.numel()) + " elements)");
  return t.to(torch::kFloat64).item<double>();
}

int64_t GraphModel::total_weight_elements() const {
  int64_t n = 0;
  for (const auto& w : f_.weights) n += w.numel();
  return n;
}

const GraphNode* GraphModel::find_node(const std::string& name) const {
  auto it = f_.node_index.find(name);
  return it == f_.node_index.end() ? nullptr : &f_.nodes[it->second];
}

const GraphNode& GraphModel::node(const std::string& name) const {
  const GraphNode* n = find_node(name);
  if (!n) throw Error("TF.js model '" + f_.model_json + "': the graph has no node '" + name + "'");
  return *n;
}

std::vector<const GraphNode*> GraphModel::nodes_by_suffix(const std::string& suffix) const {
  std::vector<const GraphNode*> out;
  for (const auto& n : f_.nodes) {
    if (n.name.size() < suffix.size()) continue;
    if (n.name.compare(n.name.size() - suffix.size(), suffix.size(), suffix) != 0) continue;
    if (n.name.size() == suffix.size() || suffix[0] == '/' || n.name[n.name.size() - suffix.size() - 1] == '/')
      out.push_back(&n);
  }
  return out;
}

const GraphNode& GraphModel::node_by_suffix(const std::string& suffix) const {
  auto v = nodes_by_suffix(suffix);
  if (v.empty()) throw Error("TF.js model '" + f_.model_json + "': the graph has no node '.../" + suffix + "'");
  if (v.size() > 1)
    throw Error("TF.js model '" + f_.model_json + "': several graph nodes end with '" + suffix + "' (" + v[0]->name +
                ", " + v[1]->name + ", ...)");
  return *v[0];
}

const WeightSpec& GraphModel::input_weight(const GraphNode& node, size_t index) const {
  if (index >= node.inputs.size())
    throw Error("TF.js model '" + f_.model_json + "': node '" + node.name + "' (" + node.op + ") has no input " +
                std::to_string(index));
  const std::string in = input_node_name(node.inputs[index]);
  if (!has_weight(in))
    throw Error("TF.js model '" + f_.model_json + "': input " + std::to_string(index) + " of node '" + node.name +
                "' (" + in + ") is not a weight of the manifest");
  return weight(in);
}

}  // namespace lorakit::tfjs
