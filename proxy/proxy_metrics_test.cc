#include "proxy/proxy_metrics.h"

#include <gtest/gtest.h>

#include <set>

namespace sluice::proxy {
namespace {

TEST(ProxyMetricsTest, SyncLatencyBucketsAreKubeProxys) {
  std::vector<double> b = SyncLatencyBuckets();
  ASSERT_EQ(b.size(), 15u);
  std::vector<std::string> text;
  for (double v : b) text.push_back(FormatMetricValue(v));
  EXPECT_EQ(text, (std::vector<std::string>{"0.001", "0.002", "0.004", "0.008", "0.016", "0.032",
                                            "0.064", "0.128", "0.256", "0.512", "1.024", "2.048",
                                            "4.096", "8.192", "16.384"}));
}

TEST(ProxyMetricsTest, NetworkProgrammingBucketsAreKubeProxys) {
  std::vector<double> b = NetworkProgrammingBuckets();
  ASSERT_EQ(b.size(), 1u + 2 + 59 + 12 + 7);
  EXPECT_EQ(b[0], 0);
  EXPECT_EQ(b[1], 0.25);
  EXPECT_EQ(b[2], 0.5);
  EXPECT_EQ(b[3], 1);
  EXPECT_EQ(b[61], 59);
  EXPECT_EQ(b[62], 60);
  EXPECT_EQ(b[73], 115);
  EXPECT_EQ(b[74], 120);
  EXPECT_EQ(b.back(), 300);
  EXPECT_TRUE(std::is_sorted(b.begin(), b.end()));
}

TEST(ProxyMetricsTest, RegistersKubeProxyNamesAndLabels) {
  Registry r;
  ProxyMetrics m(r);
  EXPECT_EQ(IpFamilyLabel(IpFamily::kV4), "IPv4");
  EXPECT_EQ(IpFamilyLabel(IpFamily::kV6), "IPv6");
  const std::string v4 = IpFamilyLabel(IpFamily::kV4);
  m.sync_proxy_rules_duration.WithLabelValues({v4}).Observe(0.003);
  m.sync_full_proxy_rules_duration.WithLabelValues({v4}).Observe(0.003);
  m.sync_partial_proxy_rules_duration.WithLabelValues({v4}).Observe(0.003);
  m.network_programming_duration.WithLabelValues({v4}).Observe(1.5);
  m.sync_proxy_rules_last_timestamp.WithLabelValues({v4}).Set(1.7e9);
  m.sync_proxy_rules_last_queued_timestamp.WithLabelValues({v4}).Set(1.7e9);
  m.endpoint_changes_pending.Set(2);
  m.endpoint_changes_total.Inc();
  m.service_changes_pending.Set(1);
  m.service_changes_total.Inc();
  m.sync_proxy_rules_no_local_endpoints.WithLabelValues({v4, "internal"}).Set(3);
  m.proxy_healthz_total.WithLabelValues({"200"}).Inc();
  m.proxy_livez_total.WithLabelValues({"503"}).Inc();
  m.conntrack_reconciler_sync_duration.WithLabelValues({v4}).Observe(0.01);
  m.conntrack_reconciler_deleted_entries_total.WithLabelValues({v4}).Add(4);

  std::set<std::string> names;
  for (const auto& f : r.Gather()) names.insert(f.name);
  EXPECT_EQ(names, (std::set<std::string>{
                       "kubeproxy_conntrack_reconciler_deleted_entries_total",
                       "kubeproxy_conntrack_reconciler_sync_duration_seconds",
                       "kubeproxy_network_programming_duration_seconds",
                       "kubeproxy_proxy_healthz_total",
                       "kubeproxy_proxy_livez_total",
                       "kubeproxy_sync_full_proxy_rules_duration_seconds",
                       "kubeproxy_sync_partial_proxy_rules_duration_seconds",
                       "kubeproxy_sync_proxy_rules_duration_seconds",
                       "kubeproxy_sync_proxy_rules_endpoint_changes_pending",
                       "kubeproxy_sync_proxy_rules_endpoint_changes_total",
                       "kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds",
                       "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
                       "kubeproxy_sync_proxy_rules_no_local_endpoints_total",
                       "kubeproxy_sync_proxy_rules_service_changes_pending",
                       "kubeproxy_sync_proxy_rules_service_changes_total",
                   }));
  const std::string text = r.Render();
  for (const char* line : {
           "kubeproxy_sync_proxy_rules_duration_seconds_bucket{ip_family=\"IPv4\",le=\"0.004\"} "
           "1\n",
           "kubeproxy_network_programming_duration_seconds_bucket{ip_family=\"IPv4\",le=\"0\"} 0\n",
           "kubeproxy_network_programming_duration_seconds_bucket{ip_family=\"IPv4\",le=\"2\"} 1\n",
           "kubeproxy_sync_proxy_rules_last_timestamp_seconds{ip_family=\"IPv4\"} 1.7e+09\n",
           "kubeproxy_sync_proxy_rules_no_local_endpoints_total{ip_family=\"IPv4\","
           "traffic_policy=\"internal\"} 3\n",
           "# TYPE kubeproxy_sync_proxy_rules_no_local_endpoints_total gauge\n",
           "kubeproxy_proxy_healthz_total{code=\"200\"} 1\n",
           "kubeproxy_sync_proxy_rules_endpoint_changes_total 1\n",
       }) {
    EXPECT_NE(text.find(line), std::string::npos) << line;
  }
}

}  // namespace
}  // namespace sluice::proxy
