#include "controlplane/api/field_reader.h"

#include <charconv>
#include <cstring>

namespace sluice::api {

FieldReader::FieldReader(std::string_view kind, std::string object)
    : kind_(kind), object_(std::move(object)) {
  path_.reserve(8);
}

FieldReader::Scope FieldReader::Enter(std::string_view key) {
  path_.push_back({key, 0, false});
  return Scope(*this);
}

FieldReader::Scope FieldReader::Enter(size_t index) {
  path_.push_back({{}, index, true});
  return Scope(*this);
}

const nlohmann::json* FieldReader::Find(const nlohmann::json& obj, std::string_view key) const {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

const nlohmann::json* FieldReader::Object(const nlohmann::json& obj, std::string_view key) {
  const auto* v = Find(obj, key);
  if (v && !v->is_object()) WrongType(key, "an object", *v);
  return v;
}

const nlohmann::json* FieldReader::Array(const nlohmann::json& obj, std::string_view key) {
  const auto* v = Find(obj, key);
  if (v && !v->is_array()) WrongType(key, "a list", *v);
  return v;
}

const std::string* FieldReader::String(const nlohmann::json& obj, std::string_view key) {
  const auto* v = Find(obj, key);
  if (!v) return nullptr;
  if (!v->is_string()) WrongType(key, "a string", *v);
  return v->get_ptr<const std::string*>();
}

std::optional<bool> FieldReader::Bool(const nlohmann::json& obj, std::string_view key) {
  const auto* v = Find(obj, key);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) WrongType(key, "a boolean", *v);
  return v->get<bool>();
}

std::optional<int64_t> FieldReader::Int(const nlohmann::json& obj, std::string_view key,
                                        int64_t min, int64_t max) {
  const auto* v = Find(obj, key);
  if (!v) return std::nullopt;
  if (!v->is_number_integer()) WrongType(key, "an integer", *v);
  auto range = [&] { return " out of range " + std::to_string(min) + ".." + std::to_string(max); };
  if (v->is_number_unsigned()) {
    uint64_t u = v->get<uint64_t>();
    if (max < 0 || u > static_cast<uint64_t>(max)) Fail(key, std::to_string(u) + range());
    return static_cast<int64_t>(u);
  }
  int64_t i = v->get<int64_t>();
  if (i < min || i > max) Fail(key, std::to_string(i) + range());
  return i;
}

StringMap FieldReader::Map(const nlohmann::json& obj, std::string_view key) {
  StringMap out;
  const auto* m = Object(obj, key);
  if (!m) return out;
  auto scope = Enter(key);
  for (const auto& [k, v] : m->items()) {
    if (v.is_null()) {  // Go stores the zero value
      out.emplace_hint(out.end(), k, "");
      continue;
    }
    if (!v.is_string()) WrongType(k, "a string", v);
    out.emplace_hint(out.end(), k, v.get_ref<const std::string&>());
  }
  return out;
}

std::vector<std::string> FieldReader::StringList(const nlohmann::json& obj, std::string_view key) {
  std::vector<std::string> out;
  const auto* a = Array(obj, key);
  if (!a) return out;
  auto scope = Enter(key);
  out.reserve(a->size());
  for (size_t i = 0; i < a->size(); ++i) {
    const auto& v = (*a)[i];
    if (!v.is_string()) FailAt(i, "expected a string, got " + Describe(v));
    out.push_back(v.get_ref<const std::string&>());
  }
  return out;
}

IpAddress FieldReader::Ip(std::string_view text, std::string_view key) {
  auto ip = ParseApiIp(text);
  if (!ip) Fail(key, "invalid IP address " + Quote(text));
  return *ip;
}

IpPrefix FieldReader::Cidr(std::string_view text, std::string_view key) {
  auto p = ParseApiCidr(text);
  if (!p) Fail(key, "invalid CIDR " + Quote(text));
  return *p;
}

std::string FieldReader::Path(std::string_view key) const {
  std::string p;
  for (const auto& s : path_) {
    if (s.is_index) {
      p += "[" + std::to_string(s.index) + "]";
    } else {
      if (!p.empty()) p += '.';
      p += s.key;
    }
  }
  if (!key.empty()) {
    if (!p.empty()) p += '.';
    p += key;
  }
  return p;
}

ParseError FieldReader::Error(std::string_view key, std::string reason) const {
  return ParseError(kind_, object_, Path(key), std::move(reason));
}

void FieldReader::Fail(std::string_view key, std::string reason) const {
  throw Error(key, std::move(reason));
}

void FieldReader::FailAt(size_t index, std::string reason) const {
  throw ParseError(kind_, object_, Path({}) + "[" + std::to_string(index) + "]", std::move(reason));
}

void FieldReader::WrongType(std::string_view key, std::string_view want,
                            const nlohmann::json& got) const {
  Fail(key, "expected " + std::string(want) + ", got " + Describe(got));
}

std::string FieldReader::Quote(std::string_view s) {
  constexpr size_t kMax = 64;
  std::string out = "\"";
  out += s.substr(0, kMax);
  out += s.size() > kMax ? "...\"" : "\"";
  return out;
}

std::string FieldReader::Describe(const nlohmann::json& v) {
  switch (v.type()) {
    case nlohmann::json::value_t::string:
      return "string " + Quote(v.get_ref<const std::string&>());
    case nlohmann::json::value_t::object:
      return "an object";
    case nlohmann::json::value_t::array:
      return "a list";
    case nlohmann::json::value_t::null:
      return "null";
    case nlohmann::json::value_t::boolean:
      return v.get<bool>() ? "true" : "false";
    default:
      return "number " + v.dump();
  }
}

std::optional<IpAddress> ParseApiIp(std::string_view text) {
  if (auto ip = IpAddress::Parse(text)) return ip;
  // Legacy IPv4 with leading zeros: four dot-separated groups of 1-3 decimal digits, each <= 255.
  // Go's ParseIPSloppy reads them as decimal, and so does kube-proxy.
  uint8_t octets[4];
  size_t pos = 0;
  for (int i = 0; i < 4; ++i) {
    size_t end = text.find('.', pos);
    if ((i < 3) != (end != std::string_view::npos)) return std::nullopt;
    auto part = text.substr(pos, i < 3 ? end - pos : std::string_view::npos);
    if (part.empty() || part.size() > 3) return std::nullopt;
    unsigned v = 0;
    auto [p, ec] = std::from_chars(part.data(), part.data() + part.size(), v);
    if (ec != std::errc() || p != part.data() + part.size() || v > 255) return std::nullopt;
    octets[i] = static_cast<uint8_t>(v);
    pos = end + 1;
  }
  in_addr a{};
  std::memcpy(&a, octets, 4);
  return IpAddress::V4(a);
}

std::optional<IpPrefix> ParseApiCidr(std::string_view text) {
  if (auto p = IpPrefix::Parse(text)) return p;
  auto slash = text.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  auto ip = ParseApiIp(text.substr(0, slash));
  if (!ip || !ip->is_v4()) return std::nullopt;
  // Only the address needed the legacy reading; the length must be plain.
  auto p = IpPrefix::Parse("0.0.0.0" + std::string(text.substr(slash)));
  if (!p) return std::nullopt;
  return IpPrefix(*ip, p->length());
}

std::string ObjectIdentity(const nlohmann::json& object) {
  if (!object.is_object()) return "";
  auto meta = object.find("metadata");
  if (meta == object.end() || !meta->is_object()) return "";
  auto str = [&](const char* key) -> std::string {
    auto it = meta->find(key);
    return it != meta->end() && it->is_string() ? it->get<std::string>() : "";
  };
  std::string ns = str("namespace"), name = str("name");
  if (ns.empty()) return name;
  return ns + "/" + (name.empty() ? "(no name)" : name);
}

void CheckTypeMeta(FieldReader& r, const nlohmann::json& object, std::string_view kind,
                   std::string_view api_version) {
  if (!object.is_object())
    r.Fail("", "expected a JSON object, got " + FieldReader::Describe(object));
  const std::string* k = r.String(object, "kind");
  if (k && !k->empty() && *k != kind) {
    if (*k == "Status") {
      Status s = ParseStatus(object);
      throw ParseError(std::string(kind), "", "", "got a Status instead: " + s.Summary())
          .WithStatus(std::move(s));
    }
    r.Fail("kind", "expected " + std::string(kind) + ", got " + FieldReader::Quote(*k));
  }
  const std::string* v = r.String(object, "apiVersion");
  if (v && !v->empty() && *v != api_version) {
    r.Fail("apiVersion", "unsupported " + FieldReader::Quote(*v) + " for " + std::string(kind) +
                             " (want " + std::string(api_version) + ")");
  }
}

nlohmann::json ParseJsonText(std::string_view text) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    // e.what() is "[json.exception.parse_error.101] parse error at line 1, column 5: ..."
    std::string what = e.what();
    auto pos = what.find("] ");
    if (pos != std::string::npos) what.erase(0, pos + 2);
    throw ParseError("", "", "", "malformed JSON: " + what);
  }
}

}  // namespace sluice::api
