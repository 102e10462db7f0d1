// The reflector and informer against a small in-process API server (FakeApi) that serves paginated
// lists and watches from an event history, and injects the faults a real one shows: compaction
// (410 as an HTTP status or as an ERROR event), expired continue tokens, truncated or malformed
// events, unknown kinds, Status objects, HTTP errors, dropped streams, watch-list support or not.
#include "controlplane/kube/reflector.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

#include "controlplane/api/object_meta.h"
#include "controlplane/kube/informer.h"
#include "controlplane/kube/testing/fake_http_server.h"

namespace sluice::kube {
namespace {

using Json = nlohmann::json;
using api::ObjectKey;
using api::ObjectResourceVersion;
using testing::FakeHttpServer;
using testing::HttpRequest;
using testing::ResponseWriter;
using namespace std::chrono_literals;

class FakeApi {
 public:
  enum class WatchList { kRefuse, kSupport, kIgnore };
  struct Event {
    std::string type;
    Json object;
    int64_t rv;
  };

  FakeApi() : server_([this](const HttpRequest& r, ResponseWriter& w) { Handle(r, w); }) {}

  std::string url() const { return server_.url(); }
  std::vector<HttpRequest> requests() const { return server_.requests(); }

  void Put(const std::string& ns, const std::string& name, int spec = 0) {
    std::lock_guard lock(mu_);
    std::string key = ns + "/" + name;
    Json obj = {{"kind", "Service"},
                {"apiVersion", "v1"},
                {"metadata",
                 {{"name", name}, {"namespace", ns}, {"resourceVersion", std::to_string(++rv_)}}},
                {"spec", {{"v", spec}}}};
    std::string type = objects_.count(key) ? "MODIFIED" : "ADDED";
    objects_[key] = obj;
    history_.push_back({type, obj, rv_});
    cv_.notify_all();
  }
  void Remove(const std::string& ns, const std::string& name) {
    std::lock_guard lock(mu_);
    auto it = objects_.find(ns + "/" + name);
    Json obj = it->second;
    obj["metadata"]["resourceVersion"] = std::to_string(++rv_);
    objects_.erase(it);
    history_.push_back({"DELETED", obj, rv_});
    cv_.notify_all();
  }
  void Bookmark() {
    std::lock_guard lock(mu_);
    history_.push_back({"BOOKMARK",
                        {{"kind", "Service"},
                         {"apiVersion", "v1"},
                         {"metadata", {{"resourceVersion", std::to_string(rv_)}}}},
                        rv_});
    cv_.notify_all();
  }
  // History up to now is gone: watches and continue tokens from before it get 410.
  void Compact() {
    std::lock_guard lock(mu_);
    compacted_ = rv_;
  }
  // Open and future watch streams stop sending events until resumed.
  void PauseWatches(bool paused) {
    std::lock_guard lock(mu_);
    paused_ = paused;
    cv_.notify_all();
  }
  // Something for the next watch stream (or the open one) to do instead of the next event.
  void InjectWatchFault(std::string fault) {
    std::lock_guard lock(mu_);
    watch_faults_.push_back(std::move(fault));
    cv_.notify_all();
  }
  void InjectListFault(std::string fault) {
    std::lock_guard lock(mu_);
    list_faults_.push_back(std::move(fault));
  }
  void ExpireNextContinue() {
    std::lock_guard lock(mu_);
    expire_next_continue_ = true;
  }
  void SetWatchList(WatchList mode) {
    std::lock_guard lock(mu_);
    watch_list_ = mode;
  }
  void SetExpiredAsHttpStatus(bool v) {
    std::lock_guard lock(mu_);
    expired_as_http_ = v;
  }
  std::map<std::string, std::string> State() const {
    std::lock_guard lock(mu_);
    std::map<std::string, std::string> out;
    for (const auto& [k, o] : objects_) out[k] = o["metadata"]["resourceVersion"];
    return out;
  }
  std::string CurrentRv() const {
    std::lock_guard lock(mu_);
    return std::to_string(rv_);
  }
  int WatchesOpened() const {
    std::lock_guard lock(mu_);
    return watches_opened_;
  }

 private:
  static Json StatusJson(int code, const std::string& reason, const std::string& message) {
    return {{"kind", "Status"},    {"apiVersion", "v1"}, {"metadata", Json::object()},
            {"status", "Failure"}, {"message", message}, {"reason", reason},
            {"code", code}};
  }

  void Handle(const HttpRequest& req, ResponseWriter& w) {
    if (req.path != "/api/v1/services") {
      w.Respond(404, StatusJson(404, "NotFound", "no such path").dump());
      return;
    }
    if (req.query.count("watch")) {
      Watch(req, w);
    } else {
      List(req, w);
    }
  }

  void List(const HttpRequest& req, ResponseWriter& w) {
    std::unique_lock lock(mu_);
    if (!list_faults_.empty()) {
      std::string fault = list_faults_.front();
      list_faults_.pop_front();
      if (fault == "http500") {
        w.Respond(500, StatusJson(500, "InternalError", "etcd unavailable").dump());
        return;
      }
      if (fault == "status200") {
        w.Respond(200, StatusJson(500, "InternalError", "a Status with 200").dump());
        return;
      }
    }
    std::vector<Json> all;
    for (const auto& [k, o] : objects_) {
      Json item = o;
      item.erase("kind");
      item.erase("apiVersion");
      all.push_back(item);
    }
    size_t offset = 0;
    std::string list_rv = std::to_string(rv_);
    if (auto c = req.query.find("continue"); c != req.query.end()) {
      auto colon = c->second.find(':');
      list_rv = c->second.substr(0, colon);
      offset = std::stoul(c->second.substr(colon + 1));
      if (expire_next_continue_ || std::stoll(list_rv) < compacted_) {
        expire_next_continue_ = false;
        Json st = StatusJson(410, "Expired", "The provided continue parameter is too old");
        st["metadata"]["continue"] = "INCONSISTENT";
        w.Respond(410, st.dump());
        return;
      }
    }
    size_t limit = all.size();
    if (auto l = req.query.find("limit"); l != req.query.end()) limit = std::stoul(l->second);
    Json list = {{"kind", "ServiceList"},
                 {"apiVersion", "v1"},
                 {"metadata", {{"resourceVersion", list_rv}}},
                 {"items", Json::array()}};
    for (size_t i = offset; i < all.size() && i < offset + limit; ++i)
      list["items"].push_back(all[i]);
    if (offset + limit < all.size()) {
      list["metadata"]["continue"] = list_rv + ":" + std::to_string(offset + limit);
    }
    lock.unlock();
    w.Respond(200, list.dump());
  }

  static std::string Line(const std::string& type, const Json& obj) {
    return Json{{"type", type}, {"object", obj}}.dump() + "\n";
  }

  void Watch(const HttpRequest& req, ResponseWriter& w) {
    std::unique_lock lock(mu_);
    ++watches_opened_;
    bool send_initial = req.query.count("sendInitialEvents");
    if (send_initial && watch_list_ == WatchList::kRefuse) {
      lock.unlock();
      w.Respond(422, StatusJson(422, "Invalid",
                                "sendInitialEvents is forbidden for watch unless "
                                "the WatchList feature gate is enabled")
                         .dump());
      return;
    }
    int64_t from = 0;
    if (auto rv = req.query.find("resourceVersion"); rv != req.query.end())
      from = std::stoll(rv->second);
    if (!watch_faults_.empty() && watch_faults_.front() == "http500") {
      watch_faults_.pop_front();
      lock.unlock();
      w.Respond(500, StatusJson(500, "InternalError", "injected").dump());
      return;
    }
    if (!send_initial && from < compacted_) {
      Json st = StatusJson(410, "Expired",
                           "too old resource version: " + std::to_string(from) + " (" +
                               std::to_string(compacted_) + ")");
      lock.unlock();
      if (expired_as_http_) {
        w.Respond(410, st.dump());
      } else {
        w.Start(200);
        w.Write(Line("ERROR", st));
        w.End();
      }
      return;
    }
    lock.unlock();
    w.Start(200);
    lock.lock();
    size_t next = 0;
    if (send_initial) {
      // Synthetic ADDED for the current state, then the annotated bookmark (unless ignoring).
      std::string out;
      for (const auto& [k, o] : objects_) out += Line("ADDED", o);
      if (watch_list_ == WatchList::kSupport) {
        out += Line("BOOKMARK", {{"kind", "Service"},
                                 {"apiVersion", "v1"},
                                 {"metadata",
                                  {{"resourceVersion", std::to_string(rv_)},
                                   {"annotations", {{"k8s.io/initial-events-end", "true"}}}}}});
      }
      from = rv_;
      lock.unlock();
      w.Write(out);
      lock.lock();
    }
    while (next < history_.size() && history_[next].rv <= from) ++next;
    while (!server_.stopping() && !w.closed()) {
      if (!watch_faults_.empty() && watch_faults_.front() == "http500") {
        lock.unlock();
        w.Abort();  // the next watch request gets the 500
        return;
      }
      if (!watch_faults_.empty()) {
        std::string fault = watch_faults_.front();
        watch_faults_.pop_front();
        lock.unlock();
        if (fault == "drop") {  // a clean end with no events, at once: a "very short watch"
          w.End();
        } else if (fault == "abort") {
          w.Abort();
        } else if (fault == "truncate") {
          std::string line = next < history_.size()
                                 ? Line(history_[next].type, history_[next].object)
                                 : Line("ADDED", {{"metadata", {{"name", "x"}}}});
          w.Write(line.substr(0, line.size() / 2));
          w.End();
        } else if (fault == "malformed") {
          w.Write("{\"type\":\"ADDED\",\"object\":{\"metadata\":\n");
          w.Hold(2s);
        } else if (fault == "unknown-kind") {
          w.Write(
              Line("ADDED",
                   {{"kind", "Pod"},
                    {"apiVersion", "v1"},
                    {"metadata",
                     {{"name", "p"}, {"namespace", "default"}, {"resourceVersion", "999999"}}}}));
          w.Hold(2s);
        } else if (fault == "status-object") {
          w.Write(Line("MODIFIED", StatusJson(500, "InternalError", "not an object")));
          w.Hold(2s);
        } else if (fault == "error410") {
          w.Write(Line("ERROR", StatusJson(410, "Expired", "too old resource version")));
          w.End();
        } else if (fault == "error500") {
          w.Write(Line("ERROR", StatusJson(500, "InternalError", "injected")));
          w.End();
        }
        return;
      }
      if (!paused_ && next < history_.size()) {
        std::string out;
        for (; next < history_.size(); ++next)
          out += Line(history_[next].type, history_[next].object);
        lock.unlock();
        if (!w.Write(out)) return;
        lock.lock();
        continue;
      }
      lock.unlock();
      if (!w.Hold(20ms) && (w.closed() || server_.stopping())) return;
      lock.lock();
    }
  }

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, Json> objects_;
  std::vector<Event> history_;
  int64_t rv_ = 100;
  int64_t compacted_ = 0;
  bool paused_ = false;
  bool expire_next_continue_ = false;
  bool expired_as_http_ = false;
  WatchList watch_list_ = WatchList::kRefuse;
  std::deque<std::string> watch_faults_, list_faults_;
  int watches_opened_ = 0;
  FakeHttpServer server_;  // last: its threads stop before the state above goes away
};

// What the handlers saw, and the state they imply.
struct Recorder {
  std::mutex mu;
  std::vector<std::string> events;
  std::map<std::string, std::string> state;
  std::vector<std::string>
      problems;  // an add for a known key, an update or delete for an unknown one
  int synced = 0;

  EventHandlers<Json> Handlers() {
    EventHandlers<Json> h;
    h.on_add = [this](const Json& o) {
      std::lock_guard lock(mu);
      std::string k = ObjectKey(o);
      if (state.count(k)) problems.push_back("add of known " + k);
      state[k] = ObjectResourceVersion(o);
      events.push_back("add " + k + "@" + state[k]);
    };
    h.on_update = [this](const Json& old_obj, const Json& o) {
      std::lock_guard lock(mu);
      std::string k = ObjectKey(o);
      if (state[k] != ObjectResourceVersion(old_obj)) problems.push_back("stale old object " + k);
      state[k] = ObjectResourceVersion(o);
      events.push_back("update " + k + "@" + state[k]);
    };
    h.on_delete = [this](const Json& o) {
      std::lock_guard lock(mu);
      std::string k = ObjectKey(o);
      if (!state.erase(k)) problems.push_back("delete of unknown " + k);
      events.push_back("delete " + k);
    };
    h.on_synced = [this] {
      std::lock_guard lock(mu);
      ++synced;
    };
    return h;
  }
  std::vector<std::string> Events() {
    std::lock_guard lock(mu);
    return events;
  }
  void Clear() {
    std::lock_guard lock(mu);
    events.clear();
  }
};

using JsonInformer = Informer<JsonCodec>;

ReflectorOptions Options(bool watch_list = false, int page_size = 500) {
  ReflectorOptions o;
  o.resource = ServicesResource();
  o.label_selector = std::string(kProxyLabelSelector);
  o.page_size = page_size;
  o.use_watch_list = watch_list;
  o.backoff.initial = 10ms;
  o.backoff.cap = 100ms;
  return o;
}

ApiConnection Connect(const FakeApi& api) {
  RestConfig rc;
  rc.server = api.url();
  rc.origin = "test";
  return ApiConnection::Open(rc);
}

std::map<std::string, std::string> StoreState(const JsonInformer& inf) {
  std::map<std::string, std::string> out;
  for (const auto& item : inf.store().List()) out[item.key] = item.resource_version;
  return out;
}

// Waits until the informer's store, and the state its handlers were told about, equal the server's.
void ExpectConverges(const JsonInformer& inf, FakeApi& api, Recorder& rec) {
  auto want = api.State();
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < deadline) {
    bool same;
    {
      std::lock_guard lock(rec.mu);
      same = StoreState(inf) == want && rec.state == want;
    }
    if (same) break;
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(StoreState(inf), want);
  std::lock_guard lock(rec.mu);
  EXPECT_EQ(rec.state, want);
  EXPECT_TRUE(rec.problems.empty()) << ::testing::PrintToString(rec.problems);
}

void WaitFor(const std::function<bool()>& cond, std::chrono::milliseconds max = 10s) {
  auto deadline = std::chrono::steady_clock::now() + max;
  while (!cond() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(5ms);
  EXPECT_TRUE(cond());
}

TEST(ReflectorTest, PaginatedListThenWatchInOrder) {
  FakeApi api;
  for (int i = 0; i < 5; ++i) api.Put("default", "svc" + std::to_string(i));
  Recorder rec;
  JsonInformer inf(Connect(api), Options(false, 2), rec.Handlers());
  EXPECT_FALSE(inf.HasSynced());
  inf.Start();
  ASSERT_TRUE(inf.WaitForSync(5s));
  EXPECT_EQ(inf.store().size(), 5u);
  EXPECT_EQ(inf.LastSyncResourceVersion(), "105");
  WaitFor([&] { return api.WatchesOpened() == 1; });

  api.Put("default", "svc1", 1);
  api.Remove("default", "svc3");
  api.Put("kube-system", "dns");
  ExpectConverges(inf, api, rec);
  auto events = rec.Events();
  ASSERT_EQ(events.size(), 8u);
  EXPECT_EQ(std::vector<std::string>(events.begin() + 5, events.end()),
            (std::vector<std::string>{"update default/svc1@106", "delete default/svc3",
                                      "add kube-system/dns@108"}));
  EXPECT_EQ(rec.synced, 1);
  inf.Stop();

  // The requests kube-proxy's informer makes (k8s-api-and-conformance.md §1.1).
  auto reqs = api.requests();
  ASSERT_GE(reqs.size(), 4u);
  const std::string selector =
      "!service.kubernetes.io/headless,!service.kubernetes.io/service-proxy-name";
  EXPECT_EQ(reqs[0].target,
            "/api/v1/services?labelSelector=%21service.kubernetes.io%2Fheadless%2C%21service."
            "kubernetes.io%2Fservice-proxy-name&limit=2&resourceVersion=0");
  EXPECT_EQ(reqs[1].query,
            (std::map<std::string, std::string>{
                {"continue", "105:2"}, {"labelSelector", selector}, {"limit", "2"}}));
  EXPECT_EQ(reqs[2].query.at("continue"), "105:4");
  const auto& watch = reqs[3].query;
  EXPECT_EQ(watch.at("watch"), "true");
  EXPECT_EQ(watch.at("allowWatchBookmarks"), "true");
  EXPECT_EQ(watch.at("resourceVersion"), "105");
  EXPECT_EQ(watch.at("labelSelector"), selector);
  int timeout = std::stoi(watch.at("timeoutSeconds"));
  EXPECT_GE(timeout, 300);
  EXPECT_LT(timeout, 600);
  EXPECT_EQ(watch.at("timeout"), GoDuration(std::chrono::seconds(timeout)));
  EXPECT_EQ(watch.count("sendInitialEvents"), 0u);
}

TEST(ReflectorTest, BookmarkAdvancesResourceVersionOnly) {
  FakeApi api;
  api.Put("default", "a");
  Recorder rec;
  JsonInformer inf(Connect(api), Options(), rec.Handlers());
  inf.Start();
  ASSERT_TRUE(inf.WaitForSync(5s));
  WaitFor([&] { return api.WatchesOpened() == 1; });
  api.Put("default", "b");
  api.Bookmark();
  WaitFor([&] { return inf.LastSyncResourceVersion() == "102"; });
  api.PauseWatches(true);
  api.Put("default", "c");  // not delivered
  api.Bookmark();
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(inf.LastSyncResourceVersion(), "102");
  EXPECT_EQ(rec.Events(), (std::vector<std::string>{"add default/a@101", "add default/b@102"}));
}

// A watch that fell behind a compaction: the server ends it with 410 (an ERROR event or the HTTP
// status). The relist must turn what the informer holds into the server's state exactly.
void RelistAfterExpiry(bool as_http_status) {
  FakeApi api;
  api.SetExpiredAsHttpStatus(as_http_status);
  for (auto n : {"a", "b", "c", "d"}) api.Put("default", n);
  Recorder rec;
  JsonInformer inf(Connect(api), Options(), rec.Handlers());
  inf.Start();
  ASSERT_TRUE(inf.WaitForSync(5s));
  WaitFor([&] { return api.WatchesOpened() == 1; });
  api.PauseWatches(true);  // the client misses all of this:
  api.Put("default", "b", 1);
  api.Remove("default", "c");
  api.Put("default", "e");
  api.Compact();
  api.PauseWatches(false);
  rec.Clear();
  // The open stream ends (ERROR 410, or dropped so the re-watch from the old RV gets HTTP 410).
  api.InjectWatchFault(as_http_status ? "drop" : "error410");
  ExpectConverges(inf, api, rec);
  EXPECT_EQ(rec.Events(), (std::vector<std::string>{"update default/b@105", "delete default/c",
                                                    "add default/e@107"}));
  EXPECT_EQ(rec.synced, 1);
  // Watching again from the relist's RV; later changes still arrive.
  api.Put("default", "f");
  ExpectConverges(inf, api, rec);
}

TEST(ReflectorTest, ErrorEvent410Relists) { RelistAfterExpiry(false); }
TEST(ReflectorTest, Http410OnWatchRelists) { RelistAfterExpiry(true); }

TEST(ReflectorTest, ContinueTokenExpiredListsAgainInOneRequest) {
  FakeApi api;
  for (int i = 0; i < 5; ++i) api.Put("default", "svc" + std::to_string(i));
  api.ExpireNextContinue();
  Recorder rec;
  JsonInformer inf(Connect(api), Options(false, 2), rec.Handlers());
  inf.Start();
  ASSERT_TRUE(inf.WaitForSync(5s));
  ExpectConverges(inf, api, rec);
  EXPECT_EQ(rec.Events().size(), 5u);  // the first page's objects were not delivered twice
  auto reqs = api.requests();
  ASSERT_GE(reqs.size(), 3u);
  EXPECT_EQ(reqs[1].query.count("continue"), 1u);
  EXPECT_EQ(reqs[2].query.count("continue"), 0u);
  EXPECT_EQ(reqs[2].query.count("limit"), 0u);
  EXPECT_EQ(reqs[2].query.at("resourceVersion"), "0");
}

TEST(ReflectorTest, WatchListWhenTheServerSupportsIt) {
  FakeApi api;
  api.SetWatchList(FakeApi::WatchList::kSupport);
  api.Put("default", "a");
  api.Put("default", "b");
  Recorder rec;
  JsonInformer inf(Connect(api), Options(true), rec.Handlers());
  inf.Start();
  ASSERT_TRUE(inf.WaitForSync(5s));
  EXPECT_EQ(inf.LastSyncResourceVersion(), "102");
  api.Put("default", "c");
  ExpectConverges(inf, api, rec);
  auto reqs = api.requests();
  ASSERT_EQ(reqs.size(), 1u);  // no LIST at all
  EXPECT_EQ(reqs[0].query.at("sendInitialEvents"), "true");
  EXPECT_EQ(reqs[0].query.at("resourceVersionMatch"), "NotOlderThan");
  EXPECT_EQ(reqs[0].query.count("resourceVersion"), 0u);
  EXPECT_EQ(reqs[0].query.at("allowWatchBookmarks"), "true");
}

TEST(ReflectorTest, WatchListRefusedFallsBackToListAndWatchForGood) {
  FakeApi api;  // answers 422 like a server without the WatchList gate
  api.Put("default", "a");
  Recorder rec;
  JsonInformer inf(Connect(api), Options(true), rec.Handlers());
  inf.Start();
  ASSERT_TRUE(inf.WaitForSync(5s));
  WaitFor([&] { return api.WatchesOpened() == 2; });
  api.InjectWatchFault("error410");  // forces a relist: it must not try watch-list again
  api.Put("default", "b");
  ExpectConverges(inf, api, rec);
  int with_initial = 0;
  for (const auto& r : api.requests()) with_initial += r.query.count("sendInitialEvents");
  EXPECT_EQ(with_initial, 1);
}

TEST(ReflectorTest, WatchListIgnoredByServerFallsBack) {
  FakeApi api;
  api.SetWatchList(FakeApi::WatchList::kIgnore);  // synthetic ADDEDs, never the bookmark
  api.Put("default", "a");
  Recorder rec;
  ReflectorOptions o = Options(true);
  o.initial_events_timeout = 1s;
  JsonInformer inf(Connect(api), o, rec.Handlers());
  inf.Start();
  ASSERT_TRUE(inf.WaitForSync(5s));
  ExpectConverges(inf, api, rec);
  EXPECT_EQ(rec.Events().size(), 1u);
}

struct Fault {
  const char* name;
  bool relists;  // else: watches again from the last RV
};

class ReflectorFaultTest : public ::testing::TestWithParam<Fault> {};

// Each fault hits a watch that is behind by a few changes; afterwards the informer must hold the
// server's state, its handlers must have been told each change once, and watching must go on.
TEST_P(ReflectorFaultTest, RecoversWithTheRightState) {
  FakeApi api;
  for (auto n : {"a", "b", "c"}) api.Put("default", n);
  Recorder rec;
  JsonInformer inf(Connect(api), Options(), rec.Handlers());
  inf.Start();
  ASSERT_TRUE(inf.WaitForSync(5s));
  WaitFor([&] { return api.WatchesOpened() == 1; });
  api.PauseWatches(true);
  api.Put("default", "a", 1);
  api.Remove("default", "b");
  api.Put("default", "d");
  api.InjectWatchFault(GetParam().name);
  api.PauseWatches(false);
  ExpectConverges(inf, api, rec);
  auto events = rec.Events();
  EXPECT_EQ(
      std::vector<std::string>(events.begin() + 3, events.end()),
      (std::vector<std::string>{"update default/a@104", "delete default/b", "add default/d@106"}));
  int lists = 0;
  for (const auto& r : api.requests()) lists += r.query.count("watch") == 0;
  EXPECT_EQ(lists, GetParam().relists ? 2 : 1) << GetParam().name;
  api.Put("default", "e");
  ExpectConverges(inf, api, rec);
}

INSTANTIATE_TEST_SUITE_P(Faults, ReflectorFaultTest,
                         ::testing::Values(Fault{"truncate", false}, Fault{"abort", false},
                                           Fault{"drop", true}, Fault{"http500", false},
                                           Fault{"malformed", true}, Fault{"unknown-kind", true},
                                           Fault{"status-object", true}, Fault{"error500", true}),
                         [](const auto& info) {
                           std::string n = info.param.name;
                           std::erase(n, '-');
                           return n;
                         });

TEST(ReflectorTest, ListErrorsAreRetried) {
  FakeApi api;
  api.Put("default", "a");
  api.InjectListFault("http500");
  api.InjectListFault("status200");
  Recorder rec;
  JsonInformer inf(Connect(api), Options(), rec.Handlers());
  inf.Start();
  ASSERT_TRUE(inf.WaitForSync(5s));
  ExpectConverges(inf, api, rec);
  int lists = 0;
  for (const auto& r : api.requests()) lists += r.query.count("watch") == 0;
  EXPECT_EQ(lists, 3);
}

TEST(ReflectorTest, StopIsPromptDuringAWatchAndDuringBackoff) {
  FakeApi api;
  api.Put("default", "a");
  {
    JsonInformer inf(Connect(api), Options());
    inf.Start();
    ASSERT_TRUE(inf.WaitForSync(5s));
    WaitFor([&] { return api.WatchesOpened() == 1; });
    auto start = std::chrono::steady_clock::now();
    inf.Stop();
    EXPECT_LT(std::chrono::steady_clock::now() - start, 500ms);
  }
  ReflectorOptions o = Options();
  o.resource.path = "/nowhere";  // 404 forever: the reflector sits in its backoff
  o.backoff.initial = 10s;
  o.backoff.cap = 10s;
  JsonInformer inf(Connect(api), o);
  inf.Start();
  std::this_thread::sleep_for(100ms);
  auto start = std::chrono::steady_clock::now();
  inf.Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 500ms);
  EXPECT_FALSE(inf.HasSynced());
}

// A codec that rejects objects whose spec.v is negative, as the API layer rejects invalid ones.
struct PickyCodec {
  using Object = Json;
  static Object Parse(api::JsonElement e) {
    Json o = api::ToNlohmann(e);
    if (o["spec"]["v"].get<int>() < 0) throw std::runtime_error("spec.v: must not be negative");
    return o;
  }
};

TEST(ReflectorTest, RejectedObjectsAreAbsent) {
  FakeApi api;
  api.Put("default", "good");
  api.Put("default", "bad", -1);
  std::vector<std::string> events;
  std::mutex mu;
  EventHandlers<Json> h;
  h.on_add = [&](const Json& o) {
    std::lock_guard lock(mu);
    events.push_back("add " + ObjectKey(o));
  };
  h.on_delete = [&](const Json& o) {
    std::lock_guard lock(mu);
    events.push_back("delete " + ObjectKey(o));
  };
  Informer<PickyCodec> inf(Connect(api), Options(), h);
  inf.Start();
  ASSERT_TRUE(inf.WaitForSync(5s));
  EXPECT_EQ(inf.store().size(), 1u);
  WaitFor([&] { return api.WatchesOpened() == 1; });
  api.Put("default", "good", -5);  // becomes invalid: removed, as kube-proxy drops it
  WaitFor([&] { return inf.store().size() == 0; });
  std::lock_guard lock(mu);
  EXPECT_EQ(events, (std::vector<std::string>{"add default/good", "delete default/good"}));
}

}  // namespace
}  // namespace sluice::kube
