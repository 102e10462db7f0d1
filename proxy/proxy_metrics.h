// The kube-proxy metrics every backend reports, with kube-proxy's names, label names, label values
// and bucket layouts, so dashboards and alerts written for kube-proxy work unchanged. Backend-only
// metrics (iptables rule counts, nftables failures) belong to their backend.
#pragma once

#include <string>

#include "common/ip_address.h"
#include "proxy/metrics.h"

namespace sluice::proxy {

// The ip_family label value: "IPv4" or "IPv6", as Kubernetes spells IP families.
const std::string& IpFamilyLabel(IpFamily family);

// Buckets of the sync latency histograms: 1 ms doubling 15 times (to 16.384 s).
std::vector<double> SyncLatencyBuckets();
// Buckets of network programming latency: 0, 0.25 s, 0.5 s, 1..59 s, 60..115 s by 5, 120..300 s
// by 30 (the leading 0 comes from how kube-proxy merges its ranges).
std::vector<double> NetworkProgrammingBuckets();

struct ProxyMetrics {
  // Registers every family in `registry`.
  explicit ProxyMetrics(Registry& registry);

  // Histograms {ip_family}, seconds.
  HistogramVec& sync_proxy_rules_duration;          // every sync
  HistogramVec& sync_full_proxy_rules_duration;     // full syncs only
  HistogramVec& sync_partial_proxy_rules_duration;  // change-driven (partial) syncs only
  HistogramVec& network_programming_duration;       // from the object change to the rules
  // Gauges {ip_family}, seconds since the epoch.
  GaugeVec& sync_proxy_rules_last_timestamp;         // last successful sync
  GaugeVec& sync_proxy_rules_last_queued_timestamp;  // last time a sync was requested
  // Change trackers (no labels).
  Gauge& endpoint_changes_pending;
  Counter& endpoint_changes_total;
  Gauge& service_changes_pending;
  Counter& service_changes_total;
  // Gauge {ip_family, traffic_policy="internal"|"external"}: services with a Local traffic
  // policy and no local endpoint, recounted every sync.
  GaugeVec& sync_proxy_rules_no_local_endpoints;
  // Counters {code}: answers of the healthz server's /healthz and /livez.
  CounterVec& proxy_healthz_total;
  CounterVec& proxy_livez_total;
  // Conntrack cleanup of stale UDP flows after a sync {ip_family}.
  HistogramVec& conntrack_reconciler_sync_duration;
  CounterVec& conntrack_reconciler_deleted_entries_total;
};

}  // namespace sluice::proxy
