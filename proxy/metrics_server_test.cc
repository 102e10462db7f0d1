#include "proxy/metrics_server.h"

#include <gtest/gtest.h>

#include "proxy/testing/http_probe.h"

namespace sluice::proxy {
namespace {

using testing::Probe;

TEST(MetricsServerTest, ServesMetricsHealthzAndProxyMode) {
  Registry registry;
  Counter& c = registry.AddCounter("test_things_total", "Things.");
  HttpRoutes routes;
  AddMetricsServerRoutes(registry, "nftables", routes);
  HttpServer server("metrics server", "127.0.0.1:0", std::move(routes));

  c.Add(2);
  auto metrics = Probe("127.0.0.1", server.port(), "GET", "/metrics");
  EXPECT_EQ(metrics.status, 200);
  EXPECT_EQ(metrics.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(metrics.body,
            "# HELP test_things_total Things.\n# TYPE test_things_total counter\n"
            "test_things_total 2\n");
  c.Inc();  // rendered at scrape time
  EXPECT_NE(Probe("127.0.0.1", server.port(), "GET", "/metrics").body.find("test_things_total 3\n"),
            std::string::npos);

  for (const char* path : {"/healthz", "/healthz/ping"}) {
    auto r = Probe("127.0.0.1", server.port(), "GET", path);
    EXPECT_EQ(r.status, 200) << path;
    EXPECT_EQ(r.body, "ok") << path;
    EXPECT_EQ(r.headers["content-type"], "text/plain; charset=utf-8");
    EXPECT_EQ(r.headers["x-content-type-options"], "nosniff");
  }
  auto mode = Probe("127.0.0.1", server.port(), "GET", "/proxyMode");
  EXPECT_EQ(mode.status, 200);
  EXPECT_EQ(mode.body, "nftables");
}

TEST(MetricsServerTest, NoProxyModeRouteWithoutAMode) {
  Registry registry;
  HttpRoutes routes;
  AddMetricsServerRoutes(registry, "", routes);
  EXPECT_EQ(routes.count("/proxyMode"), 0u);
  EXPECT_EQ(routes.count("/metrics"), 1u);
}

}  // namespace
}  // namespace sluice::proxy
