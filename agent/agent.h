// The agent: one source (API server or manifest directory) -> ClusterState -> NodeStateTracker ->
// the selected backend, driven by the sync runner, with the healthz and metrics servers.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <ostream>
#include <string>

#include "agent/agent_config.h"
#include "agent/pod_network.h"
#include "dataplane/conntrack/conntrack.h"
#include "controlplane/state/cluster_state.h"
#include "controlplane/state/node_state_tracker.h"
#include "proxy/backend.h"
#include "proxy/http_server.h"
#include "proxy/metrics.h"
#include "proxy/proxy_health.h"
#include "proxy/proxy_metrics.h"
#include "proxy/service_health.h"
#include "proxy/sync_runner.h"

namespace sluice::sources {
class ApiSource;
class ManifestSource;
}  // namespace sluice::sources

namespace sluice::agent {

// The node name kube-proxy would use: --hostname-override, else the host name, lower-cased.
std::string NodeName(const AgentConfig& config);
// The pod network options of the config's --pod-network flags.
PodNetworkOptions PodNetworkOptionsOf(const AgentConfig& config);
// The backend --proxy-mode (or --dry-run) selects. Throws ConfigError when it cannot be made.
std::unique_ptr<proxy::Backend> MakeBackend(const AgentConfig& config, std::ostream& dry_run_out);

class Agent {
 public:
  // `dry_run_out` receives the --dry-run output.
  Agent(AgentConfig config, std::ostream& dry_run_out);
  // With a given backend instead of the one the config selects (tests).
  Agent(AgentConfig config, std::unique_ptr<proxy::Backend> backend);
  ~Agent();
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // Binds the servers, connects the source and starts syncing. Throws (with a message naming the
  // flag, file or address) when any of it cannot start; nothing keeps running then.
  void Start();
  void Stop();

  const std::string& node_name() const { return node_name_; }
  uint16_t healthz_port() const { return healthz_server_ ? healthz_server_->port() : 0; }
  uint16_t metrics_port() const { return metrics_server_ ? metrics_server_->port() : 0; }

 private:
  bool Sync(proxy::SyncTrigger trigger);
  void OnClusterChange();
  void AfterKernelSync(const state::NodeStateChange& change);
  // Applies the pod network for the current Nodes; false when part of it failed (logged).
  bool SyncPodNetwork(bool full);
  void UpdateDerived(const state::NodeStateChange& change);
  void RecordSyncMetrics(const state::NodeStateChange& change, double seconds, bool full);

  AgentConfig config_;
  std::string node_name_;
  std::vector<IpFamily> families_;
  proxy::Registry registry_;
  proxy::ProxyMetrics metrics_;
  proxy::ProxyHealth health_;
  state::ClusterState cluster_;
  state::NodeStateTracker tracker_;
  std::unique_ptr<proxy::Backend> backend_;
  std::unique_ptr<proxy::HttpServer> healthz_server_;
  std::unique_ptr<proxy::HttpServer> metrics_server_;
  // Kernel backends only (not --dry-run): the health check node port servers, and the conntrack
  // table stale UDP entries are deleted from after each sync.
  std::unique_ptr<proxy::ServiceHealthServers> service_health_;
  std::unique_ptr<conntrack::ConntrackTable> conntrack_;
  // --pod-network: the node's CNI conflist, routes to other nodes' pods, egress masquerade.
  std::unique_ptr<PodNetwork> pod_network_;
  std::vector<state::NodePtr> pod_network_nodes_;  // the Nodes the pod network was applied for
  // Derived from NodeState per Service and kept up to date from each change: the health check
  // node ports, and the (family, internal?) pairs of ports with a Local policy and no local
  // endpoint (a metric).
  std::map<std::string, std::vector<std::pair<uint16_t, proxy::ServiceHealthServers::Entry>>>
      health_by_service_;
  std::map<std::string, std::vector<std::pair<IpFamily, bool>>> no_local_by_service_;
  bool health_changed_ = false;
  std::unique_ptr<proxy::SyncRunner> runner_;
  std::unique_ptr<sources::ApiSource> api_source_;
  std::unique_ptr<sources::ManifestSource> manifest_source_;
  bool needs_full_sync_ = true;
  bool pod_network_failed_ = false;
  uint64_t syncs_ = 0;
  // steady_clock nanoseconds of the first change not yet synced; 0 when none is pending.
  std::atomic<int64_t> pending_since_ns_{0};
};

}  // namespace sluice::agent
