#include "controlplane/kube/watch_session.h"

#include "controlplane/api/object_error.h"
#include "controlplane/api/object_meta.h"
#include "controlplane/api/watch_event.h"

namespace sluice::kube {

WatchSession::WatchSession(Resource resource, ReflectorSink& sink, std::string resource_version,
                           bool initial_events, size_t max_event_bytes)
    : resource_(std::move(resource)),
      sink_(sink),
      resource_version_(std::move(resource_version)),
      initial_events_(initial_events),
      framer_(max_event_bytes) {}

WatchSession::~WatchSession() {
  // A watch-list that ends before its initial events did listed nothing.
  if (listing_open_) sink_.ListAbort();
}

WatchSession::Outcome WatchSession::Malformed(std::string problem) {
  problem_ = std::move(problem);
  return outcome_ = Outcome::kMalformed;
}

WatchSession::Outcome WatchSession::OnData(std::string_view bytes) {
  if (outcome_ != Outcome::kContinue) return outcome_;
  framer_.Feed(bytes);
  while (true) {
    std::optional<std::string> text;
    try {
      text = framer_.Next();
    } catch (const api::ParseError& e) {
      return Malformed(e.what());
    }
    if (!text) return outcome_;
    if (OnEvent(*text) != Outcome::kContinue) return outcome_;
  }
}

WatchSession::Outcome WatchSession::OnEvent(std::string_view text) {
  if (outcome_ != Outcome::kContinue) return outcome_;
  api::RawWatchEvent ev;
  try {
    ev = api::ParseRawWatchEventText(parser_, text, resource_.kind);
  } catch (const api::ParseError& e) {
    return Malformed(e.what());
  }
  ++events_;
  switch (ev.type) {
    case api::WatchEventType::kError:
      status_ = ev.status();
      problem_ = status_->Summary();
      return outcome_ = status_->IsExpired() ? Outcome::kExpired : Outcome::kError;
    case api::WatchEventType::kBookmark: {
      const api::Bookmark& b = ev.bookmark();
      if (initial_events_ && b.initial_events_end) {
        initial_events_ = false;
        listing_open_ = false;
        sink_.ListEnd(b.resource_version);
      }
      resource_version_ = b.resource_version;
      return Outcome::kContinue;
    }
    default:
      break;
  }
  // The store keys objects by name and the next watch resumes from their resourceVersion: an
  // object without either cannot be placed.
  api::JsonElement object = ev.object();
  std::string key = api::ObjectKey(object);
  std::string rv = api::ObjectResourceVersion(object);
  if (key.empty() || rv.empty()) {
    return Malformed("watch event " + std::string(api::ToString(ev.type)) + ": " + resource_.kind +
                     (key.empty() ? "" : " " + key) + ": metadata." +
                     (key.empty() ? "name" : "resourceVersion") + ": required");
  }
  if (initial_events_) {
    // Initial events carry each object's own resourceVersion, in no order: the position to
    // resume from is only known at the closing bookmark.
    listing_open_ = true;
    if (ev.type == api::WatchEventType::kDeleted) {
      sink_.ListForget(key);
    } else {
      ++initial_objects_;
      sink_.ListObject(key, object);
    }
    return Outcome::kContinue;
  }
  if (ev.type == api::WatchEventType::kDeleted) {
    sink_.Delete(object);
  } else {
    sink_.Upsert(object);
  }
  resource_version_ = std::move(rv);
  return Outcome::kContinue;
}

}  // namespace sluice::kube
