// One line of a watch stream: {"type": ADDED|MODIFIED|DELETED|BOOKMARK|ERROR, "object": {...}}.
// Decoding checks the envelope only (type, kind, name, resourceVersion); the object's own fields
// are the API layer's business.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "controlplane/kube/errors.h"
#include "controlplane/kube/resource.h"

namespace sluice::kube {

enum class WatchEventType { kAdded, kModified, kDeleted, kBookmark, kError };
std::string_view ToString(WatchEventType type);

struct WatchEvent {
  WatchEventType type = WatchEventType::kError;
  nlohmann::json object;  // for kError, a Status
};

// A line that is not a usable event: malformed JSON, unknown type, a kind other than the watched
// one, a Status outside an ERROR event, no name or resourceVersion. The message starts with the
// object's identity when it has one.
class WatchDecodeError : public Error {
 public:
  using Error::Error;
};

WatchEvent DecodeWatchEvent(std::string_view line, const Resource& resource);

// "default/web" (namespaced) or "node-1"; "" when metadata.name is missing.
std::string ObjectKey(const nlohmann::json& object);
// metadata.resourceVersion, "" when missing.
std::string ObjectResourceVersion(const nlohmann::json& object);
// The annotation that marks the end of a watch-list's initial events.
bool IsInitialEventsEnd(const nlohmann::json& bookmark_object);

}  // namespace sluice::kube
