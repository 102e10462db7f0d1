// One watch stream, without I/O: cuts the body into events (api::WatchStreamFramer), checks each
// envelope (api::ParseRawWatchEventText), applies it to the sink in order and tracks the
// resourceVersion to resume from. Objects stay JSON (simdjson's DOM, in the session's parser) for
// the informer's codec to parse. In watch-list mode (sendInitialEvents) the initial ADDED events
// go to the sink as a listing (ListObject), which ends (ListEnd) at the bookmark marked
// k8s.io/initial-events-end; a session that ends before that bookmark aborts the listing
// (ListAbort).
#pragma once

#include <simdjson.h>

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "controlplane/api/status.h"
#include "controlplane/api/watch_stream_framer.h"
#include "controlplane/kube/reflector_sink.h"
#include "controlplane/kube/resource.h"

namespace sluice::kube {

class WatchSession {
 public:
  enum class Outcome {
    kContinue,   // keep reading
    kExpired,    // ERROR event 410: relist
    kError,      // another ERROR event
    kMalformed,  // bytes that are not a usable event
  };

  WatchSession(Resource resource, ReflectorSink& sink, std::string resource_version,
               bool initial_events,
               size_t max_event_bytes = api::WatchStreamFramer::kDefaultMaxEventBytes);
  ~WatchSession();
  WatchSession(const WatchSession&) = delete;
  WatchSession& operator=(const WatchSession&) = delete;

  // Body bytes as they arrive (chunk boundaries are not event boundaries); each complete event
  // goes to OnEvent. Once something other than kContinue is returned, the session ignores further
  // input.
  Outcome OnData(std::string_view bytes);
  // One complete event's JSON text.
  Outcome OnEvent(std::string_view text);

  // The resourceVersion to resume a watch from (advanced by events and bookmarks).
  const std::string& resource_version() const { return resource_version_; }
  bool waiting_for_initial_events() const { return initial_events_; }
  size_t events() const { return events_; }                    // events decoded, bookmarks included
  size_t initial_objects() const { return initial_objects_; }  // initial ADDED events so far
  // The bytes of an event not yet complete: if the stream ends here, a truncated event.
  std::string_view pending() const { return framer_.pending(); }
  // Why the session stopped: the ERROR event's Status, or what was wrong with the stream.
  const std::optional<api::Status>& status() const { return status_; }
  const std::string& problem() const { return problem_; }

 private:
  Outcome Malformed(std::string problem);

  Resource resource_;
  ReflectorSink& sink_;
  std::string resource_version_;
  bool initial_events_;
  api::WatchStreamFramer framer_;
  api::JsonParser parser_;     // the current event's document; reused, so its buffers are too
  bool listing_open_ = false;  // the sink holds a partial listing from this session
  size_t initial_objects_ = 0;
  size_t events_ = 0;
  Outcome outcome_ = Outcome::kContinue;
  std::optional<api::Status> status_;
  std::string problem_;
};

}  // namespace sluice::kube
