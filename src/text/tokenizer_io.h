#pragma once
// File helpers shared by the tokenizers (internal to src/text; standard library + nlohmann/json).
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace lorakit::text::detail {

// The bytes of `path`. TokenizerError "<what> '<path>' does not exist" / "is not a regular file" /
// "cannot open" / "error reading".
std::string read_file_bytes(const std::string& path, const char* what);
// read_file_bytes + JSON parse; TokenizerError "<what> '<path>' is not valid JSON: ...".
nlohmann::json parse_json_file(const std::string& path, const char* what);
// <dir>/tokenizer_config.json as a JSON object, or {} when the file is absent. TokenizerError
// "tokenizer config '<path>' is not a JSON object" (or unreadable / not JSON).
nlohmann::json read_tokenizer_config(const std::string& dir);
// cfg[key] as a boolean; nullopt when absent or null; TokenizerError
// "tokenizer config '<cfg_path>': \"<key>\" is not a boolean" for another type.
std::optional<bool> bool_setting(const nlohmann::json& cfg, const char* key, const std::string& cfg_path);
// A special-token entry of tokenizer_config.json / special_tokens_map.json: "[CLS]" or
// {"content": "[CLS]", ...}; nullopt when absent, null or of another shape.
std::optional<std::string> token_setting(const nlohmann::json& cfg, const char* key);
// Writes `data` to `path` through `path`.tmp + rename. TokenizerError naming the file on failure.
void write_file_atomically(const std::string& path, const std::string& data, const char* what);

}  // namespace lorakit::text::detail
