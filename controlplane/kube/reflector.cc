#include "controlplane/kube/reflector.h"

#include <malloc.h>

#include <condition_variable>
#include <random>

#include "common/log.h"
#include "controlplane/api/object_error.h"
#include "controlplane/api/object_meta.h"
#include "controlplane/api/status.h"
#include "controlplane/kube/errors.h"
#include "controlplane/kube/watch_session.h"

namespace sluice::kube {

namespace {

using std::chrono::steady_clock;

// Waits d, or less if stop is requested. False when stopped.
bool SleepFor(std::chrono::milliseconds d, const std::stop_token& stop) {
  std::mutex m;
  std::condition_variable_any cv;
  std::unique_lock lock(m);
  cv.wait_for(lock, stop, d, [] { return false; });
  return !stop.stop_requested();
}

std::string Ms(std::chrono::milliseconds d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1fs", static_cast<double>(d.count()) / 1000.0);
  return buf;
}

// Statuses that say "this server does not do watch-list", as opposed to "try again".
bool RefusesWatchList(long status) {
  return status == 400 || status == 403 || status == 404 || status == 405 || status == 406 ||
         status == 415 || status == 422 || status == 501;
}

}  // namespace

Reflector::Reflector(ApiConnection connection, ReflectorOptions options, ReflectorSink& sink)
    : connection_(std::move(connection)),
      options_(std::move(options)),
      sink_(*this, sink),
      client_(std::make_unique<HttpClient>(connection_)),
      backoff_(options_.backoff) {}

Reflector::~Reflector() = default;

void Reflector::VersionedSink::ListObject(const std::string& key, api::JsonElement object) {
  sink_.ListObject(key, object);
}

void Reflector::VersionedSink::ListForget(const std::string& key) { sink_.ListForget(key); }

void Reflector::VersionedSink::ListEnd(const std::string& rv) {
  reflector_.SetResourceVersion(rv);
  sink_.ListEnd(rv);
  // The listing's transient memory (the previous store's objects, parse buffers) was just freed;
  // glibc keeps such memory in the process unless told otherwise. Once per (re)list, never per
  // event.
  malloc_trim(0);
}

void Reflector::VersionedSink::ListAbort() { sink_.ListAbort(); }

void Reflector::VersionedSink::Upsert(api::JsonElement object) {
  reflector_.SetResourceVersion(api::ObjectResourceVersion(object));
  sink_.Upsert(object);
}

void Reflector::VersionedSink::Delete(api::JsonElement object) {
  reflector_.SetResourceVersion(api::ObjectResourceVersion(object));
  sink_.Delete(object);
}

std::string Reflector::last_sync_resource_version() const {
  std::lock_guard lock(mu_);
  return last_sync_rv_;
}

void Reflector::SetResourceVersion(const std::string& rv) {
  std::lock_guard lock(mu_);
  last_sync_rv_ = rv;
}

std::string Reflector::Describe() const {
  std::string out(options_.resource.name());
  if (!options_.field_selector.empty()) out += "[" + options_.field_selector + "]";
  return out;
}

QueryParams Reflector::SelectorParams() const {
  QueryParams q;
  if (!options_.label_selector.empty()) q["labelSelector"] = options_.label_selector;
  if (!options_.field_selector.empty()) q["fieldSelector"] = options_.field_selector;
  return q;
}

void Reflector::Run(std::stop_token stop) {
  Next next = Next::kRelist;
  while (!stop.stop_requested()) {
    if (next == Next::kRelistAfterBackoff || next == Next::kRewatchAfterBackoff) {
      if (!SleepFor(backoff_.Next(), stop)) return;
    }
    try {
      if (next == Next::kRelist || next == Next::kRelistAfterBackoff) {
        bool listed = false;
        if (options_.use_watch_list && !watch_list_refused_) {
          bool refused = false;
          next = Watch(stop, WatchMode::kWatchList, &refused);
          listed = !refused;
        }
        if (listed) continue;
        List(stop);
      }
      next = Watch(stop, WatchMode::kWatch, nullptr);
    } catch (const Cancelled&) {
      return;
    } catch (const std::exception& e) {
      // Only List throws here (Watch maps its failures to what to do next).
      SLOG_WARN << Describe() << ": " << e.what() << "; listing again after a backoff";
      next = Next::kRelistAfterBackoff;
    }
  }
}

void Reflector::List(std::stop_token stop) {
  std::string last = last_sync_resource_version();
  // "0" first (any state, may come from the watch cache); afterwards the last synced RV
  // ("not older than"); "" (a consistent read) when that RV turned out to be unusable.
  std::string rv = resource_version_unavailable_ ? "" : (last.empty() ? "0" : last);
  // An RV other than "0" with a limit would force the server to read etcd: paginate only the
  // first list, or when the server has shown it paginates anyway (client-go does the same).
  bool paginate = options_.page_size > 0 && (paginated_result_ || rv == "0" || rv.empty());
  std::string list_rv;
  size_t count = 0;
  try {
    try {
      count = ListPages(stop, rv, paginate, &list_rv);
    } catch (const ApiError& e) {
      if (rv.empty() || !(e.status().IsExpired() || e.status().IsTooLargeResourceVersion())) {
        throw;
      }
      SLOG_WARN << Describe() << ": LIST at resourceVersion " << rv << ": " << e.status().Summary()
                << "; listing the current state instead";
      resource_version_unavailable_ = true;
      sink_.ListAbort();
      count = ListPages(stop, "", options_.page_size > 0, &list_rv);
    }
  } catch (...) {
    sink_.ListAbort();
    throw;
  }
  resource_version_unavailable_ = false;
  SLOG_INFO << Describe() << ": listed " << count << " at resourceVersion " << list_rv;
  sink_.ListEnd(list_rv);
}

size_t Reflector::ListPages(std::stop_token stop, const std::string& rv, bool paginate,
                            std::string* list_rv) {
  const QueryParams base = SelectorParams();
  QueryParams q = base;
  if (paginate) q["limit"] = std::to_string(options_.page_size);
  if (!rv.empty()) q["resourceVersion"] = rv;
  size_t items = 0;
  const std::string list_kind = options_.resource.kind + "List";
  api::JsonParser parser;  // one document at a time: the page being handed to the sink
  for (int page = 1;; ++page) {
    std::string path = options_.resource.path + (q.empty() ? "" : "?" + EncodeQuery(q));
    std::string url = client_->Url(path);
    HttpResponse resp = client_->Get(path, options_.request_timeout, stop);
    if (!resp.ok()) {
      api::Status st = api::StatusFromBody(resp.body, resp.status);
      if (page > 1 && st.IsExpired()) {
        // The snapshot the continue token points into was compacted away. Pages already read
        // belong to it, so start over: one unpaginated request at the same RV (client-go's pager).
        SLOG_WARN << Describe() << ": LIST " << url << ": continue token expired after " << items
                  << " objects (" << st.Summary() << "); listing again in one request";
        sink_.ListAbort();
        return ListPages(stop, rv, /*paginate=*/false, list_rv);
      }
      throw ApiError("LIST " + url + ": " + st.Summary(), url, st);
    }
    api::JsonElement doc;
    try {
      doc = api::ParseJsonDom(parser, resp.body);
    } catch (const api::ParseError&) {
    }
    if (!doc.is_object()) throw Error("LIST " + url + ": response is not a JSON object");
    auto kind = api::FindMember(doc, "kind");
    if (kind && kind->is_string() && kind->get_string().value_unsafe() != list_kind) {
      std::string_view k = kind->get_string().value_unsafe();
      if (k == "Status") {
        throw Error("LIST " + url + ": HTTP " + std::to_string(resp.status) +
                    " with a Status instead of a " + list_kind + ": " +
                    api::StatusFromJson(doc, 0).Summary());
      }
      throw Error("LIST " + url + ": kind \"" + std::string(k) + "\", want " + list_kind);
    }
    std::string page_rv, next;
    if (auto md = api::FindMember(doc, "metadata")) {
      if (auto v = api::FindMember(*md, "resourceVersion"); v && v->is_string()) {
        page_rv = v->get_string().value_unsafe();
      }
      if (auto v = api::FindMember(*md, "continue"); v && v->is_string()) {
        next = v->get_string().value_unsafe();
      }
    }
    if (page_rv.empty()) throw Error("LIST " + url + ": list has no metadata.resourceVersion");
    auto list = api::FindMember(doc, "items");
    if (list && !list->is_array()) throw Error("LIST " + url + ": items is not a list");
    if (list) {
      simdjson::dom::array array = list->get_array().value_unsafe();
      size_t i = 0;
      for (api::JsonElement item : array) {
        std::string key = item.is_object() ? api::ObjectKey(item) : "";
        if (key.empty()) {
          throw Error("LIST " + url + ": items[" + std::to_string(i) + "] has no metadata.name");
        }
        sink_.ListObject(key, item);
        ++items;
        ++i;
      }
    }
    *list_rv = page_rv;
    if (next.empty()) return items;
    if (rv == "0" || rv.empty()) paginated_result_ = true;
    q = base;
    q["continue"] = next;
    q["limit"] = std::to_string(options_.page_size > 0 ? options_.page_size : 500);
  }
}

Reflector::Next Reflector::Watch(std::stop_token stop, WatchMode mode, bool* refused) {
  const bool watch_list = mode == WatchMode::kWatchList;
  std::string rv = last_sync_resource_version();
  if (watch_list && resource_version_unavailable_) rv.clear();

  int64_t min_s = std::max<int64_t>(1, options_.min_watch_timeout.count());
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  std::chrono::seconds timeout(std::uniform_int_distribution<int64_t>(min_s, 2 * min_s - 1)(rng));

  QueryParams q = SelectorParams();
  q["allowWatchBookmarks"] = "true";
  q["watch"] = "true";
  q["timeoutSeconds"] = std::to_string(timeout.count());
  q["timeout"] = GoDuration(timeout);
  if (!rv.empty()) q["resourceVersion"] = rv;
  if (watch_list) {
    q["sendInitialEvents"] = "true";
    q["resourceVersionMatch"] = "NotOlderThan";
  }
  const std::string path = options_.resource.path + "?" + EncodeQuery(q);
  const std::string what = Describe() + (watch_list ? ": watch-list" : ": watch") +
                           (rv.empty() ? "" : " from resourceVersion " + rv);

  WatchSession session(options_.resource, sink_, rv, watch_list);
  WatchSession::Outcome outcome = WatchSession::Outcome::kContinue;
  bool initial_events_timed_out = false;
  const auto start = steady_clock::now();
  auto last_warning = start;

  std::function<bool(std::string_view)> on_chunk = [&](std::string_view data) {
    const bool was_waiting = session.waiting_for_initial_events();
    outcome = session.OnData(data);
    if (was_waiting && !session.waiting_for_initial_events()) {
      SLOG_INFO << what << ": listed " << session.initial_objects()
                << " (initial events) at resourceVersion " << session.resource_version();
    }
    if (!session.waiting_for_initial_events()) SetResourceVersion(session.resource_version());
    return outcome == WatchSession::Outcome::kContinue;
  };
  std::function<bool()> on_tick;
  if (watch_list) {
    on_tick = [&] {
      if (!session.waiting_for_initial_events()) return true;
      auto now = steady_clock::now();
      if (now - start >= options_.initial_events_timeout) {
        initial_events_timed_out = true;
        return false;
      }
      if (now - last_warning >= std::chrono::seconds(10)) {
        last_warning = now;
        SLOG_WARN << what << ": still waiting for the initial events to end ("
                  << session.initial_objects() << " objects so far)";
      }
      return true;
    };
  }

  // A watch-list that fails before its initial events are complete listed nothing: fall back to
  // LIST for this round (and for good when the server says it does not do watch-list).
  auto fall_back = [&](const std::string& why, bool for_good) {
    *refused = true;
    if (for_good) watch_list_refused_ = true;
    SLOG_WARN << what << ": " << why << "; using LIST+WATCH" << (for_good ? "" : " this time");
    return Next::kRelist;
  };

  HttpResponse resp;
  try {
    resp = client_->Stream(path, timeout + std::chrono::seconds(30), stop, on_chunk, on_tick);
  } catch (const Cancelled&) {
    throw;
  } catch (const TransportError& e) {
    if (watch_list && session.waiting_for_initial_events()) return fall_back(e.what(), false);
    if (session.events() > 0 || !session.pending().empty()) {
      SLOG_WARN << what << ": stream broke after " << session.events()
                << " events (resume from resourceVersion " << session.resource_version()
                << "): " << e.what() << "; watching again";
    } else {
      SLOG_WARN << what << ": " << e.what() << "; watching again after a backoff";
    }
    return Next::kRewatchAfterBackoff;
  } catch (const CredentialError& e) {
    SLOG_ERROR << what << ": no credentials: " << e.what();
    if (watch_list && session.waiting_for_initial_events()) return fall_back(e.what(), false);
    return Next::kRewatchAfterBackoff;
  } catch (const std::exception& e) {
    SLOG_ERROR << what << ": " << e.what() << "; listing again";
    if (watch_list && session.waiting_for_initial_events()) return fall_back(e.what(), false);
    return Next::kRelistAfterBackoff;
  }

  if (!resp.ok()) {
    api::Status st = api::StatusFromBody(resp.body, resp.status);
    std::string url = client_->Url(path);
    if (watch_list) {
      return fall_back("HTTP " + std::to_string(resp.status) + " (" + st.Summary() + ")",
                       RefusesWatchList(resp.status));
    }
    if (st.IsExpired()) {
      SLOG_INFO << what << ": " << st.Summary() << "; listing again";
      return Next::kRelistAfterBackoff;
    }
    if (resp.status == 429 || resp.status >= 500 || resp.status == 401) {
      SLOG_WARN << what << ": GET " << url << ": HTTP " << resp.status << " (" << st.Summary()
                << "); watching again after a backoff";
      return Next::kRewatchAfterBackoff;
    }
    SLOG_WARN << what << ": GET " << url << ": HTTP " << resp.status << " (" << st.Summary()
              << "); listing again after a backoff";
    return Next::kRelistAfterBackoff;
  }

  if (initial_events_timed_out) {
    return fall_back("no initial-events-end bookmark within " +
                         std::to_string(options_.initial_events_timeout.count()) +
                         " s (the server seems to ignore sendInitialEvents)",
                     true);
  }
  switch (outcome) {
    case WatchSession::Outcome::kExpired:
      if (watch_list && session.waiting_for_initial_events()) {
        return fall_back(session.problem(), false);
      }
      SLOG_INFO << what << ": " << session.problem() << "; listing again";
      return Next::kRelistAfterBackoff;
    case WatchSession::Outcome::kError:
      if (watch_list && session.waiting_for_initial_events()) {
        return fall_back(session.problem(), false);
      }
      SLOG_WARN << what << ": ERROR event " << session.problem() << "; listing again";
      return Next::kRelistAfterBackoff;
    case WatchSession::Outcome::kMalformed:
      if (watch_list && session.waiting_for_initial_events()) {
        return fall_back(session.problem(), false);
      }
      SLOG_WARN << what << ": " << session.problem() << " (after resourceVersion "
                << session.resource_version() << "); listing again";
      return Next::kRelistAfterBackoff;
    case WatchSession::Outcome::kContinue:
      break;
  }
  if (watch_list && session.waiting_for_initial_events()) {
    return fall_back("the stream ended before its initial events did", false);
  }
  if (!session.pending().empty()) {
    SLOG_WARN << what << ": stream ended inside an event (" << session.pending().size()
              << " bytes of a truncated event) after resourceVersion " << session.resource_version()
              << "; watching again";
    return Next::kRewatchAfterBackoff;
  }
  auto lasted = std::chrono::duration_cast<std::chrono::milliseconds>(steady_clock::now() - start);
  if (session.events() == 0 && lasted < std::chrono::seconds(1)) {
    SLOG_WARN << what << ": very short watch (ended after " << Ms(lasted)
              << " with no events); listing again";
    return Next::kRelistAfterBackoff;
  }
  return Next::kRewatch;  // the server's timeout: an ordinary end
}

}  // namespace sluice::kube
