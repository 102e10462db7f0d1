#include "controlplane/state/node_state_tracker.h"

#include <algorithm>

namespace sluice::state {

NodeStateTracker::NodeStateTracker(NodeStateOptions options) : options_(std::move(options)) {
  state_.node = ComputeNodeInfo(options_.node_name, nullptr);
}

void NodeStateTracker::Recompute(const ClusterState& cluster, const std::string& key,
                                 NodeStateChange& change) {
  ServiceStatePtr after;
  if (ServicePtr svc = cluster.GetService(key)) {
    auto slices = cluster.SlicesOf(key);
    if (auto computed = ComputeServiceState(*svc, slices, state_.node, options_)) {
      after = std::make_shared<const ServiceState>(std::move(*computed));
    }
  }
  auto it = state_.services.find(key);
  ServiceStatePtr before = it == state_.services.end() ? nullptr : it->second;
  if (!before && !after) return;
  if (before && after && *before == *after) return;
  if (after) {
    state_.services.insert_or_assign(key, after);
  } else {
    state_.services.erase(it);
  }
  change.services.push_back({key, std::move(before), std::move(after)});
}

NodeStateChange NodeStateTracker::Update(ClusterState& cluster, bool full) {
  PendingChanges pending = cluster.TakePendingChanges();
  NodeStateChange change;
  change.service_events = pending.service_events;
  change.endpoint_events = pending.endpoint_events;
  change.trigger_times = std::move(pending.trigger_times);

  NodePtr node = cluster.ThisNode();
  NodeInfo info = ComputeNodeInfo(options_.node_name, node.get());
  bool topology_changed = info.zone != state_.node.zone;
  if (info != state_.node) {
    change.node_changed = true;
    state_.node = std::move(info);
  }

  change.full = full || pending.all || topology_changed;
  if (change.full) {
    // Every Service known now, plus every one we had (to notice the ones that went away).
    std::vector<std::string> keys = cluster.ServiceKeys();
    for (const auto& [key, s] : state_.services) keys.push_back(key);
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
    for (const auto& key : keys) Recompute(cluster, key, change);
  } else {
    for (const auto& key : pending.services) Recompute(cluster, key, change);
  }
  return change;
}

NodeState ComputeNodeState(const ClusterState& cluster, const NodeStateOptions& options) {
  NodeState state;
  NodePtr node = cluster.GetNode(options.node_name);
  state.node = ComputeNodeInfo(options.node_name, node.get());
  for (const auto& key : cluster.ServiceKeys()) {
    ServicePtr svc = cluster.GetService(key);
    if (!svc) continue;
    auto slices = cluster.SlicesOf(key);
    if (auto computed = ComputeServiceState(*svc, slices, state.node, options)) {
      state.services.emplace(key, std::make_shared<const ServiceState>(std::move(*computed)));
    }
  }
  return state;
}

}  // namespace sluice::state
