// One event of a watch stream: {"type": "ADDED", "object": {...}}.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "controlplane/api/json_dom.h"
#include "controlplane/api/object.h"
#include "controlplane/api/status.h"

namespace sluice::api {

enum class WatchEventType : uint8_t { kAdded, kModified, kDeleted, kBookmark, kError };
std::string_view ToString(WatchEventType t);  // "ADDED", ...

// The object of a BOOKMARK: an empty object of the watched kind, of which only the metadata counts.
struct Bookmark {
  std::string resource_version;  // resume the watch from here
  // metadata.annotations["k8s.io/initial-events-end"] == "true": the initial ADDED events of a
  // watch-list (sendInitialEvents=true) are complete; the store can be replaced now.
  bool initial_events_end = false;

  bool operator==(const Bookmark&) const = default;
};

inline constexpr std::string_view kInitialEventsEndAnnotation = "k8s.io/initial-events-end";

// T is the object of ADDED, MODIFIED and DELETED: a typed Object (WatchEvent), or the JSON as sent
// (RawWatchEvent) for a client that hands it to a codec of its own (controlplane/kube's reflector).
template <typename T>
struct BasicWatchEvent {
  WatchEventType type = WatchEventType::kAdded;
  // ADDED, MODIFIED, DELETED: T (DELETED carries the last state with the deletion's
  // resourceVersion); BOOKMARK: Bookmark; ERROR: Status (e.g. 410 Expired: relist).
  std::variant<T, Bookmark, Status> payload;

  const T& object() const { return std::get<T>(payload); }
  T& object() { return std::get<T>(payload); }
  const Bookmark& bookmark() const { return std::get<Bookmark>(payload); }
  const Status& status() const { return std::get<Status>(payload); }

  bool operator==(const BasicWatchEvent&) const = default;
};

using WatchEvent = BasicWatchEvent<Object>;
// The object points into the parser that read the event: valid until it parses something else.
using RawWatchEvent = BasicWatchEvent<JsonElement>;  // needs <simdjson.h> to use

// Both parsers check the envelope the same way, and throw ParseError ("watch event ADDED: ..."):
// an event that is not an object, an unknown or missing type, a missing object, a BOOKMARK without
// resourceVersion, an ERROR whose object is not a Status (ParseStatus, strict), an object of
// another kind than the expected one when it says its kind, and a Status as the object of a
// non-ERROR event (the error carries it).
//
// `expected`: the kind the watch was opened for. Objects may then omit their kind. Without it,
// every object must say its kind. The object is parsed and its apiVersion checked.
WatchEvent ParseWatchEvent(JsonElement event, std::optional<Kind> expected = std::nullopt);
WatchEvent ParseWatchEvent(const nlohmann::json& event,
                           std::optional<Kind> expected = std::nullopt);
// One complete JSON text per call, as WatchStreamFramer cuts them from the stream.
WatchEvent ParseWatchEventText(std::string_view text, std::optional<Kind> expected = std::nullopt);

// The envelope only, for any kind ("" accepts every kind): the object stays JSON, unparsed.
RawWatchEvent ParseRawWatchEvent(JsonElement event, std::string_view expected_kind);
// `parser` holds the event (and so the object) afterwards; the reflector reuses one per watch.
RawWatchEvent ParseRawWatchEventText(JsonParser& parser, std::string_view text,
                                     std::string_view expected_kind);

}  // namespace sluice::api
