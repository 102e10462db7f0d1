// Internal to controlplane/api: typed reads of the fields of one Kubernetes object. The reader
// keeps the path of the field being read, so every error names the object and the field without the
// parsers building path strings on the success path.
//
// Decoding follows the Go client's rules: a missing key and a JSON null are the same thing (the
// zero value); a key of the wrong JSON type fails the object; unknown keys are ignored; keys are
// case-sensitive. A key given twice counts with its last value (as nlohmann-json and Go read it).
//
// The parsers walk simdjson's DOM (json_dom.h): JsonObject and JsonArray are views into a parser's
// document, cheap to copy.
#pragma once

#include <simdjson.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/ip_address.h"
#include "controlplane/api/json_dom.h"
#include "controlplane/api/object_error.h"
#include "controlplane/api/object_meta.h"

namespace sluice::api {

using JsonObject = simdjson::dom::object;
using JsonArray = simdjson::dom::array;

template <typename E>
struct EnumName {
  std::string_view text;
  E value;
};

class FieldReader {
 public:
  // kind: "Service"; object: "namespace/name" as far as known (see ObjectIdentity).
  FieldReader(std::string_view kind, std::string object);

  // While a Scope lives, reads and errors are relative to that member or list element.
  class [[nodiscard]] Scope {
   public:
    explicit Scope(FieldReader& r) : r_(&r) {}
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;
    ~Scope() { r_->path_.pop_back(); }

   private:
    FieldReader* r_;
  };
  Scope Enter(std::string_view key);
  Scope Enter(size_t index);

  // Member lookups. nullopt when missing or null; an error when present with another JSON type.
  std::optional<JsonObject> Object(JsonObject obj, std::string_view key);
  std::optional<JsonArray> Array(JsonObject obj, std::string_view key);
  std::optional<std::string_view> String(JsonObject obj, std::string_view key);
  std::optional<bool> Bool(JsonObject obj, std::string_view key);
  // Integers only (80.0 and "80" are wrong types, as for Go's int32 fields), range-checked.
  std::optional<int64_t> Int(JsonObject obj, std::string_view key, int64_t min, int64_t max);
  StringMap Map(JsonObject obj, std::string_view key);
  std::vector<std::string> StringList(JsonObject obj, std::string_view key);

  // An enum member; "" is treated as unset (the API server's defaulting does the same).
  template <typename E>
  std::optional<E> Enum(JsonObject obj, std::string_view key, std::span<const EnumName<E>> names) {
    std::optional<std::string_view> text = String(obj, key);
    if (!text || text->empty()) return std::nullopt;
    for (const auto& n : names) {
      if (n.text == *text) return n.value;
    }
    FailUnknown(key, *text, names.size(), [&](size_t i) { return names[i].text; });
  }

  // IP and CIDR text from the API; key names the member (or "" for the current list element).
  IpAddress Ip(std::string_view text, std::string_view key);
  IpPrefix Cidr(std::string_view text, std::string_view key);

  [[noreturn]] void Fail(std::string_view key, std::string reason) const;
  [[noreturn]] void FailAt(size_t index, std::string reason) const;
  ParseError Error(std::string_view key, std::string reason) const;

  const std::string& kind() const { return kind_; }
  const std::string& object() const { return object_; }

  // For messages: a string quoted and cut at 64 bytes.
  static std::string Quote(std::string_view s);
  // For messages: `string "80"`, `number 80.5`, `an object`, never a whole subtree.
  static std::string Describe(JsonElement v);
  // The member `key` of obj, nullopt when missing or null; with a key given twice, the last one.
  static std::optional<JsonElement> Find(JsonObject obj, std::string_view key);

 private:
  struct Segment {
    std::string_view key;
    size_t index;
    bool is_index;
  };
  [[noreturn]] void WrongType(std::string_view key, std::string_view want, JsonElement got) const;
  template <typename F>
  [[noreturn]] void FailUnknown(std::string_view key, std::string_view got, size_t n,
                                F name_at) const {
    std::string want;
    for (size_t i = 0; i < n; ++i) {
      want += i == 0 ? "" : (i + 1 == n ? " or " : ", ");
      want += name_at(i);
    }
    Fail(key, "unknown value " + Quote(got) + " (want " + want + ")");
  }
  std::string Path(std::string_view key) const;

  std::string kind_;
  std::string object_;
  std::vector<Segment> path_;
};

// IP address text as the API server accepts it: canonical IPv4/IPv6, plus IPv4 with leading zeros
// ("010.000.001.002", read as decimal) that objects stored before Kubernetes 1.33 may still carry.
std::optional<IpAddress> ParseApiIp(std::string_view text);
std::optional<IpPrefix> ParseApiCidr(std::string_view text);

// "namespace/name" or "name" from metadata if they are strings, "" otherwise; for error messages
// before the object is parsed.
std::string ObjectIdentity(JsonElement object);

// The top of every object: it must be a JSON object; kind and apiVersion, when present, must be
// the expected ones (typed list items carry neither). A Status where an object was expected gives
// a ParseError carrying that Status. Returns the object.
JsonObject CheckTypeMeta(FieldReader& r, JsonElement object, std::string_view kind,
                         std::string_view api_version);

// metadata of `object`.
ObjectMeta ReadObjectMeta(FieldReader& r, JsonObject object);

// Shared by the object parsers: "protocol" of a port, TCP when unset; IP family names.
enum class Protocol : uint8_t;
Protocol ReadProtocol(FieldReader& r, JsonObject port);
IpFamily ReadIpFamily(FieldReader& r, JsonElement value, size_t index);

// `{}`, for a missing member read as its zero value.
JsonObject EmptyJsonObject();

// The nlohmann::json entry points: `value` written out and read by the one parser, `parse`, over
// simdjson's DOM. Not for hot paths (the value is serialised once more).
template <typename F>
auto ParseNlohmann(const nlohmann::json& value, F&& parse) {
  JsonParser parser;
  // Invalid UTF-8 (a value built in memory, not parsed) becomes U+FFFD rather than an exception.
  std::string text = value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return parse(ParseJsonDom(parser, text));
}

// One JSON text as nlohmann::json (tools and tests); malformed JSON is a ParseError
// ("malformed JSON: ... at byte N").
nlohmann::json ParseJsonText(std::string_view text);

}  // namespace sluice::api
