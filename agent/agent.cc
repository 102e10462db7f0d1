#include "agent/agent.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <set>

#include "common/log.h"
#include "controlplane/kube/kubeconfig.h"
#include "controlplane/state/pod_network.h"
#include "controlplane/sources/api_source.h"
#include "controlplane/sources/manifest_source.h"
#include "proxy/backends/dryrun/dry_run_backend.h"
#include "proxy/backends/iptables/iptables_backend.h"
#include "proxy/backends/nftables/nftables_backend.h"
#include "proxy/metrics_server.h"
#include "proxy/process_metrics.h"
#include "proxy/stale_flows.h"

namespace sluice::agent {

namespace {

int64_t SteadyNowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::vector<IpFamily> Families(const AgentConfig& c) {
  std::vector<IpFamily> out;
  if (c.ipv4) out.push_back(IpFamily::kV4);
  if (c.ipv6) out.push_back(IpFamily::kV6);
  return out;
}

}  // namespace

std::unique_ptr<proxy::Backend> MakeBackend(const AgentConfig& c, std::ostream& dry_run_out) {
  if (c.dry_run) return std::make_unique<proxy::DryRunBackend>(dry_run_out);
  if (c.proxy_mode == ProxyMode::kNftables) {
    proxy::nftables::NftablesOptions o;
    o.cluster_cidrs = c.cluster_cidrs;
    o.masquerade_all = c.masquerade_all;
    o.nodeport_cidrs = c.nodeport_cidrs;
    try {
      return std::make_unique<proxy::nftables::NftablesBackend>(std::move(o));
    } catch (const std::exception& e) {
      throw ConfigError(std::string("--proxy-mode=nftables: cannot open nf_tables netlink: ") +
                        e.what());
    }
  }
  if (c.proxy_mode == ProxyMode::kIptables) {
    proxy::iptables::IptablesOptions o;
    o.cluster_cidrs = c.cluster_cidrs;
    o.masquerade_all = c.masquerade_all;
    o.nodeport_cidrs = c.nodeport_cidrs;
    o.nodeport_primary = c.nodeport_primary;
    o.localhost_nodeports = c.iptables_localhost_nodeports;
    if (c.iptables_mode == "legacy") o.variant = proxy::iptables::Variant::kLegacy;
    if (c.iptables_mode == "nft") o.variant = proxy::iptables::Variant::kNft;
    o.families.clear();
    if (c.ipv4) o.families.insert(IpFamily::kV4);
    if (c.ipv6) o.families.insert(IpFamily::kV6);
    try {
      return std::make_unique<proxy::iptables::IptablesBackend>(std::move(o));
    } catch (const std::exception& e) {
      throw ConfigError(std::string("--proxy-mode=iptables: ") + e.what());
    }
  }
  throw ConfigError("--proxy-mode=" + std::string(ToString(c.proxy_mode)) +
                    ": this backend is not part of this build yet; run with --dry-run to see "
                    "what would be programmed");
}

PodNetworkOptions PodNetworkOptionsOf(const AgentConfig& c) {
  PodNetworkOptions o;
  o.conf_dir = c.cni_conf_dir;
  o.bin_dirs = c.cni_bin_dirs;
  o.ipam_data_dir = c.cni_ipam_data_dir;
  o.bridge = c.pod_bridge;
  return o;
}

std::string NodeName(const AgentConfig& config) {
  std::string name = config.hostname_override;
  if (name.empty()) {
    char host[256] = {};
    if (gethostname(host, sizeof host - 1) != 0) {
      throw ConfigError("cannot read the host name; set --hostname-override");
    }
    name = host;
  }
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  while (!name.empty() && std::isspace(static_cast<unsigned char>(name.back()))) name.pop_back();
  if (name.empty()) throw ConfigError("--hostname-override: empty node name");
  return name;
}

Agent::Agent(AgentConfig config, std::ostream& dry_run_out)
    : Agent(config, MakeBackend(config, dry_run_out)) {}

Agent::Agent(AgentConfig config, std::unique_ptr<proxy::Backend> backend)
    : config_(std::move(config)),
      node_name_(NodeName(config_)),
      families_(Families(config_)),
      metrics_(registry_),
      // kube-proxy: unhealthy once a queued change waited twice the sync period.
      health_(2 * std::chrono::duration_cast<std::chrono::nanoseconds>(config_.sync_period),
              &metrics_),
      cluster_(node_name_),
      tracker_(state::NodeStateOptions{
          .node_name = node_name_,
          .families = std::set<IpFamily>(families_.begin(), families_.end())}),
      backend_(std::move(backend)) {
  proxy::RegisterProcessMetrics(registry_);
}

Agent::~Agent() { Stop(); }

void Agent::Start() {
  for (const auto& f : config_.ignored_fields) {
    SLOG_WARN << "config " << config_.config_file << ": " << f
              << ": not used by sluice-agent, ignored";
  }
  SLOG_INFO << "sluice-agent " << SLUICE_VERSION << " node " << node_name_ << " backend "
            << backend_->name() << " source "
            << (config_.manifests_dir.empty() ? "api" : "manifests " + config_.manifests_dir);
  try {
    if (!config_.healthz_bind_address.empty()) {
      proxy::HttpRoutes routes;
      health_.AddRoutes(routes);
      healthz_server_ = std::make_unique<proxy::HttpServer>(
          "healthz server", config_.healthz_bind_address, std::move(routes));
    }
    if (!config_.metrics_bind_address.empty()) {
      proxy::HttpRoutes routes;
      proxy::AddMetricsServerRoutes(registry_, std::string(backend_->name()), routes);
      metrics_server_ = std::make_unique<proxy::HttpServer>(
          "metrics server", config_.metrics_bind_address, std::move(routes));
    }

    if (!config_.dry_run) {
      // kube-proxy binds these on the NodePort addresses; every address is the superset.
      service_health_ = std::make_unique<proxy::ServiceHealthServers>(
          std::vector<std::string>{}, &health_);
      try {
        conntrack_ = std::make_unique<conntrack::ConntrackTable>();
      } catch (const std::exception& e) {
        SLOG_WARN << "conntrack: " << e.what()
                  << "; stale UDP entries will not be cleared after endpoint changes";
      }
      if (config_.pod_network) {
        try {
          pod_network_ = std::make_unique<PodNetwork>(PodNetworkOptionsOf(config_));
        } catch (const std::exception& e) {
          throw ConfigError(std::string("--pod-network: ") + e.what());
        }
      }
    } else if (config_.pod_network) {
      SLOG_WARN << "--pod-network: not applied with --dry-run";
    }

    proxy::SyncRunnerOptions ro;
    ro.name = "proxy sync";
    ro.min_interval = config_.min_sync_period;
    ro.max_interval = config_.sync_period;
    runner_ =
        std::make_unique<proxy::SyncRunner>(ro, [this](proxy::SyncTrigger t) { return Sync(t); });
    cluster_.SetOnChange([this] { OnClusterChange(); });

    if (!config_.manifests_dir.empty()) {
      manifest_source_ = std::make_unique<sources::ManifestSource>(config_.manifests_dir, cluster_);
    } else {
      kube::ClientOptions client;
      client.kubeconfig = config_.kubeconfig;
      client.master = config_.master;
      api_source_ = std::make_unique<sources::ApiSource>(
          kube::ApiConnection::Open(kube::BuildRestConfig(client)), cluster_,
          /*all_nodes=*/pod_network_ != nullptr);
    }
    // As kube-proxy's sync loop does when it starts: from here on a queued change that is not
    // synced within the health timeout (say, the first sync never succeeds) makes /healthz 503.
    for (IpFamily f : families_) health_.Updated(f);
    runner_->Start();
    if (manifest_source_) manifest_source_->Start();
    if (api_source_) api_source_->Start();
  } catch (...) {
    Stop();
    throw;
  }
}

void Agent::Stop() {
  // Sources first (no more changes), then the runner (no more syncs), then the servers.
  if (api_source_) api_source_->Stop();
  if (manifest_source_) manifest_source_->Stop();
  cluster_.SetOnChange(nullptr);
  if (runner_) runner_->Stop();
  if (service_health_) service_health_->Sync({});
  if (metrics_server_) metrics_server_->Stop();
  if (healthz_server_) healthz_server_->Stop();
}

void Agent::OnClusterChange() {
  int64_t zero = 0;
  pending_since_ns_.compare_exchange_strong(zero, SteadyNowNs());
  metrics_.service_changes_pending.Set(static_cast<double>(cluster_.PendingServiceEvents()));
  metrics_.endpoint_changes_pending.Set(static_cast<double>(cluster_.PendingEndpointEvents()));
  const auto now = std::chrono::system_clock::now();
  for (IpFamily f : families_) {
    health_.QueuedUpdate(f);
    metrics_.sync_proxy_rules_last_queued_timestamp.WithLabelValues({proxy::IpFamilyLabel(f)})
        .SetToTime(now);
  }
  if (runner_) runner_->Run();
}

bool Agent::Sync(proxy::SyncTrigger trigger) {
  if (!cluster_.AllSourcesSynced()) {
    // kube-proxy waits for its informers: programming a partial view would REJECT every Service
    // whose slices have not arrived yet. The sources' sync notifies, which asks again.
    SLOG_V(2) << "sync skipped: waiting for the sources' first listing";
    return true;
  }
  const int64_t start_ns = SteadyNowNs();
  const int64_t pending_since = pending_since_ns_.exchange(0);
  const bool full = proxy::IsFullSync(trigger) || needs_full_sync_;
  state::NodeStateChange change = tracker_.Update(cluster_, full);
  const int64_t computed_ns = SteadyNowNs();
  const state::NodeState& desired = tracker_.state();
  health_.SetNodeEligible(
      proxy::IsNodeEligible(desired.node.being_deleted, desired.node.taint_keys));
  UpdateDerived(change);
  try {
    backend_->Sync(desired, change);
  } catch (const std::exception& e) {
    SLOG_ERROR << "sync (" << proxy::SyncTriggerName(trigger) << ") with " << backend_->name()
               << " failed: " << e.what() << "; the next sync reconciles everything";
    needs_full_sync_ = true;
    return false;
  }
  needs_full_sync_ = false;
  const int64_t end_ns = SteadyNowNs();
  AfterKernelSync(change);
  const bool pod_network_ok = SyncPodNetwork(full);
  ++syncs_;
  RecordSyncMetrics(change, static_cast<double>(end_ns - start_ns) / 1e9, full);
  SLOG_V(1) << "sync " << syncs_ << " (" << proxy::SyncTriggerName(trigger)
            << (full ? ", full" : "") << "): " << change.services.size()
            << " services changed; NodeState in " << (computed_ns - start_ns) / 1000 << " us"
            << (pending_since ? ", " + std::to_string((computed_ns - pending_since) / 1000) +
                                    " us after the first change"
                              : std::string())
            << "; " << backend_->name() << " in " << (end_ns - computed_ns) / 1000 << " us";
  return pod_network_ok;
}

bool Agent::SyncPodNetwork(bool full) {
  if (!pod_network_) return true;
  std::vector<state::NodePtr> nodes = cluster_.Nodes();
  // Most syncs are about Services: unless a Node object changed (ClusterState keeps unchanged
  // ones as the same pointers) there is nothing to recompute or apply until the next full sync.
  if (!full && !pod_network_failed_ && nodes == pod_network_nodes_) return true;
  const state::PodNetworkState desired = state::ComputePodNetwork(
      nodes, node_name_, config_.cluster_cidrs,
      std::set<IpFamily>(families_.begin(), families_.end()));
  try {
    pod_network_->Apply(desired, full || pod_network_failed_);
    pod_network_failed_ = false;
    pod_network_nodes_ = std::move(nodes);
    return true;
  } catch (const std::exception& e) {
    // The proxy's rules are in; the runner retries (with backoff) and the next try repairs all.
    SLOG_ERROR << e.what();
    pod_network_failed_ = true;
    return false;
  }
}

void Agent::AfterKernelSync(const state::NodeStateChange& change) {
  if (conntrack_) {
    const std::vector<conntrack::FlowFilter> filters = proxy::StaleUdpFlowFilters(change);
    if (!filters.empty()) {
      try {
        const size_t deleted = conntrack_->DeleteAll(filters);
        SLOG_V(2) << "conntrack: deleted " << deleted << " stale UDP entries (" << filters.size()
                  << " filters)";
      } catch (const std::exception& e) {
        // The rules are right; a client may stay on a dead endpoint until its entry expires.
        SLOG_WARN << "conntrack: " << e.what();
      }
    }
  }
  if (service_health_ && (health_changed_ || change.full)) {
    // One server per health check node port; the count is the Service's local ready endpoints
    // (the larger of its families' when dual-stack).
    std::map<uint16_t, proxy::ServiceHealthServers::Entry> wanted;
    for (const auto& [key, entries] : health_by_service_) {
      for (const auto& [port, entry] : entries) {
        auto& e = wanted[port];
        e.namespace_name = entry.namespace_name;
        e.name = entry.name;
        e.local_endpoints = std::max(e.local_endpoints, entry.local_endpoints);
      }
    }
    service_health_->Sync(wanted);
    health_changed_ = false;
  }
}

void Agent::UpdateDerived(const state::NodeStateChange& change) {
  // Per-Service contributions, replaced for the Services the change lists: the work per sync
  // follows the change, not the number of Services.
  for (const auto& diff : change.services) {
    if (health_by_service_.erase(diff.key) > 0) health_changed_ = true;
    no_local_by_service_.erase(diff.key);
    if (!diff.after) continue;
    std::vector<std::pair<uint16_t, proxy::ServiceHealthServers::Entry>> health;
    std::vector<std::pair<IpFamily, bool>> no_local;
    for (const auto& p : diff.after->ports) {
      if (p.health_check_node_port != 0 && p.external_policy_local) {
        health.emplace_back(p.health_check_node_port,
                            proxy::ServiceHealthServers::Entry{p.name.namespace_name, p.name.name,
                                                               p.local_ready_endpoints});
      }
      if (p.has_any_endpoints && p.local_endpoints.empty()) {
        if (p.internal_policy_local) no_local.emplace_back(p.family, true);
        if (p.external_policy_local) no_local.emplace_back(p.family, false);
      }
    }
    if (!health.empty()) {
      health_by_service_[diff.key] = std::move(health);
      health_changed_ = true;
    }
    if (!no_local.empty()) no_local_by_service_[diff.key] = std::move(no_local);
  }
}

void Agent::RecordSyncMetrics(const state::NodeStateChange& change, double seconds, bool full) {
  const auto now = std::chrono::system_clock::now();
  metrics_.service_changes_total.Add(static_cast<double>(change.service_events));
  metrics_.endpoint_changes_total.Add(static_cast<double>(change.endpoint_events));
  metrics_.service_changes_pending.Set(static_cast<double>(cluster_.PendingServiceEvents()));
  metrics_.endpoint_changes_pending.Set(static_cast<double>(cluster_.PendingEndpointEvents()));

  // Service ports with a Local policy and no local endpoint, per family and policy.
  std::map<std::pair<IpFamily, bool>, double> no_local;
  for (const auto& [key, entries] : no_local_by_service_) {
    for (const auto& e : entries) no_local[e] += 1;
  }
  for (IpFamily f : families_) {
    const std::string& fam = proxy::IpFamilyLabel(f);
    metrics_.sync_proxy_rules_duration.WithLabelValues({fam}).Observe(seconds);
    (full ? metrics_.sync_full_proxy_rules_duration : metrics_.sync_partial_proxy_rules_duration)
        .WithLabelValues({fam})
        .Observe(seconds);
    metrics_.sync_proxy_rules_last_timestamp.WithLabelValues({fam}).SetToTime(now);
    for (bool internal : {true, false}) {
      metrics_.sync_proxy_rules_no_local_endpoints
          .WithLabelValues({fam, internal ? "internal" : "external"})
          .Set(no_local[{f, internal}]);
    }
    // From the change that caused it (the EndpointSlice controller's trigger time) to now.
    for (const auto& [svc, t] : change.trigger_times) {
      double latency = std::chrono::duration<double>(now - t).count();
      if (latency >= 0) {
        metrics_.network_programming_duration.WithLabelValues({fam}).Observe(latency);
      }
    }
    health_.Updated(f);
  }
}

}  // namespace sluice::agent
