#include "controlplane/api/watch_event.h"

#include "controlplane/api/field_reader.h"

namespace sluice::api {
namespace {

using nlohmann::json;

constexpr EnumName<WatchEventType> kEventTypes[] = {
    {"ADDED", WatchEventType::kAdded},     {"MODIFIED", WatchEventType::kModified},
    {"DELETED", WatchEventType::kDeleted}, {"BOOKMARK", WatchEventType::kBookmark},
    {"ERROR", WatchEventType::kError},
};

Object ParseAs(Kind kind, const json& object) {
  switch (kind) {
    case Kind::kService:
      return ParseService(object);
    case Kind::kEndpointSlice:
      return ParseEndpointSlice(object);
    default:
      return ParseNode(object);
  }
}

WatchEvent ParseEvent(const json& event, std::optional<Kind> expected) {
  FieldReader r("", "");
  std::optional<WatchEventType> type;
  const json* object = nullptr;
  try {
    if (!event.is_object()) {
      r.Fail("", "expected a JSON object, got " + FieldReader::Describe(event));
    }
    type = r.Enum<WatchEventType>(event, "type", kEventTypes);
    if (!type) r.Fail("type", "required");
    object = r.Object(event, "object");
    if (!object) r.Fail("object", "required");
  } catch (const ParseError& e) {
    throw e.WithContext("watch event");
  }
  WatchEvent ev;
  ev.type = *type;
  try {
    if (*type == WatchEventType::kError) {
      ev.payload = ParseStatus(*object);
      return ev;
    }
    if (expected) {
      // Checks kind and apiVersion, and turns a Status into an error carrying it.
      FieldReader obj_reader(ToString(*expected), ObjectIdentity(*object));
      CheckTypeMeta(obj_reader, *object, ToString(*expected),
                    *expected == Kind::kEndpointSlice ? "discovery.k8s.io/v1" : "v1");
    }
    if (*type == WatchEventType::kBookmark) {
      auto scope = r.Enter("object");
      const json* meta = r.Object(*object, "metadata");
      auto meta_scope = r.Enter("metadata");
      const std::string* rv = meta ? r.String(*meta, "resourceVersion") : nullptr;
      if (!rv || rv->empty()) r.Fail("resourceVersion", "required in a BOOKMARK");
      Bookmark b;
      b.resource_version = *rv;
      if (const json* annotations = r.Object(*meta, "annotations")) {
        auto it = annotations->find(kInitialEventsEndAnnotation);
        b.initial_events_end = it != annotations->end() && it->is_string() && *it == "true";
      }
      ev.payload = std::move(b);
      return ev;
    }
    ev.payload = expected ? ParseAs(*expected, *object) : ParseObject(*object);
  } catch (const ParseError& e) {
    throw e.WithContext("watch event " + std::string(ToString(*type)));
  }
  return ev;
}

}  // namespace

std::string_view ToString(WatchEventType t) {
  for (const auto& n : kEventTypes) {
    if (n.value == t) return n.text;
  }
  return "?";
}

WatchEvent ParseWatchEvent(const json& event, std::optional<Kind> expected) {
  return ParseEvent(event, expected);
}

WatchEvent ParseWatchEventText(std::string_view text, std::optional<Kind> expected) {
  json event;
  try {
    event = ParseJsonText(text);
  } catch (const ParseError& e) {
    throw e.WithContext("watch event");
  }
  return ParseEvent(event, expected);
}

}  // namespace sluice::api
