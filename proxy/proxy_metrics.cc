#include "proxy/proxy_metrics.h"

namespace sluice::proxy {

const std::string& IpFamilyLabel(IpFamily family) {
  static const std::string kV4 = "IPv4";
  static const std::string kV6 = "IPv6";
  return family == IpFamily::kV4 ? kV4 : kV6;
}

std::vector<double> SyncLatencyBuckets() { return ExponentialBuckets(0.001, 2, 15); }

std::vector<double> NetworkProgrammingBuckets() {
  std::vector<double> b{0};
  for (const auto& part : {LinearBuckets(0.25, 0.25, 2), LinearBuckets(1, 1, 59),
                           LinearBuckets(60, 5, 12), LinearBuckets(120, 30, 7)}) {
    b.insert(b.end(), part.begin(), part.end());
  }
  return b;
}

ProxyMetrics::ProxyMetrics(Registry& r)
    : sync_proxy_rules_duration(
          r.AddHistogramVec("kubeproxy_sync_proxy_rules_duration_seconds",
                            "How long one sync of the proxy rules took, in seconds.",
                            SyncLatencyBuckets(), {"ip_family"})),
      sync_full_proxy_rules_duration(
          r.AddHistogramVec("kubeproxy_sync_full_proxy_rules_duration_seconds",
                            "How long one full resync of the proxy rules took, in seconds.",
                            SyncLatencyBuckets(), {"ip_family"})),
      sync_partial_proxy_rules_duration(r.AddHistogramVec(
          "kubeproxy_sync_partial_proxy_rules_duration_seconds",
          "How long one partial (change-driven) sync of the proxy rules took, in seconds.",
          SyncLatencyBuckets(), {"ip_family"})),
      network_programming_duration(r.AddHistogramVec(
          "kubeproxy_network_programming_duration_seconds",
          "Time from a Service or endpoint change in the cluster to the proxy rules that carry "
          "it, in seconds.",
          NetworkProgrammingBuckets(), {"ip_family"})),
      sync_proxy_rules_last_timestamp(r.AddGaugeVec(
          "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
          "When the proxy rules were last synced successfully, in seconds since the epoch.",
          {"ip_family"})),
      sync_proxy_rules_last_queued_timestamp(r.AddGaugeVec(
          "kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds",
          "When a sync of the proxy rules was last requested, in seconds since the epoch.",
          {"ip_family"})),
      endpoint_changes_pending(r.AddGauge("kubeproxy_sync_proxy_rules_endpoint_changes_pending",
                                          "Endpoint changes waiting for the next sync.")),
      endpoint_changes_total(r.AddCounter("kubeproxy_sync_proxy_rules_endpoint_changes_total",
                                          "Endpoint changes seen by the proxy.")),
      service_changes_pending(r.AddGauge("kubeproxy_sync_proxy_rules_service_changes_pending",
                                         "Service changes waiting for the next sync.")),
      service_changes_total(r.AddCounter("kubeproxy_sync_proxy_rules_service_changes_total",
                                         "Service changes seen by the proxy.")),
      sync_proxy_rules_no_local_endpoints(
          r.AddGaugeVec("kubeproxy_sync_proxy_rules_no_local_endpoints_total",
                        "Services with a Local traffic policy that have no endpoint on this node.",
                        {"ip_family", "traffic_policy"})),
      proxy_healthz_total(r.AddCounterVec("kubeproxy_proxy_healthz_total",
                                          "Answers of the proxy's /healthz, by HTTP status.",
                                          {"code"})),
      proxy_livez_total(r.AddCounterVec("kubeproxy_proxy_livez_total",
                                        "Answers of the proxy's /livez, by HTTP status.",
                                        {"code"})),
      conntrack_reconciler_sync_duration(
          r.AddHistogramVec("kubeproxy_conntrack_reconciler_sync_duration_seconds",
                            "How long one cleanup of stale conntrack flows took, in seconds.",
                            SyncLatencyBuckets(), {"ip_family"})),
      conntrack_reconciler_deleted_entries_total(r.AddCounterVec(
          "kubeproxy_conntrack_reconciler_deleted_entries_total",
          "Stale conntrack flows deleted by the cleanup after syncs.", {"ip_family"})) {}

}  // namespace sluice::proxy
