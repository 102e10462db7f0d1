// What a reflector feeds: the informer's store. Calls come from the reflector's thread, in the
// order the server sent them.
//
// Objects arrive as simdjson DOM elements (api::JsonElement, <simdjson.h>) that point into the
// reflector's parser: valid only during the call. A sink turns them into what it keeps at once
// (the informer's codec parses them into typed values); none is kept as JSON on the way.
#pragma once

#include <simdjson.h>

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "controlplane/api/json_dom.h"

namespace sluice::kube {

class ReflectorSink {
 public:
  virtual ~ReflectorSink() = default;
  // ADDED or MODIFIED: the object as it now is.
  virtual void Upsert(api::JsonElement object) = 0;
  // DELETED: the object's last state.
  virtual void Delete(api::JsonElement object) = 0;

  // A complete listing, delivered as it arrives (LIST pages, watch-list initial events), so a sink
  // turns each object into its own representation at once instead of the reflector holding the
  // whole listing (for 10,000 EndpointSlices, hundreds of MB). Objects are keyed by
  // "namespace/name"; a later one replaces an earlier one of the same key, ListForget drops one.
  // Nothing takes effect before ListEnd (whatever the listing lacks is gone then); ListAbort
  // throws the partial listing away.
  virtual void ListObject(const std::string& key, api::JsonElement object) = 0;
  virtual void ListForget(const std::string& key) = 0;
  virtual void ListEnd(const std::string& resource_version) = 0;
  virtual void ListAbort() = 0;
};

// A sink that keeps objects as nlohmann::json (tests, tools): a listing is collected and handed
// over whole to Replace.
class JsonSink : public ReflectorSink {
 public:
  virtual void Replace(std::vector<nlohmann::json> items, const std::string& resource_version) = 0;
  virtual void UpsertJson(nlohmann::json object) = 0;
  virtual void DeleteJson(nlohmann::json object) = 0;

  void Upsert(api::JsonElement object) final { UpsertJson(api::ToNlohmann(object)); }
  void Delete(api::JsonElement object) final { DeleteJson(api::ToNlohmann(object)); }
  void ListObject(const std::string& key, api::JsonElement object) override {
    listing_.insert_or_assign(key, api::ToNlohmann(object));
  }
  void ListForget(const std::string& key) override { listing_.erase(key); }
  void ListEnd(const std::string& resource_version) override {
    std::vector<nlohmann::json> items;
    items.reserve(listing_.size());
    for (auto& [key, obj] : listing_) items.push_back(std::move(obj));
    listing_.clear();
    Replace(std::move(items), resource_version);
  }
  void ListAbort() override { listing_.clear(); }

 private:
  std::map<std::string, nlohmann::json> listing_;
};

}  // namespace sluice::kube
