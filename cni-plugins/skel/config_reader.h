// Typed reads of plugin configuration keys. A key of the wrong type is a decode failure (code 6)
// and a value out of range is an invalid config (code 7); both messages name the key.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "common/ip_address.h"

namespace sluice::cni {

std::optional<bool> OptBool(const nlohmann::json& obj, std::string_view key);
std::optional<int64_t> OptInt(const nlohmann::json& obj, std::string_view key);
std::optional<std::string> OptString(const nlohmann::json& obj, std::string_view key);
// Missing or null -> nullptr; present but not an object -> error.
const nlohmann::json* OptObject(const nlohmann::json& obj, std::string_view key);
const nlohmann::json* OptArray(const nlohmann::json& obj, std::string_view key);

inline bool GetBool(const nlohmann::json& obj, std::string_view key, bool def) {
  return OptBool(obj, key).value_or(def);
}
inline std::string GetString(const nlohmann::json& obj, std::string_view key,
                             std::string def = "") {
  return OptString(obj, key).value_or(std::move(def));
}

// Parse helpers that name the key in their error.
IpAddress ParseIp(const std::string& text, std::string_view key);
IpPrefix ParsePrefix(const std::string& text, std::string_view key);

}  // namespace sluice::cni
