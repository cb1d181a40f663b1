// TF.js graph model: tfjs::read_graph_files (src/models/tfjs_graph.h) on model.json + two weight
// shards written to a scratch folder (the input split at kSeparator: model.json, s0.bin, s1.bin),
// then every node's attributes through the GraphNode helpers and every quantized weight dequantized.
#include <nlohmann/json.hpp>

#include "harness.h"
#include "models/tfjs_graph.h"

LORAKIT_FUZZ_TARGET(tfjs) {
  const auto& scratch = lorakit::fuzz::Scratch::get("tfjs");
  scratch.write_parts({"model.json", "s0.bin", "s1.bin"}, lorakit::fuzz::split_input(data, size, 3));
  lorakit::fuzz::expect_clean(
      [&] {
        const auto g = lorakit::tfjs::read_graph_files(scratch.path("model.json"));
        for (const auto& w : g.weights) {
          if (w.group >= g.groups.size()) lorakit::fuzz::fail("weight '" + w.name + "' in a group that does not exist");
          const auto& bytes = g.groups[w.group].data;
          if (w.offset > bytes.size() || w.nbytes > bytes.size() - w.offset)
            lorakit::fuzz::fail("weight '" + w.name + "' accepted with bytes outside its shards");
          if (static_cast<uint64_t>(w.numel()) * lorakit::tfjs::stored_size(w) != w.nbytes)
            lorakit::fuzz::fail("weight '" + w.name + "': numel x element size != nbytes");
          if (w.quantization) {
            std::vector<float> out(static_cast<size_t>(w.numel()));
            lorakit::tfjs::dequantize(w, bytes.data() + w.offset, out.data());
          }
        }
        for (const auto& n : g.nodes) {
          (void)lorakit::tfjs::input_node_name(n.name);
          for (const auto& in : n.inputs) (void)lorakit::tfjs::input_node_name(in);
          const auto attrs = nlohmann::json::parse(n.attr_json);
          if (!attrs.is_object()) continue;
          for (auto it = attrs.begin(); it != attrs.end(); ++it) {  // each on its own: one malformed attribute stops only itself
            const std::string key = it.key();
            const std::string& where = scratch.dir();
            lorakit::fuzz::expect_clean([&] { (void)n.attr_string(key); }, where);
            lorakit::fuzz::expect_clean([&] { (void)n.attr_int(key); }, where);
            lorakit::fuzz::expect_clean([&] { (void)n.attr_float(key); }, where);
            lorakit::fuzz::expect_clean([&] { (void)n.attr_bool(key); }, where);
            lorakit::fuzz::expect_clean([&] { (void)n.attr_ints(key); }, where);
          }
        }
      },
      scratch.dir());
  return 0;
}
