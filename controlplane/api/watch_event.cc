#include "controlplane/api/watch_event.h"

#include <algorithm>
#include <iterator>

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

std::string_view ApiVersionOf(Kind kind) {
  return kind == Kind::kEndpointSlice ? "discovery.k8s.io/v1" : "v1";
}

// "a Service", "an EndpointSlice", "an object".
std::string WithArticle(std::string_view kind) {
  if (kind.empty()) return "an object";
  bool vowel = std::string_view("AEIOU").find(kind[0]) != std::string_view::npos;
  return (vowel ? "an " : "a ") + std::string(kind);
}

// The object of a non-ERROR event against the watched kind ("" for any): a Status is an error that
// carries it; another kind, when the object says one, is an error; apiVersion is checked when
// given (the typed parser knows it, a watch of any resource does not).
void CheckKind(const json& object, std::string_view kind, std::string_view api_version) {
  FieldReader r(kind, ObjectIdentity(object));
  const std::string* k = r.String(object, "kind");
  if (k && *k == "Status") {
    Status s = ParseStatus(object);
    throw ParseError(
        "", "", "", "carries a Status where " + WithArticle(kind) + " was expected: " + s.Summary())
        .WithStatus(std::move(s));
  }
  if (k && !k->empty() && !kind.empty() && *k != kind) {
    throw ParseError(
        "", r.object(), "",
        "unexpected kind " + FieldReader::Quote(*k) + " (want " + std::string(kind) + ")");
  }
  if (!api_version.empty()) CheckTypeMeta(r, object, kind, api_version);
}

Bookmark ReadBookmark(const json& object) {
  FieldReader r("", "");
  auto scope = r.Enter("object");
  const json* meta = r.Object(object, "metadata");
  auto meta_scope = r.Enter("metadata");
  const std::string* rv = meta ? r.String(*meta, "resourceVersion") : nullptr;
  if (!rv || rv->empty()) r.Fail("resourceVersion", "required in a BOOKMARK");
  Bookmark b;
  b.resource_version = *rv;
  if (const json* annotations = r.Object(*meta, "annotations")) {
    auto it = annotations->find(kInitialEventsEndAnnotation);
    b.initial_events_end = it != annotations->end() && it->is_string() && *it == "true";
  }
  return b;
}

// The envelope, the same for both parsers; parse_object turns the object of ADDED, MODIFIED and
// DELETED into a T.
template <typename T, typename F>
BasicWatchEvent<T> ParseEvent(const json& event, std::string_view kind,
                              std::string_view api_version, F&& parse_object) {
  FieldReader r("", "");
  WatchEventType type = WatchEventType::kAdded;
  const json* object = nullptr;
  try {
    if (!event.is_object()) {
      r.Fail("", "expected a JSON object, got " + FieldReader::Describe(event));
    }
    const std::string* t = r.String(event, "type");
    if (!t || t->empty()) r.Fail("type", "required");
    const auto* name = std::find_if(std::begin(kEventTypes), std::end(kEventTypes),
                                    [&](const auto& n) { return n.text == *t; });
    if (name == std::end(kEventTypes)) {
      r.Fail("", "unknown event type " + FieldReader::Quote(*t) +
                     " (want ADDED, MODIFIED, DELETED, BOOKMARK or ERROR)");
    }
    type = name->value;
    object = r.Object(event, "object");
    if (!object) r.Fail("object", "required");
  } catch (const ParseError& e) {
    throw e.WithContext("watch event");
  }
  BasicWatchEvent<T> ev;
  ev.type = type;
  try {
    if (type == WatchEventType::kError) {
      ev.payload = ParseStatus(*object);
      return ev;
    }
    CheckKind(*object, kind, api_version);
    if (type == WatchEventType::kBookmark) {
      ev.payload = ReadBookmark(*object);
      return ev;
    }
    ev.payload = parse_object(*object);
  } catch (const ParseError& e) {
    throw e.WithContext("watch event " + std::string(ToString(type)));
  }
  return ev;
}

json ParseEventText(std::string_view text) {
  try {
    return ParseJsonText(text);
  } catch (const ParseError& e) {
    throw e.WithContext("watch event");
  }
}

}  // namespace

std::string_view ToString(WatchEventType t) {
  for (const auto& n : kEventTypes) {
    if (n.value == t) return n.text;
  }
  return "?";
}

WatchEvent ParseWatchEvent(const json& event, std::optional<Kind> expected) {
  return ParseEvent<Object>(event, expected ? ToString(*expected) : "",
                            expected ? ApiVersionOf(*expected) : "", [&](const json& object) {
                              return expected ? ParseAs(*expected, object) : ParseObject(object);
                            });
}

WatchEvent ParseWatchEventText(std::string_view text, std::optional<Kind> expected) {
  return ParseWatchEvent(ParseEventText(text), expected);
}

RawWatchEvent ParseRawWatchEvent(json event, std::string_view expected_kind) {
  // The object is moved out of `event`, not copied: parse_object is handed the same node.
  return ParseEvent<json>(event, expected_kind, "",
                          [&event](const json&) { return std::move(*event.find("object")); });
}

RawWatchEvent ParseRawWatchEventText(std::string_view text, std::string_view expected_kind) {
  return ParseRawWatchEvent(ParseEventText(text), expected_kind);
}

}  // namespace sluice::api
