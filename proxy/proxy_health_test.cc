#include "proxy/proxy_health.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "proxy/proxy_metrics.h"
#include "proxy/testing/http_probe.h"

namespace sluice::proxy {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;

// Both readings move together; the wall one starts at 2024-05-01T12:00:00Z.
struct FakeHealthClock {
  HealthInstant now{std::chrono::steady_clock::time_point(seconds(1000)),
                    std::chrono::system_clock::time_point(seconds(1714564800))};
  void Advance(std::chrono::nanoseconds d) {
    now.monotonic += d;
    now.wall += std::chrono::duration_cast<std::chrono::system_clock::duration>(d);
  }
  HealthClock Fn() {
    return [this] { return now; };
  }
};

class ProxyHealthTest : public ::testing::Test {
 protected:
  static constexpr seconds kTimeout{60};  // 2 x a 30 s sync period
  FakeHealthClock clock_;
  Registry registry_;
  ProxyMetrics metrics_{registry_};
  ProxyHealth health_{kTimeout, &metrics_, clock_.Fn()};

  json Healthz(int want_status) {
    HttpResponse r = health_.ServeHealthz();
    EXPECT_EQ(r.status, want_status);
    return json::parse(r.body);
  }
  json Livez(int want_status) {
    HttpResponse r = health_.ServeLivez();
    EXPECT_EQ(r.status, want_status);
    return json::parse(r.body);
  }
  std::string Now() { return FormatJsonTime(clock_.now.wall); }
};

TEST(FormatJsonTimeTest, WritesGoJsonTimes) {
  using std::chrono::system_clock;
  EXPECT_EQ(FormatJsonTime(std::nullopt), "0001-01-01T00:00:00Z");
  EXPECT_EQ(FormatJsonTime(system_clock::time_point(seconds(1714564800))), "2024-05-01T12:00:00Z");
  EXPECT_EQ(FormatJsonTime(system_clock::time_point(seconds(1714564800) + milliseconds(500))),
            "2024-05-01T12:00:00.5Z");
  EXPECT_EQ(FormatJsonTime(system_clock::time_point(seconds(1714564800) +
                                                    std::chrono::nanoseconds(123456789))),
            "2024-05-01T12:00:00.123456789Z");
  EXPECT_EQ(FormatJsonTime(
                system_clock::time_point(seconds(1714564800) + std::chrono::nanoseconds(120000))),
            "2024-05-01T12:00:00.00012Z");
  EXPECT_EQ(FormatJsonTime(system_clock::time_point(milliseconds(-1))), "1969-12-31T23:59:59.999Z");
}

TEST(NodeEligibilityTest, DeletionOrAutoscalerTaint) {
  std::vector<std::string> none;
  std::vector<std::string> other{"node.kubernetes.io/unschedulable"};
  std::vector<std::string> doomed{"node.kubernetes.io/unschedulable",
                                  "ToBeDeletedByClusterAutoscaler"};
  EXPECT_TRUE(IsNodeEligible(false, none));
  EXPECT_TRUE(IsNodeEligible(false, other));
  EXPECT_FALSE(IsNodeEligible(false, doomed));
  EXPECT_FALSE(IsNodeEligible(true, none));
}

TEST_F(ProxyHealthTest, HealthyWhileStartingUp) {
  // Exactly kube-proxy's bytes: field order, no spaces, no "status" before any Updated.
  HttpResponse r = health_.ServeHealthz();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body,
            "{\"lastUpdated\":\"2024-05-01T12:00:00Z\",\"currentTime\":\"2024-05-01T12:00:00Z\","
            "\"nodeEligible\":true,\"healthy\":true}");
  EXPECT_EQ(r.content_type, "application/json");
  ASSERT_EQ(r.headers.size(), 1u);
  EXPECT_EQ(r.headers[0],
            (std::pair<std::string, std::string>{"X-Content-Type-Options", "nosniff"}));
  HttpResponse l = health_.ServeLivez();
  EXPECT_EQ(l.status, 200);
  EXPECT_EQ(l.body,
            "{\"lastUpdated\":\"2024-05-01T12:00:00Z\",\"currentTime\":\"2024-05-01T12:00:00Z\","
            "\"healthy\":true}");
}

TEST_F(ProxyHealthTest, SyncedProxierIsHealthyAndReportsNowAsLastUpdated) {
  health_.Updated(IpFamily::kV4);
  clock_.Advance(seconds(600));  // no pending change: age alone is fine
  json h = Healthz(200);
  EXPECT_EQ(h["lastUpdated"], Now());
  EXPECT_EQ(h["currentTime"], Now());
  EXPECT_EQ(h["healthy"], true);
  EXPECT_EQ(h["status"]["IPv4"]["healthy"], true);
  EXPECT_EQ(h["status"]["IPv4"]["lastUpdated"], "2024-05-01T12:00:00Z");
  EXPECT_FALSE(h["status"].contains("IPv6"));
}

TEST_F(ProxyHealthTest, StaleQueuedUpdateIsUnhealthy) {
  health_.Updated(IpFamily::kV4);
  const std::string synced_at = Now();
  clock_.Advance(seconds(5));
  health_.QueuedUpdate(IpFamily::kV4);
  clock_.Advance(kTimeout - milliseconds(1));
  Healthz(200);
  Livez(200);
  clock_.Advance(milliseconds(1));  // the change has now waited the whole timeout
  json h = Healthz(503);
  EXPECT_EQ(h["lastUpdated"], synced_at);
  EXPECT_EQ(h["currentTime"], Now());
  EXPECT_EQ(h["healthy"], false);
  EXPECT_EQ(h["nodeEligible"], true);
  EXPECT_EQ(h["status"]["IPv4"]["healthy"], false);
  json l = Livez(503);
  EXPECT_EQ(l["lastUpdated"], synced_at);
  EXPECT_FALSE(l.contains("nodeEligible"));
  EXPECT_FALSE(health_.IsHealthy());

  health_.Updated(IpFamily::kV4);  // the sync finally went through
  Healthz(200);
  Livez(200);
}

TEST_F(ProxyHealthTest, OnlyTheOldestQueuedUpdateCounts) {
  health_.Updated(IpFamily::kV4);
  health_.QueuedUpdate(IpFamily::kV4);
  clock_.Advance(seconds(30));
  health_.QueuedUpdate(IpFamily::kV4);  // does not restart the wait
  clock_.Advance(seconds(30));
  Healthz(503);
}

TEST_F(ProxyHealthTest, FamilyWithoutAnyUpdatedIsNotJudged) {
  // kube-proxy judges only proxiers that have reported Updated (each does at loop start).
  health_.QueuedUpdate(IpFamily::kV6);
  clock_.Advance(kTimeout * 10);
  json h = Healthz(200);
  EXPECT_FALSE(h.contains("status"));
}

TEST_F(ProxyHealthTest, NodeNotEligibleFailsHealthzButNotLivez) {
  health_.Updated(IpFamily::kV4);
  health_.SetNodeEligible(false);
  json h = Healthz(503);
  EXPECT_EQ(h["nodeEligible"], false);
  EXPECT_EQ(h["healthy"], true);  // the proxier itself is fine
  EXPECT_EQ(h["lastUpdated"], "2024-05-01T12:00:00Z");
  Livez(200);
  health_.SetNodeEligible(true);
  Healthz(200);
}

TEST_F(ProxyHealthTest, BothFamiliesAreJudgedSeparately) {
  health_.Updated(IpFamily::kV4);
  health_.Updated(IpFamily::kV6);
  clock_.Advance(seconds(10));
  health_.QueuedUpdate(IpFamily::kV6);
  health_.QueuedUpdate(IpFamily::kV4);
  clock_.Advance(seconds(20));
  health_.Updated(IpFamily::kV4);
  const std::string v4_synced = Now();
  clock_.Advance(seconds(40));  // v6's change has waited 60 s, v4 has nothing pending
  json h = Healthz(503);
  EXPECT_EQ(h["status"]["IPv4"]["healthy"], true);
  EXPECT_EQ(h["status"]["IPv4"]["lastUpdated"], v4_synced);
  EXPECT_EQ(h["status"]["IPv6"]["healthy"], false);
  EXPECT_EQ(h["status"]["IPv6"]["lastUpdated"], "2024-05-01T12:00:00Z");
  EXPECT_EQ(h["lastUpdated"], v4_synced);  // the most recent of the two
  Livez(503);
  health_.Updated(IpFamily::kV6);
  Healthz(200);
}

TEST_F(ProxyHealthTest, CountsAnswersByCode) {
  health_.ServeHealthz();
  health_.ServeHealthz();
  health_.SetNodeEligible(false);
  health_.ServeHealthz();
  health_.ServeLivez();
  EXPECT_EQ(metrics_.proxy_healthz_total.WithLabelValues({"200"}).Value(), 2);
  EXPECT_EQ(metrics_.proxy_healthz_total.WithLabelValues({"503"}).Value(), 1);
  EXPECT_EQ(metrics_.proxy_livez_total.WithLabelValues({"200"}).Value(), 1);
}

TEST_F(ProxyHealthTest, ServedOverHttp) {
  HttpRoutes routes;
  health_.AddRoutes(routes);
  HttpServer server("healthz server", "127.0.0.1:0", std::move(routes));
  health_.SetNodeEligible(false);
  auto h = testing::Probe("127.0.0.1", server.port(), "GET", "/healthz");
  EXPECT_EQ(h.status, 503);
  EXPECT_EQ(h.headers["content-type"], "application/json");
  EXPECT_EQ(h.headers["x-content-type-options"], "nosniff");
  EXPECT_EQ(json::parse(h.body)["nodeEligible"], false);
  auto l = testing::Probe("127.0.0.1", server.port(), "GET", "/livez");
  EXPECT_EQ(l.status, 200);
  EXPECT_EQ(testing::Probe("127.0.0.1", server.port(), "GET", "/metrics").status, 404);
}

}  // namespace
}  // namespace sluice::proxy
