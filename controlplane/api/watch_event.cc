#include "controlplane/api/watch_event.h"

#include <algorithm>
#include <iterator>

#include "controlplane/api/field_reader.h"

namespace sluice::api {
namespace {

constexpr EnumName<WatchEventType> kEventTypes[] = {
    {"ADDED", WatchEventType::kAdded},     {"MODIFIED", WatchEventType::kModified},
    {"DELETED", WatchEventType::kDeleted}, {"BOOKMARK", WatchEventType::kBookmark},
    {"ERROR", WatchEventType::kError},
};

Object ParseAs(Kind kind, JsonElement object) {
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
void CheckKind(JsonElement object, std::string_view kind, std::string_view api_version) {
  FieldReader r(kind, ObjectIdentity(object));
  auto k = r.String(object.get_object().value_unsafe(), "kind");
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

Bookmark ReadBookmark(JsonObject object) {
  FieldReader r("", "");
  auto scope = r.Enter("object");
  auto meta = r.Object(object, "metadata");
  auto meta_scope = r.Enter("metadata");
  auto rv = meta ? r.String(*meta, "resourceVersion") : std::nullopt;
  if (!rv || rv->empty()) r.Fail("resourceVersion", "required in a BOOKMARK");
  Bookmark b;
  b.resource_version = *rv;
  if (auto annotations = r.Object(*meta, "annotations")) {
    auto end = FieldReader::Find(*annotations, kInitialEventsEndAnnotation);
    b.initial_events_end = end && end->is_string() && end->get_string().value_unsafe() == "true";
  }
  return b;
}

// The envelope, the same for both parsers; parse_object turns the object of ADDED, MODIFIED and
// DELETED into a T.
template <typename T, typename F>
BasicWatchEvent<T> ParseEvent(JsonElement json, std::string_view kind, std::string_view api_version,
                              F&& parse_object) {
  FieldReader r("", "");
  WatchEventType type = WatchEventType::kAdded;
  JsonElement object;
  try {
    if (!json.is_object()) {
      r.Fail("", "expected a JSON object, got " + FieldReader::Describe(json));
    }
    JsonObject event = json.get_object().value_unsafe();
    auto t = r.String(event, "type");
    if (!t || t->empty()) r.Fail("type", "required");
    const auto* name = std::find_if(std::begin(kEventTypes), std::end(kEventTypes),
                                    [&](const auto& n) { return n.text == *t; });
    if (name == std::end(kEventTypes)) {
      r.Fail("", "unknown event type " + FieldReader::Quote(*t) +
                     " (want ADDED, MODIFIED, DELETED, BOOKMARK or ERROR)");
    }
    type = name->value;
    if (!r.Object(event, "object")) r.Fail("object", "required");
    object = *FieldReader::Find(event, "object");
  } catch (const ParseError& e) {
    throw e.WithContext("watch event");
  }
  BasicWatchEvent<T> ev;
  ev.type = type;
  try {
    if (type == WatchEventType::kError) {
      ev.payload = ParseStatus(object);
      return ev;
    }
    CheckKind(object, kind, api_version);
    if (type == WatchEventType::kBookmark) {
      ev.payload = ReadBookmark(object.get_object().value_unsafe());
      return ev;
    }
    ev.payload = parse_object(object);
  } catch (const ParseError& e) {
    throw e.WithContext("watch event " + std::string(ToString(type)));
  }
  return ev;
}

JsonElement ParseEventText(JsonParser& parser, std::string_view text) {
  try {
    return ParseJsonDom(parser, text);
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

WatchEvent ParseWatchEvent(JsonElement event, std::optional<Kind> expected) {
  return ParseEvent<Object>(event, expected ? ToString(*expected) : "",
                            expected ? ApiVersionOf(*expected) : "", [&](JsonElement object) {
                              return expected ? ParseAs(*expected, object) : ParseObject(object);
                            });
}

WatchEvent ParseWatchEvent(const nlohmann::json& event, std::optional<Kind> expected) {
  return ParseNlohmann(event, [&](JsonElement e) { return ParseWatchEvent(e, expected); });
}

WatchEvent ParseWatchEventText(std::string_view text, std::optional<Kind> expected) {
  JsonParser parser;
  return ParseWatchEvent(ParseEventText(parser, text), expected);
}

RawWatchEvent ParseRawWatchEvent(JsonElement event, std::string_view expected_kind) {
  return ParseEvent<JsonElement>(event, expected_kind, "",
                                 [](JsonElement object) { return object; });
}

RawWatchEvent ParseRawWatchEventText(JsonParser& parser, std::string_view text,
                                     std::string_view expected_kind) {
  return ParseRawWatchEvent(ParseEventText(parser, text), expected_kind);
}

}  // namespace sluice::api
