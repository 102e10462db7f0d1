#include "controlplane/api/field_reader.h"

#include <charconv>
#include <cstring>
#include <map>

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

std::optional<JsonElement> FieldReader::Find(JsonObject obj, std::string_view key) {
  // Every member is looked at: with a key given twice the last counts, as nlohmann-json and Go
  // read it (simdjson's at_key would stop at the first).
  std::optional<JsonElement> found;
  for (auto field : obj) {
    if (field.key == key) found = field.value;
  }
  if (found && found->is_null()) return std::nullopt;
  return found;
}

std::optional<JsonObject> FieldReader::Object(JsonObject obj, std::string_view key) {
  auto v = Find(obj, key);
  if (!v) return std::nullopt;
  if (!v->is_object()) WrongType(key, "an object", *v);
  return v->get_object().value_unsafe();
}

std::optional<JsonArray> FieldReader::Array(JsonObject obj, std::string_view key) {
  auto v = Find(obj, key);
  if (!v) return std::nullopt;
  if (!v->is_array()) WrongType(key, "a list", *v);
  return v->get_array().value_unsafe();
}

std::optional<std::string_view> FieldReader::String(JsonObject obj, std::string_view key) {
  auto v = Find(obj, key);
  if (!v) return std::nullopt;
  if (!v->is_string()) WrongType(key, "a string", *v);
  return v->get_string().value_unsafe();
}

std::optional<bool> FieldReader::Bool(JsonObject obj, std::string_view key) {
  auto v = Find(obj, key);
  if (!v) return std::nullopt;
  if (!v->is_bool()) WrongType(key, "a boolean", *v);
  return v->get_bool().value_unsafe();
}

std::optional<int64_t> FieldReader::Int(JsonObject obj, std::string_view key, int64_t min,
                                        int64_t max) {
  auto v = Find(obj, key);
  if (!v) return std::nullopt;
  auto range = [&] { return " out of range " + std::to_string(min) + ".." + std::to_string(max); };
  switch (v->type()) {
    case simdjson::dom::element_type::UINT64: {  // only integers above INT64_MAX
      uint64_t u = v->get_uint64().value_unsafe();
      if (max < 0 || u > static_cast<uint64_t>(max)) Fail(key, std::to_string(u) + range());
      return static_cast<int64_t>(u);
    }
    case simdjson::dom::element_type::INT64: {
      int64_t i = v->get_int64().value_unsafe();
      if (i < min || i > max) Fail(key, std::to_string(i) + range());
      return i;
    }
    default:
      WrongType(key, "an integer", *v);
  }
}

StringMap FieldReader::Map(JsonObject obj, std::string_view key) {
  StringMap out;
  auto m = Object(obj, key);
  if (!m) return out;
  auto scope = Enter(key);
  bool all_strings = true;
  for (auto field : *m) {
    if (field.value.is_string()) {
      out.insert_or_assign(std::string(field.key),
                           std::string(field.value.get_string().value_unsafe()));
    } else if (field.value.is_null()) {  // Go stores the zero value
      out.insert_or_assign(std::string(field.key), std::string());
    } else {
      all_strings = false;
    }
  }
  if (all_strings) return out;
  // A value of the wrong type, unless a later value of the same key replaces it; the first such
  // key in key order is the one reported (as when the map was read sorted).
  std::map<std::string_view, JsonElement> last;
  for (auto field : *m) last.insert_or_assign(field.key, field.value);
  for (const auto& [k, v] : last) {
    if (!v.is_string() && !v.is_null()) WrongType(k, "a string", v);
  }
  return out;
}

std::vector<std::string> FieldReader::StringList(JsonObject obj, std::string_view key) {
  std::vector<std::string> out;
  auto a = Array(obj, key);
  if (!a) return out;
  auto scope = Enter(key);
  out.reserve(a->size());
  size_t i = 0;
  for (JsonElement v : *a) {
    if (!v.is_string()) FailAt(i, "expected a string, got " + Describe(v));
    out.emplace_back(v.get_string().value_unsafe());
    ++i;
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

void FieldReader::WrongType(std::string_view key, std::string_view want, JsonElement got) const {
  Fail(key, "expected " + std::string(want) + ", got " + Describe(got));
}

std::string FieldReader::Quote(std::string_view s) {
  constexpr size_t kMax = 64;
  std::string out = "\"";
  out += s.substr(0, kMax);
  out += s.size() > kMax ? "...\"" : "\"";
  return out;
}

std::string FieldReader::Describe(JsonElement v) {
  using simdjson::dom::element_type;
  switch (v.type()) {
    case element_type::STRING:
      return "string " + Quote(v.get_string().value_unsafe());
    case element_type::OBJECT:
      return "an object";
    case element_type::ARRAY:
      return "a list";
    case element_type::NULL_VALUE:
      return "null";
    case element_type::BOOL:
      return v.get_bool().value_unsafe() ? "true" : "false";
    case element_type::INT64:
      return "number " + std::to_string(v.get_int64().value_unsafe());
    case element_type::UINT64:
      return "number " + std::to_string(v.get_uint64().value_unsafe());
    default:
      // nlohmann-json's shortest round-trip form ("80.0", "1e+100"), as messages always said.
      return "number " + nlohmann::json(v.get_double().value_unsafe()).dump();
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

std::string ObjectIdentity(JsonElement object) {
  if (!object.is_object()) return "";
  auto meta = FieldReader::Find(object.get_object().value_unsafe(), "metadata");
  if (!meta || !meta->is_object()) return "";
  auto str = [&](std::string_view key) -> std::string {
    auto v = FieldReader::Find(meta->get_object().value_unsafe(), key);
    return v && v->is_string() ? std::string(v->get_string().value_unsafe()) : "";
  };
  std::string ns = str("namespace"), name = str("name");
  if (ns.empty()) return name;
  return ns + "/" + (name.empty() ? "(no name)" : name);
}

JsonObject CheckTypeMeta(FieldReader& r, JsonElement object, std::string_view kind,
                         std::string_view api_version) {
  if (!object.is_object())
    r.Fail("", "expected a JSON object, got " + FieldReader::Describe(object));
  JsonObject obj = object.get_object().value_unsafe();
  auto k = r.String(obj, "kind");
  if (k && !k->empty() && *k != kind) {
    if (*k == "Status") {
      Status s = ParseStatus(object);
      throw ParseError(std::string(kind), "", "", "got a Status instead: " + s.Summary())
          .WithStatus(std::move(s));
    }
    r.Fail("kind", "expected " + std::string(kind) + ", got " + FieldReader::Quote(*k));
  }
  auto v = r.String(obj, "apiVersion");
  if (v && !v->empty() && *v != api_version) {
    r.Fail("apiVersion", "unsupported " + FieldReader::Quote(*v) + " for " + std::string(kind) +
                             " (want " + std::string(api_version) + ")");
  }
  return obj;
}

JsonObject EmptyJsonObject() {
  // Parsed once; a document is only read after that, from any thread.
  static const auto* empty = [] {
    auto* parser = new JsonParser();
    return new JsonObject(parser->parse(std::string_view("{}")).get_object().value_unsafe());
  }();
  return *empty;
}

namespace {

std::string NlohmannParseError(const nlohmann::json::exception& e) {
  // e.what() is "[json.exception.parse_error.101] parse error at line 1, column 5: ..."
  std::string what = e.what();
  auto pos = what.find("] ");
  if (pos != std::string::npos) what.erase(0, pos + 2);
  return "malformed JSON: " + what;
}

}  // namespace

JsonElement ParseJsonDom(JsonParser& parser, std::string_view text) {
  JsonElement e;
  if (parser.parse(text.data(), text.size(), /*realloc_if_needed=*/true).get(e) ==
      simdjson::SUCCESS) {
    return e;
  }
  // Rare: say what was wrong as the project always has (nlohmann-json's message), or read what
  // simdjson refuses and nlohmann-json (like Go) accepts: an integer beyond 64 bits is a float.
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& err) {  // parse_error; out_of_range for 1e400
    throw ParseError("", "", "", NlohmannParseError(err));
  }
  std::string again = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  auto error = parser.parse(again).get(e);
  if (error)
    throw ParseError("", "", "", std::string("malformed JSON: ") + simdjson::error_message(error));
  return e;
}

std::optional<JsonElement> FindMember(JsonElement object, std::string_view key) {
  if (!object.is_object()) return std::nullopt;
  return FieldReader::Find(object.get_object().value_unsafe(), key);
}

nlohmann::json ToNlohmann(JsonElement value) {
  return nlohmann::json::parse(simdjson::to_string(value));
}

nlohmann::json ParseJsonText(std::string_view text) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw ParseError("", "", "", NlohmannParseError(e));
  }
}

}  // namespace sluice::api
