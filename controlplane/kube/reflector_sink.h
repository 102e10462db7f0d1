// What a reflector feeds: the informer's store. Calls come from the reflector's thread, in the
// order the server sent them.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace sluice::kube {

class ReflectorSink {
 public:
  virtual ~ReflectorSink() = default;
  // A complete listing at resource_version: whatever is not in `items` is gone.
  virtual void Replace(std::vector<nlohmann::json> items, const std::string& resource_version) = 0;
  // ADDED or MODIFIED: the object as it now is.
  virtual void Upsert(nlohmann::json object) = 0;
  // DELETED: the object's last state.
  virtual void Delete(nlohmann::json object) = 0;

  // The same complete listing, delivered as it arrives (LIST pages, watch-list initial events),
  // so a sink can turn each object into its own representation at once instead of the reflector
  // holding the whole listing as JSON (for 10,000 EndpointSlices, hundreds of MB). Objects are
  // keyed by "namespace/name"; a later one replaces an earlier one of the same key, ListForget
  // drops one. Nothing takes effect before ListEnd; ListAbort throws the partial listing away.
  // The defaults collect the JSON and call Replace at ListEnd.
  virtual void ListObject(const std::string& key, nlohmann::json object) {
    listing_.insert_or_assign(key, std::move(object));
  }
  virtual void ListForget(const std::string& key) { listing_.erase(key); }
  virtual void ListEnd(const std::string& resource_version) {
    std::vector<nlohmann::json> items;
    items.reserve(listing_.size());
    for (auto& [key, obj] : listing_) items.push_back(std::move(obj));
    listing_.clear();
    Replace(std::move(items), resource_version);
  }
  virtual void ListAbort() { listing_.clear(); }

 private:
  std::map<std::string, nlohmann::json> listing_;
};

}  // namespace sluice::kube
