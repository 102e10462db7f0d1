#include "cni-plugins/skel/config_reader.h"

#include "cni-plugins/skel/cni_error.h"

namespace sluice::cni {
namespace {

const nlohmann::json* Find(const nlohmann::json& obj, std::string_view key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

[[noreturn]] void WrongType(std::string_view key, std::string_view want, const nlohmann::json& v) {
  throw Error(kDecodeFailure, "config key \"" + std::string(key) + "\": expected " +
                                  std::string(want) + ", got " + v.type_name() + " " + v.dump());
}

}  // namespace

std::optional<bool> OptBool(const nlohmann::json& obj, std::string_view key) {
  const auto* v = Find(obj, key);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) WrongType(key, "a boolean", *v);
  return v->get<bool>();
}

std::optional<int64_t> OptInt(const nlohmann::json& obj, std::string_view key) {
  const auto* v = Find(obj, key);
  if (!v) return std::nullopt;
  if (!v->is_number_integer()) WrongType(key, "an integer", *v);
  return v->get<int64_t>();
}

std::optional<std::string> OptString(const nlohmann::json& obj, std::string_view key) {
  const auto* v = Find(obj, key);
  if (!v) return std::nullopt;
  if (!v->is_string()) WrongType(key, "a string", *v);
  return v->get<std::string>();
}

const nlohmann::json* OptObject(const nlohmann::json& obj, std::string_view key) {
  const auto* v = Find(obj, key);
  if (v && !v->is_object()) WrongType(key, "an object", *v);
  return v;
}

const nlohmann::json* OptArray(const nlohmann::json& obj, std::string_view key) {
  const auto* v = Find(obj, key);
  if (v && !v->is_array()) WrongType(key, "a list", *v);
  return v;
}

IpAddress ParseIp(const std::string& text, std::string_view key) {
  auto ip = IpAddress::Parse(text);
  if (!ip) {
    throw Error(kInvalidConfig,
                "config key \"" + std::string(key) + "\": invalid IP address \"" + text + "\"");
  }
  return *ip;
}

IpPrefix ParsePrefix(const std::string& text, std::string_view key) {
  auto p = IpPrefix::Parse(text);
  if (!p) {
    throw Error(kInvalidConfig,
                "config key \"" + std::string(key) + "\": invalid CIDR \"" + text + "\"");
  }
  return *p;
}

}  // namespace sluice::cni
