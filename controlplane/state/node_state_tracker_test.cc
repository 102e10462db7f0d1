#include "controlplane/state/node_state_tracker.h"

#include <gtest/gtest.h>

#include <random>

#include "controlplane/state/testing/objects.h"

namespace sluice::state {
namespace {

using testing::Ep;
using testing::NodeJson;
using testing::NodeObj;
using testing::Slice;
using testing::SliceJson;
using testing::Svc;
using testing::SvcJson;

TEST(NodeStateTracker, ReportsOnlyTheServicesThatChanged) {
  ClusterState cs("node-a");
  NodeStateTracker t({.node_name = "node-a"});
  cs.UpsertService(Svc(SvcJson("web", "10.96.0.1")));
  cs.UpsertService(Svc(SvcJson("db", "10.96.0.2")));
  cs.UpsertEndpointSlice(Slice(SliceJson("web-1", "web", {{.ip = "10.0.0.1"}})));
  NodeStateChange first = t.Update(cs);
  ASSERT_EQ(first.services.size(), 2u);
  EXPECT_EQ(first.services[0].key, "default/db");
  EXPECT_EQ(first.services[0].before, nullptr);
  EXPECT_EQ(first.service_events, 2u);
  EXPECT_EQ(first.endpoint_events, 1u);

  // One endpoint added to web: only web is recomputed and reported.
  cs.UpsertEndpointSlice(
      Slice(SliceJson("web-1", "web", {{.ip = "10.0.0.1"}, {.ip = "10.0.0.2"}})));
  NodeStateChange second = t.Update(cs);
  ASSERT_EQ(second.services.size(), 1u);
  EXPECT_EQ(second.services[0].key, "default/web");
  EXPECT_EQ(second.services[0].before->ports[0].cluster_endpoints.size(), 1u);
  EXPECT_EQ(second.services[0].after->ports[0].cluster_endpoints.size(), 2u);
  EXPECT_FALSE(second.full);

  // A change that does not alter what is programmed (a label) reports nothing.
  auto relabelled = SvcJson("db", "10.96.0.2");
  relabelled["metadata"]["labels"]["team"] = "storage";
  cs.UpsertService(Svc(relabelled));
  EXPECT_TRUE(t.Update(cs).empty());

  cs.DeleteService("default/web");
  NodeStateChange gone = t.Update(cs);
  ASSERT_EQ(gone.services.size(), 1u);
  EXPECT_EQ(gone.services[0].after, nullptr);
  EXPECT_EQ(t.state().services.size(), 1u);
}

TEST(NodeStateTracker, ThisNodesZoneRecomputesEverything) {
  ClusterState cs("node-a");
  NodeStateTracker t({.node_name = "node-a"});
  cs.UpsertNode(NodeObj(NodeJson("node-a", "zone-a")));
  cs.UpsertService(Svc(SvcJson("web", "10.96.0.1")));
  cs.UpsertEndpointSlice(Slice(SliceJson("web-1", "web",
                                         {{.ip = "10.0.0.1", .zone_hints = {"zone-a"}},
                                          {.ip = "10.0.0.2", .zone_hints = {"zone-b"}}})));
  t.Update(cs);
  EXPECT_EQ(t.state().services.at("default/web")->ports[0].cluster_endpoints[0].ip.ToString(),
            "10.0.0.1");
  cs.UpsertNode(NodeObj(NodeJson("node-a", "zone-b")));
  NodeStateChange c = t.Update(cs);
  EXPECT_TRUE(c.full);
  EXPECT_TRUE(c.node_changed);
  ASSERT_EQ(c.services.size(), 1u);
  EXPECT_EQ(c.services[0].after->ports[0].cluster_endpoints[0].ip.ToString(), "10.0.0.2");
}

TEST(NodeStateTracker, FullUpdateReportsNothingWhenNothingDiffers) {
  ClusterState cs("node-a");
  NodeStateTracker t({.node_name = "node-a"});
  cs.UpsertService(Svc(SvcJson("web", "10.96.0.1")));
  t.Update(cs);
  NodeStateChange c = t.Update(cs, /*full=*/true);
  EXPECT_TRUE(c.full);
  EXPECT_TRUE(c.services.empty());
}

// Incremental updates must always equal computing everything from scratch.
TEST(NodeStateTracker, RandomChangesMatchAFullComputation) {
  std::mt19937 rng(42);
  ClusterState cs("node-0");
  NodeStateTracker t({.node_name = "node-0"});
  auto pick = [&](int n) { return static_cast<int>(rng() % n); };
  for (int step = 0; step < 600; ++step) {
    std::string svc = "svc-" + std::to_string(pick(12));
    switch (pick(6)) {
      case 0: {
        nlohmann::json extra = nlohmann::json::object();
        if (pick(2)) extra["internalTrafficPolicy"] = "Local";
        if (pick(2)) extra["sessionAffinity"] = "ClientIP";
        cs.UpsertService(Svc(SvcJson(svc, "10.96.0." + std::to_string(1 + pick(200)), extra)));
        break;
      }
      case 1:
        cs.DeleteService("default/" + svc);
        break;
      case 2:
      case 3: {
        std::vector<Ep> eps;
        for (int i = 0, n = pick(4); i < n; ++i) {
          eps.push_back({.ip = "10.1." + std::to_string(pick(4)) + "." + std::to_string(pick(250)),
                         .node = "node-" + std::to_string(pick(3)),
                         .ready = pick(3) != 0,
                         .serving = pick(2) != 0,
                         .terminating = pick(2) != 0});
        }
        cs.UpsertEndpointSlice(Slice(SliceJson(svc + "-" + std::to_string(pick(2)), svc, eps)));
        break;
      }
      case 4:
        cs.DeleteEndpointSlice("default/" + svc + "-" + std::to_string(pick(2)));
        break;
      case 5:
        cs.UpsertNode(NodeObj(
            NodeJson("node-" + std::to_string(pick(2)), "zone-" + std::to_string(pick(2)))));
        break;
    }
    if (pick(4) == 0) {
      t.Update(cs, /*full=*/pick(5) == 0);
      ASSERT_EQ(t.state(), ComputeNodeState(cs, t.options())) << "after step " << step;
    }
  }
}

}  // namespace
}  // namespace sluice::state
