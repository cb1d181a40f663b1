#include "models/tfjs.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/errors.h"

namespace lorakit::tfjs {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// Bytes per stored element.
size_t stored_size(const WeightSpec& w) {
  if (w.quantization) {
    const std::string& q = w.quantization->dtype;
    if (q == "uint8") return 1;
    if (q == "uint16" || q == "float16") return 2;
    return 0;
  }
  if (w.dtype == "float32" || w.dtype == "int32") return 4;
  if (w.dtype == "bool") return 1;
  return 0;
}

std::string base64_decode(const std::string& in) {
  static const std::string chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  uint32_t buf = 0;
  int bits = 0;
  for (char c : in) {
    if (c == '=') break;
    size_t v = chars.find(c);
    if (v == std::string::npos) {
      if (c == '-') v = 62;
      else if (c == '_') v = 63;
      else continue;
    }
    buf = (buf << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((buf >> bits) & 0xFF));
    }
  }
  return out;
}

int64_t to_int(const json& j) {
  // GraphDef JSON writes int64 values as strings.
  if (j.is_string()) return std::stoll(j.get<std::string>());
  if (j.is_number_integer()) return j.get<int64_t>();
  if (j.is_number()) return static_cast<int64_t>(j.get<double>());
  throw std::invalid_argument("not an integer");
}

float half_to_float(uint16_t h) {
  const uint32_t sign = (h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1F, mant = h & 0x3FF;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal
      exp = 127 - 15 + 1;
      while (!(mant & 0x400)) {
        mant <<= 1;
        --exp;
      }
      mant &= 0x3FF;
      bits = sign | (exp << 23) | (mant << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7F800000u | (mant << 13);
  } else {
    bits = sign | ((exp - 15 + 127) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

}  // namespace

int64_t WeightSpec::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string input_node_name(const std::string& input) {
  std::string s = input;
  if (!s.empty() && s[0] == '^') s = s.substr(1);
  auto colon = s.rfind(':');
  if (colon != std::string::npos && colon + 1 < s.size() &&
      s.find_first_not_of("0123456789", colon + 1) == std::string::npos)
    s = s.substr(0, colon);
  return s;
}

// ---- attributes ----

std::optional<std::string> GraphNode::attr_string(const std::string& key) const {
  json a = json::parse(attr_json);
  auto it = a.find(key);
  if (it == a.end() || !it->is_object() || !it->contains("s")) return std::nullopt;
  const json& s = (*it)["s"];
  if (s.is_array()) {
    std::string out;
    for (const auto& c : s) out.push_back(static_cast<char>(c.get<int>()));
    return out;
  }
  if (s.is_string()) return base64_decode(s.get<std::string>());
  return std::nullopt;
}

std::optional<int64_t> GraphNode::attr_int(const std::string& key) const {
  json a = json::parse(attr_json);
  auto it = a.find(key);
  if (it == a.end() || !it->is_object()) return std::nullopt;
  if (it->contains("i")) return to_int((*it)["i"]);
  if (it->contains("type")) return to_int((*it)["type"]);
  return std::nullopt;
}

std::optional<double> GraphNode::attr_float(const std::string& key) const {
  json a = json::parse(attr_json);
  auto it = a.find(key);
  if (it == a.end() || !it->is_object() || !it->contains("f")) return std::nullopt;
  const json& f = (*it)["f"];
  if (f.is_number()) return f.get<double>();
  if (f.is_string()) return std::stod(f.get<std::string>());
  return std::nullopt;
}

std::optional<bool> GraphNode::attr_bool(const std::string& key) const {
  json a = json::parse(attr_json);
  auto it = a.find(key);
  if (it == a.end() || !it->is_object() || !it->contains("b")) return std::nullopt;
  const json& b = (*it)["b"];
  if (b.is_boolean()) return b.get<bool>();
  return std::nullopt;
}

std::vector<int64_t> GraphNode::attr_ints(const std::string& key) const {
  json a = json::parse(attr_json);
  std::vector<int64_t> out;
  auto it = a.find(key);
  if (it == a.end() || !it->is_object() || !it->contains("list")) return out;
  const json& l = (*it)["list"];
  if (l.contains("i") && l["i"].is_array())
    for (const auto& v : l["i"]) out.push_back(to_int(v));
  return out;
}

// ---- loading ----

GraphModel GraphModel::load(const std::string& path) {
  GraphModel m;
  std::error_code ec;
  fs::path p(path);
  if (fs::is_directory(p, ec)) p /= "model.json";
  m.model_json_ = p.string();
  m.dir_ = p.parent_path().string();
  const std::string& mj = m.model_json_;
  if (!fs::exists(p, ec)) throw Error("TF.js model '" + mj + "' does not exist");

  json doc;
  {
    std::ifstream is(p, std::ios::binary);
    if (!is) throw Error("TF.js model '" + mj + "': cannot open");
    try {
      doc = json::parse(is);
    } catch (const json::exception& e) {
      throw Error("TF.js model '" + mj + "': invalid JSON (" + std::string(e.what()) + ")");
    }
  }
  if (!doc.is_object()) throw Error("TF.js model '" + mj + "': not a JSON object");
  auto wm = doc.find("weightsManifest");
  if (wm == doc.end() || !wm->is_array()) throw Error("TF.js model '" + mj + "': no \"weightsManifest\" array");

  // Manifest.
  for (size_t g = 0; g < wm->size(); ++g) {
    const json& grp = (*wm)[g];
    const std::string where = "TF.js model '" + mj + "': weightsManifest[" + std::to_string(g) + "]";
    if (!grp.is_object() || !grp.contains("paths") || !grp["paths"].is_array() || !grp.contains("weights") ||
        !grp["weights"].is_array())
      throw Error(where + " needs \"paths\" and \"weights\" arrays");
    Group group;
    for (const auto& sp : grp["paths"]) {
      if (!sp.is_string()) throw Error(where + ": a path is not a string");
      group.paths.push_back((fs::path(m.dir_) / sp.get<std::string>()).string());
    }
    uint64_t offset = 0;
    for (const auto& wj : grp["weights"]) {
      WeightSpec w;
      try {
        w.name = wj.at("name").get<std::string>();
        for (const auto& d : wj.at("shape")) w.shape.push_back(to_int(d));
        w.dtype = wj.at("dtype").get<std::string>();
      } catch (const std::exception&) {
        throw Error(where + ": malformed weight entry " + wj.dump().substr(0, 200));
      }
      for (int64_t d : w.shape)
        if (d < 0) throw Error(where + ": weight '" + w.name + "' has a negative dimension");
      if (wj.contains("quantization") && !wj["quantization"].is_null()) {
        const json& q = wj["quantization"];
        Quantization qz;
        if (!q.is_object() || !q.contains("dtype") || !q["dtype"].is_string())
          throw Error(where + ": weight '" + w.name + "' has a malformed \"quantization\"");
        qz.dtype = q["dtype"].get<std::string>();
        if (q.contains("scale") && q["scale"].is_number()) qz.scale = q["scale"].get<double>();
        if (q.contains("min") && q["min"].is_number()) qz.min = q["min"].get<double>();
        if (qz.dtype != "uint8" && qz.dtype != "uint16" && qz.dtype != "float16")
          throw Error(where + ": weight '" + w.name + "' has unknown quantization dtype '" + qz.dtype + "'");
        if (qz.dtype != "float16" && (!qz.scale || !qz.min))
          throw Error(where + ": weight '" + w.name + "' is " + qz.dtype + "-quantized without scale and min");
        if (w.dtype != "float32" && !(w.dtype == "int32" && qz.dtype != "float16"))
          throw Error(where + ": weight '" + w.name + "': cannot dequantize " + qz.dtype + " to " + w.dtype);
        w.quantization = qz;
      }
      const size_t es = stored_size(w);
      if (es == 0)
        throw Error(where + ": weight '" + w.name + "' has unknown or unsupported dtype '" + w.dtype +
                    "' (supported: float32, int32, bool)");
      if (m.by_name_.count(w.name)) throw Error(where + ": weight '" + w.name + "' listed twice");
      w.group = g;
      w.offset = offset;
      w.nbytes = static_cast<uint64_t>(w.numel()) * es;
      offset += w.nbytes;
      m.by_name_[w.name] = m.weights_.size();
      m.weights_.push_back(std::move(w));
    }

    // Shards: read and concatenate.
    uint64_t total = 0;
    for (const auto& sp : group.paths) {
      if (!fs::exists(sp, ec)) throw Error("TF.js weight shard '" + sp + "' is missing (listed in " + mj + ")");
      if (!fs::is_regular_file(sp, ec)) throw Error("TF.js weight shard '" + sp + "' is not a regular file");
      const uint64_t sz = fs::file_size(sp, ec);
      if (ec) throw Error("TF.js weight shard '" + sp + "': cannot read its size (" + ec.message() + ")");
      group.shard_sizes.push_back(sz);
      total += sz;
    }
    if (total != offset) {
      // Name the shard most likely at fault: converters write every shard but the last at the same
      // size, so a shorter one before the last is truncated; otherwise the last one is.
      std::string culprit = group.paths.empty() ? mj : group.paths.back();
      for (size_t i = 0; i + 1 < group.paths.size(); ++i)
        if (group.shard_sizes[i] != group.shard_sizes[0]) {
          culprit = group.paths[i];
          break;
        }
      std::ostringstream os;
      os << "TF.js weight shard '" << culprit << "': " << (total < offset ? "short" : "too long") << " — "
         << mj << " (weightsManifest[" << g << "]) describes " << offset << " bytes of weights, its "
         << group.paths.size() << " shard(s) hold " << total << " bytes (";
      for (size_t i = 0; i < group.paths.size(); ++i)
        os << (i ? ", " : "") << fs::path(group.paths[i]).filename().string() << ": " << group.shard_sizes[i];
      os << ")";
      throw Error(os.str());
    }
    group.data.resize(total);
    uint64_t pos = 0;
    for (size_t i = 0; i < group.paths.size(); ++i) {
      std::ifstream is(group.paths[i], std::ios::binary);
      if (!is) throw Error("TF.js weight shard '" + group.paths[i] + "': cannot open");
      is.read(group.data.data() + pos, static_cast<std::streamsize>(group.shard_sizes[i]));
      if (static_cast<uint64_t>(is.gcount()) != group.shard_sizes[i])
        throw Error("TF.js weight shard '" + group.paths[i] + "': read error (short read)");
      pos += group.shard_sizes[i];
    }
    m.groups_.push_back(std::move(group));
  }

  // Topology.
  auto topo = doc.find("modelTopology");
  if (topo != doc.end() && topo->is_object() && topo->contains("node") && (*topo)["node"].is_array()) {
    for (const auto& nj : (*topo)["node"]) {
      GraphNode n;
      if (!nj.is_object() || !nj.contains("name") || !nj["name"].is_string())
        throw Error("TF.js model '" + mj + "': a modelTopology node has no name");
      n.name = nj["name"].get<std::string>();
      n.op = nj.value("op", std::string());
      if (nj.contains("input") && nj["input"].is_array())
        for (const auto& in : nj["input"])
          if (in.is_string()) n.inputs.push_back(in.get<std::string>());
      n.attr_json = nj.contains("attr") ? nj["attr"].dump() : "{}";
      m.node_index_[n.name] = m.nodes_.size();
      m.nodes_.push_back(std::move(n));
    }
  }
  return m;
}

const WeightSpec& GraphModel::weight(const std::string& name) const {
  auto it = by_name_.find(name);
  if (it == by_name_.end()) throw Error("TF.js model '" + model_json_ + "' has no weight '" + name + "'");
  return weights_[it->second];
}

std::string GraphModel::shard_for(size_t group, uint64_t offset) const {
  const Group& g = groups_.at(group);
  uint64_t pos = 0;
  for (size_t i = 0; i < g.paths.size(); ++i) {
    if (offset < pos + g.shard_sizes[i]) return g.paths[i];
    pos += g.shard_sizes[i];
  }
  return g.paths.empty() ? model_json_ : g.paths.back();
}

at::Tensor GraphModel::tensor(const std::string& name) const {
  const WeightSpec& w = weight(name);
  const char* src = groups_[w.group].data.data() + w.offset;
  const int64_t n = w.numel();
  at::Tensor t;
  if (w.quantization) {
    const Quantization& q = *w.quantization;
    std::vector<float> v(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      if (q.dtype == "uint8") {
        v[i] = static_cast<float>(static_cast<uint8_t>(src[i]) * *q.scale + *q.min);
      } else {
        uint16_t u;
        std::memcpy(&u, src + 2 * i, 2);
        v[i] = q.dtype == "float16" ? half_to_float(u) : static_cast<float>(u * *q.scale + *q.min);
      }
    }
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
    throw Error("TF.js model '" + model_json_ + "': weight '" + name + "' is not a scalar (" +
                std::to_string(t.numel()) + " elements)");
  return t.to(torch::kFloat64).item<double>();
}

int64_t GraphModel::total_weight_elements() const {
  int64_t n = 0;
  for (const auto& w : weights_) n += w.numel();
  return n;
}

const GraphNode* GraphModel::find_node(const std::string& name) const {
  auto it = node_index_.find(name);
  return it == node_index_.end() ? nullptr : &nodes_[it->second];
}

const GraphNode& GraphModel::node(const std::string& name) const {
  const GraphNode* n = find_node(name);
  if (!n) throw Error("TF.js model '" + model_json_ + "': the graph has no node '" + name + "'");
  return *n;
}

std::vector<const GraphNode*> GraphModel::nodes_by_suffix(const std::string& suffix) const {
  std::vector<const GraphNode*> out;
  for (const auto& n : nodes_) {
    if (n.name.size() < suffix.size()) continue;
    if (n.name.compare(n.name.size() - suffix.size(), suffix.size(), suffix) != 0) continue;
    if (n.name.size() == suffix.size() || suffix[0] == '/' || n.name[n.name.size() - suffix.size() - 1] == '/')
      out.push_back(&n);
  }
  return out;
}

const GraphNode& GraphModel::node_by_suffix(const std::string& suffix) const {
  auto v = nodes_by_suffix(suffix);
  if (v.empty()) throw Error("TF.js model '" + model_json_ + "': the graph has no node '.../" + suffix + "'");
  if (v.size() > 1)
    throw Error("TF.js model '" + model_json_ + "': several graph nodes end with '" + suffix + "' (" + v[0]->name +
                ", " + v[1]->name + ", ...)");
  return *v[0];
}

const WeightSpec& GraphModel::input_weight(const GraphNode& node, size_t index) const {
  if (index >= node.inputs.size())
    throw Error("TF.js model '" + model_json_ + "': node '" + node.name + "' (" + node.op + ") has no input " +
                std::to_string(index));
  const std::string in = input_node_name(node.inputs[index]);
  if (!has_weight(in))
    throw Error("TF.js model '" + model_json_ + "': input " + std::to_string(index) + " of node '" + node.name +
                "' (" + in + ") is not a weight of the manifest");
  return weight(in);
}

}  // namespace lorakit::tfjs
