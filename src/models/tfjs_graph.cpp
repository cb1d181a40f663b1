#include "models/tfjs_graph.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "core/errors.h"

namespace lorakit::tfjs {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// The most bytes one weight may take (2^40: far beyond any TF.js model, small enough that sums of
// sizes cannot overflow).
constexpr uint64_t kMaxWeightBytes = uint64_t{1} << 40;

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

// GraphDef JSON writes int64 values as strings. Throws std::invalid_argument for anything that is not
// an integer in int64's range (callers turn it into an Error naming the file).
int64_t to_int(const json& j) {
  if (j.is_string()) {
    const std::string s = j.get<std::string>();
    size_t used = 0;
    const int64_t v = std::stoll(s, &used);  // std::invalid_argument / std::out_of_range
    if (used != s.size()) throw std::invalid_argument("'" + s + "' is not an integer");
    return v;
  }
  if (j.is_number_unsigned()) {
    if (j.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      throw std::invalid_argument("integer out of range");
    return static_cast<int64_t>(j.get<uint64_t>());
  }
  if (j.is_number_integer()) return j.get<int64_t>();
  if (j.is_number()) {
    const double d = j.get<double>();
    // 2^63 is the first double past int64's range; NaN fails both comparisons.
    if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0)) throw std::invalid_argument("integer out of range");
    return static_cast<int64_t>(d);
  }
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

void dequantize(const WeightSpec& w, const char* src, float* out) {
  const Quantization& q = *w.quantization;
  const int64_t n = w.numel();
  for (int64_t i = 0; i < n; ++i) {
    if (q.dtype == "uint8") {
      out[i] = static_cast<float>(static_cast<uint8_t>(src[i]) * *q.scale + *q.min);
    } else {
      uint16_t u;
      std::memcpy(&u, src + 2 * i, 2);
      out[i] = q.dtype == "float16" ? half_to_float(u) : static_cast<float>(u * *q.scale + *q.min);
    }
  }
}

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

namespace {
// Runs one attribute lookup; anything malformed becomes an Error naming the file, node and attribute.
template <class F>
auto attr_lookup(const GraphNode& n, const std::string& key, F&& f) {
  try {
    const json a = json::parse(n.attr_json);
    if (!a.is_object()) return f(json::object().end(), json::object().end(), a);
    return f(a.find(key), a.end(), a);
  } catch (const std::exception& e) {  // std::invalid_argument / out_of_range from to_int, json's errors
    throw Error("TF.js model '" + n.source + "': node '" + n.name + "': attribute '" + key + "' is malformed (" +
                e.what() + ")");
  }
}
}  // namespace

std::optional<std::string> GraphNode::attr_string(const std::string& key) const {
  return attr_lookup(*this, key, [](json::const_iterator it, json::const_iterator end, const json&) -> std::optional<std::string> {
    if (it == end || !it->is_object() || !it->contains("s")) return std::nullopt;
    const json& s = (*it)["s"];
    if (s.is_array()) {
      std::string out;
      for (const auto& c : s) {
        if (!c.is_number_integer()) throw std::invalid_argument("a byte of \"s\" is not an integer");
        out.push_back(static_cast<char>(to_int(c) & 0xFF));
      }
      return out;
    }
    if (s.is_string()) return base64_decode(s.get<std::string>());
    return std::nullopt;
  });
}

std::optional<int64_t> GraphNode::attr_int(const std::string& key) const {
  return attr_lookup(*this, key, [](json::const_iterator it, json::const_iterator end, const json&) -> std::optional<int64_t> {
    if (it == end || !it->is_object()) return std::nullopt;
    if (it->contains("i")) return to_int((*it)["i"]);
    if (it->contains("type")) return to_int((*it)["type"]);
    return std::nullopt;
  });
}

std::optional<double> GraphNode::attr_float(const std::string& key) const {
  return attr_lookup(*this, key, [](json::const_iterator it, json::const_iterator end, const json&) -> std::optional<double> {
    if (it == end || !it->is_object() || !it->contains("f")) return std::nullopt;
    const json& f = (*it)["f"];
    if (f.is_number()) return f.get<double>();
    if (f.is_string()) return std::stod(f.get<std::string>());
    return std::nullopt;
  });
}

std::optional<bool> GraphNode::attr_bool(const std::string& key) const {
  return attr_lookup(*this, key, [](json::const_iterator it, json::const_iterator end, const json&) -> std::optional<bool> {
    if (it == end || !it->is_object() || !it->contains("b")) return std::nullopt;
    const json& b = (*it)["b"];
    if (b.is_boolean()) return b.get<bool>();
    return std::nullopt;
  });
}

std::vector<int64_t> GraphNode::attr_ints(const std::string& key) const {
  return attr_lookup(*this, key, [](json::const_iterator it, json::const_iterator end, const json&) {
    std::vector<int64_t> out;
    if (it == end || !it->is_object() || !it->contains("list")) return out;
    const json& l = (*it)["list"];
    if (l.is_object() && l.contains("i") && l["i"].is_array())
      for (const auto& v : l["i"]) out.push_back(to_int(v));
    return out;
  });
}

// ---- loading ----

GraphFiles read_graph_files(const std::string& path) {
  GraphFiles m;
  std::error_code ec;
  fs::path p(path);
  if (fs::is_directory(p, ec)) p /= "model.json";
  m.model_json = p.string();
  m.dir = p.parent_path().string();
  const std::string& mj = m.model_json;
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
    WeightGroup group;
    for (const auto& sp : grp["paths"]) {
      if (!sp.is_string()) throw Error(where + ": a path is not a string");
      const std::string rel = sp.get<std::string>();
      // Shards live beside model.json (or below it): no absolute paths, no "..", no NUL.
      const fs::path rp(rel);
      bool outside = rel.empty() || rp.has_root_path() || rel.find('\0') != std::string::npos;
      for (const auto& part : rp)
        if (part == "..") outside = true;
      if (outside) throw Error(where + ": shard path '" + rel + "' must be a relative path inside model.json's folder");
      group.paths.push_back((fs::path(m.dir) / rel).string());
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
      if (m.by_name.count(w.name)) throw Error(where + ": weight '" + w.name + "' listed twice");
      uint64_t nbytes = es;  // checked product: the shape's elements times the stored size
      for (int64_t d : w.shape) {
        const uint64_t ud = static_cast<uint64_t>(d);
        if (ud != 0 && nbytes > kMaxWeightBytes / ud)
          throw Error(where + ": weight '" + w.name + "' has a shape too large to be stored (more than 2^40 bytes)");
        nbytes *= ud;
      }
      w.group = g;
      w.offset = offset;
      w.nbytes = nbytes;
      offset += w.nbytes;
      if (offset > kMaxWeightBytes) throw Error(where + ": its weights add up to more than 2^40 bytes");
      m.by_name[w.name] = m.weights.size();
      m.weights.push_back(std::move(w));
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
    m.groups.push_back(std::move(group));
  }

  // Topology.
  auto topo = doc.find("modelTopology");
  if (topo != doc.end() && topo->is_object() && topo->contains("node") && (*topo)["node"].is_array()) {
    for (const auto& nj : (*topo)["node"]) {
      GraphNode n;
      if (!nj.is_object() || !nj.contains("name") || !nj["name"].is_string())
        throw Error("TF.js model '" + mj + "': a modelTopology node has no name");
      n.name = nj["name"].get<std::string>();
      if (nj.contains("op") && !nj["op"].is_string())
        throw Error("TF.js model '" + mj + "': node '" + n.name + "': \"op\" is not a string");
      n.op = nj.value("op", std::string());
      if (nj.contains("input") && nj["input"].is_array())
        for (const auto& in : nj["input"])
          if (in.is_string()) n.inputs.push_back(in.get<std::string>());
      n.attr_json = nj.contains("attr") ? nj["attr"].dump() : "{}";
      n.source = mj;
      m.node_index[n.name] = m.nodes.size();
      m.nodes.push_back(std::move(n));
    }
  }
  return m;
}

}  // namespace lorakit::tfjs
