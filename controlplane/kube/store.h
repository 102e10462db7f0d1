// The informer's cache: objects keyed by "namespace/name" (or "name"), each with the
// resourceVersion it was stored at. Mutations return the changes they made so the informer can
// tell its handlers; Replace (after a relist) works out the adds, updates and deletes that turn the
// old contents into the new, so nothing is lost or left stale. Reads are thread-safe.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace sluice::kube {

template <typename T>
class Store {
 public:
  using Ptr = std::shared_ptr<const T>;

  struct Item {
    std::string key;
    std::string resource_version;
    Ptr object;
  };

  struct Change {
    enum class Kind { kAdd, kUpdate, kDelete };
    Kind kind;
    std::string key;
    Ptr old_object;  // kUpdate, kDelete
    Ptr new_object;  // kAdd, kUpdate
  };

  Ptr Get(const std::string& key) const {
    std::lock_guard lock(mu_);
    auto it = items_.find(key);
    return it == items_.end() ? nullptr : it->second.object;
  }
  std::string ResourceVersionOf(const std::string& key) const {
    std::lock_guard lock(mu_);
    auto it = items_.find(key);
    return it == items_.end() ? "" : it->second.resource_version;
  }
  // Sorted by key.
  std::vector<Item> List() const {
    std::lock_guard lock(mu_);
    std::vector<Item> out;
    out.reserve(items_.size());
    for (const auto& [key, e] : items_) out.push_back({key, e.resource_version, e.object});
    return out;
  }
  size_t size() const {
    std::lock_guard lock(mu_);
    return items_.size();
  }

  // ADDED/MODIFIED. The same resourceVersion again (a replayed event) changes nothing.
  std::optional<Change> Upsert(Item item) {
    std::lock_guard lock(mu_);
    auto it = items_.find(item.key);
    if (it == items_.end()) {
      Change c{Change::Kind::kAdd, item.key, nullptr, item.object};
      items_.emplace(std::move(item.key), Entry{std::move(item.resource_version), item.object});
      return c;
    }
    if (it->second.resource_version == item.resource_version) return std::nullopt;
    Change c{Change::Kind::kUpdate, item.key, it->second.object, item.object};
    it->second = Entry{std::move(item.resource_version), std::move(item.object)};
    return c;
  }

  // DELETED (or an object that can no longer be represented). Nothing if it was not there.
  std::optional<Change> Delete(const std::string& key) {
    std::lock_guard lock(mu_);
    auto it = items_.find(key);
    if (it == items_.end()) return std::nullopt;
    Change c{Change::Kind::kDelete, key, it->second.object, nullptr};
    items_.erase(it);
    return c;
  }

  // The complete state after a (re)list. Changes come in key order; objects whose
  // resourceVersion did not change produce none.
  std::vector<Change> Replace(std::vector<Item> items) {
    std::map<std::string, Entry> next;
    for (auto& item : items) {
      next.insert_or_assign(std::move(item.key),
                            Entry{std::move(item.resource_version), std::move(item.object)});
    }
    std::lock_guard lock(mu_);
    std::vector<Change> changes;
    auto old_it = items_.begin();
    auto new_it = next.begin();
    while (old_it != items_.end() || new_it != next.end()) {
      if (new_it == next.end() || (old_it != items_.end() && old_it->first < new_it->first)) {
        changes.push_back({Change::Kind::kDelete, old_it->first, old_it->second.object, nullptr});
        ++old_it;
      } else if (old_it == items_.end() || new_it->first < old_it->first) {
        changes.push_back({Change::Kind::kAdd, new_it->first, nullptr, new_it->second.object});
        ++new_it;
      } else {
        if (old_it->second.resource_version != new_it->second.resource_version) {
          changes.push_back(
              {Change::Kind::kUpdate, new_it->first, old_it->second.object, new_it->second.object});
        } else {
          new_it->second.object = old_it->second.object;  // unchanged: keep the one handed out
        }
        ++old_it;
        ++new_it;
      }
    }
    items_ = std::move(next);
    return changes;
  }

 private:
  struct Entry {
    std::string resource_version;
    Ptr object;
  };
  mutable std::mutex mu_;
  std::map<std::string, Entry> items_;
};

}  // namespace sluice::kube
