// Keeps a ReflectorSink equal to the server's view of one collection, the way client-go's Reflector
// does: LIST (pages of 500) then WATCH from the list's resourceVersion, bookmarks advancing it;
// re-WATCH when a stream ends cleanly; relist on 410 Gone (HTTP status or ERROR event) or on a
// stream that cannot be trusted; jittered exponential backoff between failures. With watch-list
// the initial state comes as a stream of events on the watch itself (sendInitialEvents), and a
// server that refuses it gets LIST+WATCH instead. README.md has the state machine.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <stop_token>
#include <string>

#include "controlplane/kube/backoff.h"
#include "controlplane/kube/http_client.h"
#include "controlplane/kube/query.h"
#include "controlplane/kube/reflector_sink.h"
#include "controlplane/kube/resource.h"

namespace sluice::kube {

struct ReflectorOptions {
  Resource resource;
  std::string label_selector;
  std::string field_selector;
  int page_size = 500;  // 0: never paginate
  // Try a streaming list (sendInitialEvents) before LIST; client-go's default since 1.35.
  bool use_watch_list = true;
  // Give up on watch-list (and use LIST+WATCH from then on) when the initial events have not
  // ended within this time: a server that ignores sendInitialEvents never sends the bookmark.
  std::chrono::seconds initial_events_timeout{60};
  // Each watch asks the server to end it after a random time in [min, 2*min).
  std::chrono::seconds min_watch_timeout{300};
  std::chrono::milliseconds request_timeout{60000};  // one LIST request
  BackoffPolicy backoff;
};

class Reflector {
 public:
  Reflector(ApiConnection connection, ReflectorOptions options, ReflectorSink& sink);
  ~Reflector();

  // Lists and watches until stop is requested. Never throws: every failure is logged and retried.
  void Run(std::stop_token stop);

  std::string last_sync_resource_version() const;
  const ReflectorOptions& options() const { return options_; }

 private:
  enum class Next { kRewatch, kRewatchAfterBackoff, kRelist, kRelistAfterBackoff };
  enum class WatchMode { kWatch, kWatchList };

  void List(std::stop_token stop);
  // Feeds every item of every page to the sink's listing; returns the item count. The caller
  // ends (or aborts) the listing.
  size_t ListPages(std::stop_token stop, const std::string& rv, bool paginate,
                   std::string* list_rv);
  // One watch request, read to its end. For kWatchList, sets *refused when the server does not
  // do watch-list (the caller then lists instead).
  Next Watch(std::stop_token stop, WatchMode mode, bool* refused);
  QueryParams SelectorParams() const;
  void SetResourceVersion(const std::string& rv);
  std::string Describe() const;  // "services (labelSelector=...)" for logs

  // Passes everything on to the real sink, first recording the resourceVersion it brings, so that
  // handlers (and whoever saw HasSynced) find last_sync_resource_version() already up to date.
  class VersionedSink : public ReflectorSink {
   public:
    VersionedSink(Reflector& r, ReflectorSink& sink) : reflector_(r), sink_(sink) {}
    void Upsert(api::JsonElement object) override;
    void Delete(api::JsonElement object) override;
    void ListObject(const std::string& key, api::JsonElement object) override;
    void ListForget(const std::string& key) override;
    void ListEnd(const std::string& rv) override;
    void ListAbort() override;

   private:
    Reflector& reflector_;
    ReflectorSink& sink_;
  };

  ApiConnection connection_;
  ReflectorOptions options_;
  VersionedSink sink_;
  std::unique_ptr<HttpClient> client_;
  Backoff backoff_;
  bool paginated_result_ = false;              // the server paginated a list: keep paginating
  bool resource_version_unavailable_ = false;  // the last RV is too old or too new: list at ""
  bool watch_list_refused_ = false;

  mutable std::mutex mu_;
  std::string last_sync_rv_;
};

}  // namespace sluice::kube
