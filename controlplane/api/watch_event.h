// One event of a watch stream: {"type": "ADDED", "object": {...}}.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

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

struct WatchEvent {
  WatchEventType type = WatchEventType::kAdded;
  // ADDED, MODIFIED, DELETED: Object (DELETED carries the last state with the deletion's
  // resourceVersion); BOOKMARK: Bookmark; ERROR: Status (e.g. 410 Expired: relist).
  std::variant<Object, Bookmark, Status> payload;

  const Object& object() const { return std::get<Object>(payload); }
  const Bookmark& bookmark() const { return std::get<Bookmark>(payload); }
  const Status& status() const { return std::get<Status>(payload); }

  bool operator==(const WatchEvent&) const = default;
};

// `expected`: the kind the watch was opened for. Objects may then omit their kind, and an object of
// another kind is an error. Without it, every object must say its kind. An unknown event type, a
// missing object, or a BOOKMARK without resourceVersion is a ParseError ("watch event ADDED: ...").
WatchEvent ParseWatchEvent(const nlohmann::json& event,
                           std::optional<Kind> expected = std::nullopt);
// One complete JSON text per call, as WatchStreamFramer cuts them from the stream.
WatchEvent ParseWatchEventText(std::string_view text, std::optional<Kind> expected = std::nullopt);

}  // namespace sluice::api
