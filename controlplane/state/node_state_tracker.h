// Change tracking between syncs: the tracker keeps the last computed NodeState, takes the Services
// ClusterState reports as touched, recomputes only those and hands the backends what differs, per
// Service, so a one-endpoint change costs one Service's work however large the cluster is.
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "controlplane/state/cluster_state.h"
#include "controlplane/state/node_state.h"

namespace sluice::state {

struct ServiceDiff {
  std::string key;         // "namespace/name"
  ServiceStatePtr before;  // nullptr: the Service is new to this node
  ServiceStatePtr after;   // nullptr: the Service is gone (or no longer proxied)
};

struct NodeStateChange {
  std::vector<ServiceDiff> services;  // in key order
  bool node_changed = false;          // NodeInfo differs (addresses, zone, pod CIDRs, deletion)
  // Recomputed everything (first sync, node topology change, or asked for a full pass).
  bool full = false;
  // What the ClusterState recorded, for the changes-total metrics and programming latency.
  size_t service_events = 0;
  size_t endpoint_events = 0;
  std::map<std::string, std::chrono::system_clock::time_point, std::less<>> trigger_times;

  bool empty() const { return services.empty() && !node_changed; }
};

class NodeStateTracker {
 public:
  explicit NodeStateTracker(NodeStateOptions options);

  // Takes ClusterState's pending changes and brings the state up to date. `full` recomputes every
  // Service (the periodic resync): still only real differences are reported.
  NodeStateChange Update(ClusterState& cluster, bool full = false);

  const NodeState& state() const { return state_; }
  const NodeStateOptions& options() const { return options_; }

 private:
  void Recompute(const ClusterState& cluster, const std::string& key, NodeStateChange& change);

  NodeStateOptions options_;
  NodeState state_;
};

// The whole NodeState at once, from scratch: what the tracker's incremental updates must always
// equal (tests and the dry-run full print use it).
NodeState ComputeNodeState(const ClusterState& cluster, const NodeStateOptions& options);

}  // namespace sluice::state
