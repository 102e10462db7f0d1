#include "controlplane/state/cluster_state.h"

#include "common/log.h"

namespace sluice::state {

namespace {

// endpoints.kubernetes.io/last-change-trigger-time: when the change that produced this slice
// version happened (a pod became ready, ...), set by the EndpointSlice controller.
constexpr std::string_view kTriggerTimeAnnotation =
    "endpoints.kubernetes.io/last-change-trigger-time";

std::optional<std::chrono::system_clock::time_point> TriggerTime(const api::EndpointSlice& s) {
  auto text = s.metadata.Annotation(kTriggerTimeAnnotation);
  if (!text) return std::nullopt;
  auto ts = api::ParseTimestamp(*text);
  if (!ts) return std::nullopt;
  return std::chrono::system_clock::time_point(*ts);
}

std::string ServiceKeyOf(const api::EndpointSlice& s) {
  return s.metadata.namespace_name + "/" + std::string(s.ServiceName());
}

}  // namespace

bool ExcludedByProxyLabels(const api::StringMap& labels) {
  return labels.contains(kServiceProxyNameLabel) || labels.contains(kHeadlessLabel);
}

ClusterState::ClusterState(std::string node_name) : node_name_(std::move(node_name)) {}

void ClusterState::SetOnChange(std::function<void()> on_change) {
  std::lock_guard lock(mu_);
  on_change_ = std::move(on_change);
}

void ClusterState::Notify() {
  std::function<void()> f;
  {
    std::lock_guard lock(mu_);
    f = on_change_;
  }
  if (f) f();
}

void ClusterState::TouchLocked(const std::string& service_key) {
  pending_.services.insert(service_key);
}

void ClusterState::UpsertService(ServicePtr service) {
  if (!service) return;
  if (ExcludedByProxyLabels(service->metadata.labels)) {
    DeleteService(service->metadata.Key());
    return;
  }
  std::string key = service->metadata.Key();
  {
    std::lock_guard lock(mu_);
    auto it = services_.find(key);
    if (it != services_.end()) {
      if (it->second == service || *it->second == *service) return;
      it->second = std::move(service);
    } else {
      services_.emplace(key, std::move(service));
    }
    TouchLocked(key);
    ++pending_.service_events;
  }
  Notify();
}

void ClusterState::DeleteService(const std::string& key) {
  {
    std::lock_guard lock(mu_);
    if (services_.erase(key) == 0) return;
    TouchLocked(key);
    ++pending_.service_events;
  }
  Notify();
}

void ClusterState::UpsertEndpointSlice(EndpointSlicePtr slice) {
  if (!slice) return;
  std::string key = slice->metadata.Key();
  if (ExcludedByProxyLabels(slice->metadata.labels)) {
    DeleteEndpointSlice(key);
    return;
  }
  std::string service_key = ServiceKeyOf(*slice);
  {
    std::lock_guard lock(mu_);
    auto it = slices_.find(key);
    if (it != slices_.end()) {
      if (it->second == slice || *it->second == *slice) return;
      // A slice relabelled to another Service (not done by the controller, but possible by hand)
      // leaves the old one.
      std::string old_service = ServiceKeyOf(*it->second);
      if (old_service != service_key) {
        auto& set = slices_by_service_[old_service];
        set.erase(key);
        if (set.empty()) slices_by_service_.erase(old_service);
        TouchLocked(old_service);
      }
      it->second = slice;
    } else {
      slices_.emplace(key, slice);
    }
    slices_by_service_[service_key].insert(key);
    TouchLocked(service_key);
    ++pending_.endpoint_events;
    if (auto t = TriggerTime(*slice)) {
      auto [pos, inserted] = pending_.trigger_times.emplace(service_key, *t);
      if (!inserted && *t < pos->second) pos->second = *t;
    }
  }
  Notify();
}

void ClusterState::DeleteEndpointSlice(const std::string& key) {
  {
    std::lock_guard lock(mu_);
    auto it = slices_.find(key);
    if (it == slices_.end()) return;
    std::string service_key = ServiceKeyOf(*it->second);
    slices_.erase(it);
    auto by = slices_by_service_.find(service_key);
    if (by != slices_by_service_.end()) {
      by->second.erase(key);
      if (by->second.empty()) slices_by_service_.erase(by);
    }
    TouchLocked(service_key);
    ++pending_.endpoint_events;
  }
  Notify();
}

void ClusterState::UpsertNode(NodePtr node) {
  if (!node) return;
  const std::string& name = node->metadata.name;
  {
    std::lock_guard lock(mu_);
    auto it = nodes_.find(name);
    NodePtr old = it == nodes_.end() ? nullptr : it->second;
    if (old && (old == node || *old == *node)) return;
    // Only this node's topology labels change which endpoints it uses; other nodes matter to the
    // pod network, which reads them directly.
    if (name == node_name_ && (!old || old->metadata.labels != node->metadata.labels)) {
      pending_.all = true;
    }
    nodes_.insert_or_assign(name, std::move(node));
  }
  Notify();
}

void ClusterState::DeleteNode(const std::string& name) {
  {
    std::lock_guard lock(mu_);
    if (nodes_.erase(name) == 0) return;
    if (name == node_name_) pending_.all = true;
  }
  Notify();
}

void ClusterState::RegisterSource(std::string name) {
  std::lock_guard lock(mu_);
  sources_synced_.emplace(std::move(name), false);
}

void ClusterState::MarkSourceSynced(const std::string& name) {
  {
    std::lock_guard lock(mu_);
    auto it = sources_synced_.find(name);
    if (it == sources_synced_.end() || it->second) return;
    it->second = true;
    pending_.all = true;
  }
  Notify();
}

bool ClusterState::AllSourcesSynced() const {
  std::lock_guard lock(mu_);
  for (const auto& [name, synced] : sources_synced_) {
    if (!synced) return false;
  }
  return true;
}

PendingChanges ClusterState::TakePendingChanges() {
  std::lock_guard lock(mu_);
  PendingChanges out = std::move(pending_);
  pending_ = PendingChanges{};
  return out;
}

size_t ClusterState::PendingServiceEvents() const {
  std::lock_guard lock(mu_);
  return pending_.service_events;
}

size_t ClusterState::PendingEndpointEvents() const {
  std::lock_guard lock(mu_);
  return pending_.endpoint_events;
}

ServicePtr ClusterState::GetService(std::string_view key) const {
  std::lock_guard lock(mu_);
  auto it = services_.find(key);
  return it == services_.end() ? nullptr : it->second;
}

std::vector<EndpointSlicePtr> ClusterState::SlicesOf(std::string_view service_key) const {
  std::lock_guard lock(mu_);
  std::vector<EndpointSlicePtr> out;
  auto by = slices_by_service_.find(service_key);
  if (by == slices_by_service_.end()) return out;
  out.reserve(by->second.size());
  for (const auto& key : by->second) {
    auto it = slices_.find(key);
    if (it != slices_.end()) out.push_back(it->second);
  }
  return out;
}

NodePtr ClusterState::GetNode(std::string_view name) const {
  std::lock_guard lock(mu_);
  auto it = nodes_.find(name);
  return it == nodes_.end() ? nullptr : it->second;
}

std::vector<std::string> ClusterState::ServiceKeys() const {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  out.reserve(services_.size());
  for (const auto& [key, s] : services_) out.push_back(key);
  return out;
}

std::vector<NodePtr> ClusterState::Nodes() const {
  std::lock_guard lock(mu_);
  std::vector<NodePtr> out;
  out.reserve(nodes_.size());
  for (const auto& [name, n] : nodes_) out.push_back(n);
  return out;
}

size_t ClusterState::ServiceCount() const {
  std::lock_guard lock(mu_);
  return services_.size();
}

size_t ClusterState::EndpointSliceCount() const {
  std::lock_guard lock(mu_);
  return slices_.size();
}

}  // namespace sluice::state
