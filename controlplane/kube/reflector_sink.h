// What a reflector feeds: the informer's store. Calls come from the reflector's thread, in the
// order the server sent them.
#pragma once

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
};

}  // namespace sluice::kube
