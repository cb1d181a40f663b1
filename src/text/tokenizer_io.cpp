#include "text/tokenizer_io.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "text/tokenizer.h"

namespace lorakit::text::detail {
namespace fs = std::filesystem;

std::string read_file_bytes(const std::string& path, const char* what) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw TokenizerError(std::string(what) + " '" + path + "' does not exist");
  if (!fs::is_regular_file(path, ec)) throw TokenizerError(std::string(what) + " '" + path + "' is not a regular file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw TokenizerError(std::string("cannot open ") + what + " '" + path + "'");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw TokenizerError(std::string("error reading ") + what + " '" + path + "'");
  return ss.str();
}

nlohmann::json parse_json_file(const std::string& path, const char* what) {
  const std::string text = read_file_bytes(path, what);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw TokenizerError(std::string(what) + " '" + path + "' is not valid JSON: " + e.what());
  }
}

nlohmann::json read_tokenizer_config(const std::string& dir) {
  const std::string path = (fs::path(dir) / "tokenizer_config.json").string();
  std::error_code ec;
  if (!fs::exists(path, ec)) return nlohmann::json::object();
  nlohmann::json cfg = parse_json_file(path, "tokenizer config");
  if (!cfg.is_object()) throw TokenizerError("tokenizer config '" + path + "' is not a JSON object");
  return cfg;
}

std::optional<bool> bool_setting(const nlohmann::json& cfg, const char* key, const std::string& cfg_path) {
  auto it = cfg.find(key);
  if (it == cfg.end() || it->is_null()) return std::nullopt;
  if (!it->is_boolean())
    throw TokenizerError("tokenizer config '" + cfg_path + "': \"" + key + "\" is not a boolean");
  return it->get<bool>();
}

std::optional<std::string> token_setting(const nlohmann::json& cfg, const char* key) {
  auto it = cfg.find(key);
  if (it == cfg.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object()) {
    auto c = it->find("content");
    if (c != it->end() && c->is_string()) return c->get<std::string>();
  }
  return std::nullopt;
}

void write_file_atomically(const std::string& path, const std::string& data, const char* what) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw TokenizerError(std::string("cannot write ") + what + " '" + tmp + "'");
    out.write(data.data(), static_cast<std::streamsize>(data.size()));
    out.flush();
    if (!out) throw TokenizerError(std::string("error writing ") + what + " '" + tmp + "'");
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    fs::remove(tmp, ec);
    throw TokenizerError(std::string("cannot move ") + what + " into place at '" + path + "'");
  }
}

}  // namespace lorakit::text::detail
