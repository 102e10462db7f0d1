// metav1.ObjectMeta: the identity and bookkeeping every API object carries.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "controlplane/api/json_dom.h"

namespace sluice::api {

// metav1.Time: RFC 3339 on the wire, whole seconds.
using Timestamp = std::chrono::sys_seconds;
using StringMap = std::map<std::string, std::string, std::less<>>;

struct ObjectMeta {
  std::string namespace_name;  // "" for cluster-scoped objects (Node)
  std::string name;
  std::string uid;
  // Opaque: pass back to the server unchanged, compare only for equality. Not always numeric and
  // may exceed int64 ("11042405498087606203" happens).
  std::string resource_version;
  int64_t generation = 0;
  StringMap labels;
  StringMap annotations;
  std::optional<Timestamp> creation_timestamp;
  // Set once deletion has started (finalizers still pending): the object is going away.
  std::optional<Timestamp> deletion_timestamp;

  // The informer cache key: "namespace/name", or "name" for cluster-scoped objects.
  std::string Key() const;
  std::optional<std::string_view> Label(std::string_view key) const;
  std::optional<std::string_view> Annotation(std::string_view key) const;
  bool being_deleted() const { return deletion_timestamp.has_value(); }

  bool operator==(const ObjectMeta&) const = default;
};

// The same identity read from an object still in JSON (a reflector keeps objects as sent until
// its codec parses them): "namespace/name" or "name", "" when metadata.name is not a string.
std::string ObjectKey(JsonElement object);
// metadata.resourceVersion, "" when it is not a string.
std::string ObjectResourceVersion(JsonElement object);
// The same for a nlohmann::json value (tools, tests, the manifest source).
std::string ObjectKey(const nlohmann::json& object);
std::string ObjectResourceVersion(const nlohmann::json& object);

// RFC 3339 ("2024-05-01T10:30:00Z", "2024-05-01T12:30:00.5+02:00"); fractions are dropped.
std::optional<Timestamp> ParseTimestamp(std::string_view text);

}  // namespace sluice::api
