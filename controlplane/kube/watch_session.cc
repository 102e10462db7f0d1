#include "controlplane/kube/watch_session.h"

#include "controlplane/kube/watch_event.h"

namespace sluice::kube {

WatchSession::WatchSession(Resource resource, ReflectorSink& sink, std::string resource_version,
                           bool initial_events)
    : resource_(std::move(resource)),
      sink_(sink),
      resource_version_(std::move(resource_version)),
      initial_events_(initial_events) {}

WatchSession::Outcome WatchSession::OnLine(std::string_view line) {
  if (outcome_ != Outcome::kContinue) return outcome_;
  WatchEvent ev;
  try {
    ev = DecodeWatchEvent(line, resource_);
  } catch (const WatchDecodeError& e) {
    problem_ = e.what();
    return outcome_ = Outcome::kMalformed;
  }
  ++events_;
  std::string rv = ObjectResourceVersion(ev.object);
  switch (ev.type) {
    case WatchEventType::kError: {
      status_ = StatusFromJson(ev.object, 0);
      problem_ = status_->Summary();
      return outcome_ = status_->IsExpired() ? Outcome::kExpired : Outcome::kError;
    }
    case WatchEventType::kBookmark:
      if (initial_events_ && IsInitialEventsEnd(ev.object)) {
        std::vector<nlohmann::json> items;
        items.reserve(initial_.size());
        for (auto& [key, obj] : initial_) items.push_back(std::move(obj));
        initial_.clear();
        initial_events_ = false;
        sink_.Replace(std::move(items), rv);
      }
      resource_version_ = rv;
      return Outcome::kContinue;
    case WatchEventType::kAdded:
    case WatchEventType::kModified:
      if (initial_events_) {
        // Initial events carry each object's own resourceVersion, in no order: the position to
        // resume from is only known at the closing bookmark.
        std::string key = ObjectKey(ev.object);  // before the move below
        initial_[key] = std::move(ev.object);
        return Outcome::kContinue;
      }
      sink_.Upsert(std::move(ev.object));
      break;
    case WatchEventType::kDeleted:
      if (initial_events_) {
        initial_.erase(ObjectKey(ev.object));
        return Outcome::kContinue;
      }
      sink_.Delete(std::move(ev.object));
      break;
  }
  resource_version_ = rv;
  return Outcome::kContinue;
}

}  // namespace sluice::kube
