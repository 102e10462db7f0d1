// ClusterState: what the sources know of the cluster, as typed, validated values. The API client
// and the manifest directory both fill it through the same calls; the NodeState computation reads
// it. Every mutation records which Services it touched (a Service, or any of its EndpointSlices),
// so the sync loop recomputes only those; a change to this node's own Node (its zone label) touches
// every Service.
//
// Thread-safe: sources call the mutators from their own threads; the sync loop takes the pending
// changes and a consistent view under the same lock.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "controlplane/api/endpoint_slice.h"
#include "controlplane/api/node.h"
#include "controlplane/api/service.h"

namespace sluice::state {

using ServicePtr = std::shared_ptr<const api::Service>;
using EndpointSlicePtr = std::shared_ptr<const api::EndpointSlice>;
using NodePtr = std::shared_ptr<const api::Node>;

// The labels that keep a Service (and its slices) away from the default proxy, as kube-proxy's
// informer label selector does: service.kubernetes.io/service-proxy-name (any value) and
// service.kubernetes.io/headless.
inline constexpr std::string_view kServiceProxyNameLabel =
    "service.kubernetes.io/service-proxy-name";
inline constexpr std::string_view kHeadlessLabel = "service.kubernetes.io/headless";
bool ExcludedByProxyLabels(const api::StringMap& labels);

// What changed since the sync loop last took the pending changes.
struct PendingChanges {
  std::set<std::string, std::less<>> services;  // "namespace/name" of every touched Service
  bool all = false;                             // recompute everything (node topology changed)
  size_t service_events = 0;                    // Service adds/updates/deletes
  size_t endpoint_events = 0;                   // EndpointSlice adds/updates/deletes
  // Per touched Service, the earliest endpoints.kubernetes.io/last-change-trigger-time seen on a
  // slice change: the start of kube-proxy's network programming latency.
  std::map<std::string, std::chrono::system_clock::time_point, std::less<>> trigger_times;

  bool empty() const { return services.empty() && !all; }
};

class ClusterState {
 public:
  explicit ClusterState(std::string node_name);

  const std::string& node_name() const { return node_name_; }

  // Called after every mutation that left changes pending (outside the lock): wakes the runner.
  void SetOnChange(std::function<void()> on_change);

  // Mutators. Keys are "namespace/name" ("name" for Nodes). An upsert with an object equal to the
  // stored one records nothing. Objects excluded by the proxy labels are treated as absent.
  void UpsertService(ServicePtr service);
  void DeleteService(const std::string& key);
  void UpsertEndpointSlice(EndpointSlicePtr slice);
  void DeleteEndpointSlice(const std::string& key);
  void UpsertNode(NodePtr node);
  void DeleteNode(const std::string& name);

  // A source reports its first complete listing. The sync loop waits for every registered source
  // before the first sync, as kube-proxy waits for its informers, so it never programs a partial
  // view (every Service with no endpoints would REJECT).
  void RegisterSource(std::string name);
  void MarkSourceSynced(const std::string& name);
  bool AllSourcesSynced() const;

  // Takes (and clears) what changed since the last call.
  PendingChanges TakePendingChanges();
  // Counts for the "changes pending" gauges, without taking them.
  size_t PendingServiceEvents() const;
  size_t PendingEndpointEvents() const;

  // Reads. Each returns a consistent copy of pointers; the objects are immutable.
  ServicePtr GetService(std::string_view key) const;
  // The slices labelled with this Service's name, in key order.
  std::vector<EndpointSlicePtr> SlicesOf(std::string_view service_key) const;
  NodePtr GetNode(std::string_view name) const;
  NodePtr ThisNode() const { return GetNode(node_name_); }
  std::vector<std::string> ServiceKeys() const;  // sorted
  std::vector<NodePtr> Nodes() const;            // sorted by name
  size_t ServiceCount() const;
  size_t EndpointSliceCount() const;

 private:
  void TouchLocked(const std::string& service_key);
  void Notify();

  const std::string node_name_;
  mutable std::mutex mu_;
  std::function<void()> on_change_;
  std::map<std::string, ServicePtr, std::less<>> services_;
  std::map<std::string, EndpointSlicePtr, std::less<>> slices_;  // by slice key
  // service key -> slice keys
  std::map<std::string, std::set<std::string, std::less<>>, std::less<>> slices_by_service_;
  std::map<std::string, NodePtr, std::less<>> nodes_;
  std::map<std::string, bool, std::less<>> sources_synced_;
  PendingChanges pending_;
};

}  // namespace sluice::state
