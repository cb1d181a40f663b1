#include "tuners/registry.h"

#include <functional>
#include <map>

#include "core/errors.h"
#include "tuners/full/full.h"
#include "tuners/lora/model.h"

namespace lorakit {
namespace {
using Factory = std::function<std::unique_ptr<Method>(const MethodOptions&)>;

const std::map<std::string, Factory>& table() {
  static const std::map<std::string, Factory> t = {
      {"full", [](const MethodOptions&) { return std::make_unique<FullFineTuning>(); }},
      {"lora", [](const MethodOptions& o) { return std::make_unique<LoraMethod>(o.lora); }},
  };
  return t;
}
}  // namespace

std::unique_ptr<Method> make_method(const std::string& name, const MethodOptions& opt) {
  auto it = table().find(name);
  if (it == table().end()) {
    std::string known;
    for (auto& [n, _] : table()) known += (known.empty() ? "" : ", ") + n;
    throw Error("unknown method '" + name + "' (known: " + known + ")");
  }
  return it->second(opt);
}

std::vector<std::string> method_names() {
  std::vector<std::string> n;
  for (auto& [k, _] : table()) n.push_back(k);
  return n;
}

}  // namespace lorakit
