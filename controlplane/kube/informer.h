// A reflector, its store and event handlers: the C++ counterpart of a client-go shared informer
// for one collection. Objects become typed values through a codec:
//
//   struct ServiceCodec {
//     using Object = api::Service;
//     static Object Parse(api::JsonElement object);  // throws when the object is rejected
//   };
//
// The element points into the reflector's parser (simdjson's DOM): the codec reads it during the
// call and keeps nothing of it.
//
// Handlers run on the informer's thread, one at a time, in the order the server sent the changes,
// after the store already holds the new state. An object the codec rejects is logged with its
// identity and treated as absent (a previous version is deleted), as kube-proxy drops an invalid
// Service from its service map.
#pragma once

#include <simdjson.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>
#include <type_traits>

#include "common/log.h"
#include "controlplane/api/object_meta.h"
#include "controlplane/kube/reflector.h"
#include "controlplane/kube/store.h"

namespace sluice::kube {

template <typename T>
struct EventHandlers {
  std::function<void(const T&)> on_add;
  std::function<void(const T& old_object, const T& new_object)> on_update;
  std::function<void(const T& last_state)> on_delete;
  // Once, after the changes of the first complete listing were delivered.
  std::function<void()> on_synced;
};

// Keeps the JSON as it came, as nlohmann::json (tools, tests).
struct JsonCodec {
  using Object = nlohmann::json;
  static Object Parse(api::JsonElement object) { return api::ToNlohmann(object); }
};

template <typename Codec>
class Informer : private ReflectorSink {
 public:
  using Object = typename Codec::Object;
  // Exactly this signature: nlohmann::json would quietly convert from an element (wrongly).
  static_assert(std::is_same_v<decltype(&Codec::Parse), Object (*)(api::JsonElement)>,
                "Codec::Parse must take an api::JsonElement");

  Informer(ApiConnection connection, ReflectorOptions options, EventHandlers<Object> handlers = {})
      : handlers_(std::move(handlers)),
        reflector_(std::move(connection), std::move(options), *this) {}
  ~Informer() override { Stop(); }
  Informer(const Informer&) = delete;
  Informer& operator=(const Informer&) = delete;

  void Start() {
    if (!thread_.joinable()) {
      thread_ = std::jthread([this](std::stop_token stop) { reflector_.Run(stop); });
    }
  }
  // Cancels any request in flight and joins the thread; no handler runs after it returns.
  void Stop() {
    if (thread_.joinable()) {
      thread_.request_stop();
      thread_.join();
    }
  }

  bool HasSynced() const { return synced_.load(); }
  bool WaitForSync(std::chrono::milliseconds timeout) const {
    std::unique_lock lock(sync_mu_);
    return sync_cv_.wait_for(lock, timeout, [this] { return synced_.load(); });
  }
  const Store<Object>& store() const { return store_; }
  std::string LastSyncResourceVersion() const { return reflector_.last_sync_resource_version(); }

 private:
  using Change = typename Store<Object>::Change;

  // nullptr when the codec rejects it (logged).
  std::shared_ptr<const Object> ParseLogged(api::JsonElement object, const std::string& key,
                                            const std::string& rv) {
    try {
      return std::make_shared<const Object>(Codec::Parse(object));
    } catch (const std::exception& e) {
      SLOG_ERROR << reflector_.options().resource.kind << " " << key << " rv=" << rv
                 << ": rejected: " << e.what()
                 << (store_.Get(key) ? "; removing the previous version" : "");
      return nullptr;
    }
  }

  void Deliver(const Change& c) {
    switch (c.kind) {
      case Change::Kind::kAdd:
        if (handlers_.on_add) handlers_.on_add(*c.new_object);
        break;
      case Change::Kind::kUpdate:
        if (handlers_.on_update) handlers_.on_update(*c.old_object, *c.new_object);
        break;
      case Change::Kind::kDelete:
        if (handlers_.on_delete) handlers_.on_delete(*c.old_object);
        break;
    }
  }

  // A listing is parsed object by object as it arrives, so only typed values accumulate, never
  // the listing's JSON. A rejected object is simply not part of it (logged; a stored version is
  // then deleted by the Replace).
  void ListObject(const std::string& key, api::JsonElement object) override {
    std::string rv = api::ObjectResourceVersion(object);
    auto obj = ParseLogged(object, key, rv);
    if (obj) {
      listing_.insert_or_assign(key,
                                typename Store<Object>::Item{key, std::move(rv), std::move(obj)});
    } else {
      listing_.erase(key);
    }
  }
  void ListForget(const std::string& key) override { listing_.erase(key); }
  void ListAbort() override { listing_.clear(); }
  void ListEnd(const std::string&) override {
    std::vector<typename Store<Object>::Item> typed;
    typed.reserve(listing_.size());
    for (auto& [key, item] : listing_) typed.push_back(std::move(item));
    listing_.clear();
    ReplaceWith(std::move(typed));
  }

  void ReplaceWith(std::vector<typename Store<Object>::Item> typed) {
    for (const auto& c : store_.Replace(std::move(typed))) Deliver(c);
    if (!synced_.load()) {
      {
        std::lock_guard lock(sync_mu_);
        synced_.store(true);
      }
      sync_cv_.notify_all();
      if (handlers_.on_synced) handlers_.on_synced();
    }
  }

  void Upsert(api::JsonElement object) override {
    std::string key = api::ObjectKey(object);
    std::string rv = api::ObjectResourceVersion(object);
    auto obj = ParseLogged(object, key, rv);
    std::optional<Change> c = obj ? store_.Upsert({key, rv, std::move(obj)}) : store_.Delete(key);
    if (c) Deliver(*c);
  }

  // Handlers get the DELETED event's object (the last state, at the deletion's
  // resourceVersion), or the stored one when the codec rejects it.
  void Delete(api::JsonElement object) override {
    std::string key = api::ObjectKey(object);
    auto c = store_.Delete(key);
    if (!c) return;
    try {
      c->old_object = std::make_shared<const Object>(Codec::Parse(object));
    } catch (const std::exception&) {
    }
    Deliver(*c);
  }

  EventHandlers<Object> handlers_;
  Store<Object> store_;
  std::map<std::string, typename Store<Object>::Item> listing_;  // a listing in progress
  std::atomic<bool> synced_{false};
  mutable std::mutex sync_mu_;
  mutable std::condition_variable sync_cv_;
  Reflector reflector_;
  std::jthread thread_;  // last: stopped and joined before the rest is destroyed
};

}  // namespace sluice::kube
