// One watch stream, line by line, without I/O: decodes each event, applies it to the sink in order
// and tracks the resourceVersion to resume from. In watch-list mode (sendInitialEvents) it first
// collects the initial ADDED events and hands them over as one Replace when the bookmark marked
// k8s.io/initial-events-end arrives.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "controlplane/kube/api_status.h"
#include "controlplane/kube/reflector_sink.h"
#include "controlplane/kube/resource.h"

namespace sluice::kube {

class WatchSession {
 public:
  enum class Outcome {
    kContinue,   // keep reading
    kExpired,    // ERROR event 410: relist
    kError,      // another ERROR event
    kMalformed,  // a line that is not a usable event
  };

  WatchSession(Resource resource, ReflectorSink& sink, std::string resource_version,
               bool initial_events);

  // Once something other than kContinue is returned, the session ignores further lines.
  Outcome OnLine(std::string_view line);

  // The resourceVersion to resume a watch from (advanced by events and bookmarks).
  const std::string& resource_version() const { return resource_version_; }
  bool waiting_for_initial_events() const { return initial_events_; }
  size_t events() const { return events_; }  // lines decoded, bookmarks included
  size_t initial_objects() const { return initial_.size(); }
  // Why the session stopped: the ERROR event's Status, or the decode error.
  const std::optional<ApiStatus>& status() const { return status_; }
  const std::string& problem() const { return problem_; }

 private:
  Resource resource_;
  ReflectorSink& sink_;
  std::string resource_version_;
  bool initial_events_;
  std::map<std::string, nlohmann::json> initial_;
  size_t events_ = 0;
  Outcome outcome_ = Outcome::kContinue;
  std::optional<ApiStatus> status_;
  std::string problem_;
};

}  // namespace sluice::kube
