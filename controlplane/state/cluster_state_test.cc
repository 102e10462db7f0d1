#include "controlplane/state/cluster_state.h"

#include <gtest/gtest.h>

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

TEST(ClusterState, RecordsTouchedServicesAndCounts) {
  ClusterState cs("node-a");
  int notified = 0;
  cs.SetOnChange([&] { ++notified; });
  cs.UpsertService(Svc(SvcJson("web", "10.96.0.1")));
  cs.UpsertEndpointSlice(Slice(SliceJson("web-1", "web", {{.ip = "10.0.0.1"}})));
  cs.UpsertEndpointSlice(Slice(SliceJson("db-1", "db", {{.ip = "10.0.0.2"}})));
  EXPECT_EQ(notified, 3);
  EXPECT_EQ(cs.PendingServiceEvents(), 1u);
  EXPECT_EQ(cs.PendingEndpointEvents(), 2u);
  PendingChanges p = cs.TakePendingChanges();
  EXPECT_EQ(p.services, (std::set<std::string, std::less<>>{"default/db", "default/web"}));
  EXPECT_FALSE(p.all);
  EXPECT_TRUE(cs.TakePendingChanges().empty());
  EXPECT_EQ(cs.SlicesOf("default/web").size(), 1u);
  EXPECT_EQ(cs.SlicesOf("default/db").size(), 1u);  // kept before its Service exists
}

TEST(ClusterState, AnEqualObjectAgainRecordsNothing) {
  ClusterState cs("node-a");
  cs.UpsertService(Svc(SvcJson("web", "10.96.0.1")));
  cs.TakePendingChanges();
  cs.UpsertService(Svc(SvcJson("web", "10.96.0.1")));
  EXPECT_TRUE(cs.TakePendingChanges().empty());
  cs.DeleteService("default/nope");
  EXPECT_TRUE(cs.TakePendingChanges().empty());
}

TEST(ClusterState, ProxyNameAndHeadlessLabelsKeepObjectsOut) {
  ClusterState cs("node-a");
  cs.UpsertService(Svc(SvcJson("web", "10.96.0.1")));
  auto relabelled = SvcJson("web", "10.96.0.1");
  relabelled["metadata"]["labels"]["service.kubernetes.io/service-proxy-name"] = "other-proxy";
  cs.UpsertService(Svc(relabelled));  // now someone else's: removed
  EXPECT_EQ(cs.GetService("default/web"), nullptr);
  auto slice = SliceJson("web-1", "web", {{.ip = "10.0.0.1"}});
  slice["metadata"]["labels"]["service.kubernetes.io/headless"] = "";
  cs.UpsertEndpointSlice(Slice(slice));
  EXPECT_EQ(cs.EndpointSliceCount(), 0u);
}

TEST(ClusterState, SliceMovedToAnotherServiceTouchesBoth) {
  ClusterState cs("node-a");
  cs.UpsertEndpointSlice(Slice(SliceJson("s-1", "a", {{.ip = "10.0.0.1"}})));
  cs.TakePendingChanges();
  cs.UpsertEndpointSlice(Slice(SliceJson("s-1", "b", {{.ip = "10.0.0.1"}})));
  auto p = cs.TakePendingChanges();
  EXPECT_EQ(p.services, (std::set<std::string, std::less<>>{"default/a", "default/b"}));
  EXPECT_TRUE(cs.SlicesOf("default/a").empty());
  EXPECT_EQ(cs.SlicesOf("default/b").size(), 1u);
  cs.DeleteEndpointSlice("default/s-1");
  EXPECT_TRUE(cs.SlicesOf("default/b").empty());
  EXPECT_EQ(cs.TakePendingChanges().services.count("default/b"), 1u);
}

TEST(ClusterState, ThisNodesLabelsAskForAFullRecompute) {
  ClusterState cs("node-a");
  cs.UpsertNode(NodeObj(NodeJson("node-b", "zone-1")));
  EXPECT_FALSE(cs.TakePendingChanges().all);  // another node: not our topology
  cs.UpsertNode(NodeObj(NodeJson("node-a", "zone-1")));
  EXPECT_TRUE(cs.TakePendingChanges().all);
  cs.UpsertNode(NodeObj(NodeJson("node-a", "zone-1", "192.168.0.9")));  // address only
  EXPECT_FALSE(cs.TakePendingChanges().all);
  cs.UpsertNode(NodeObj(NodeJson("node-a", "zone-2", "192.168.0.9")));
  EXPECT_TRUE(cs.TakePendingChanges().all);
  EXPECT_EQ(cs.ThisNode()->Zone(), "zone-2");
}

TEST(ClusterState, WaitsForEverySource) {
  ClusterState cs("node-a");
  EXPECT_TRUE(cs.AllSourcesSynced());
  cs.RegisterSource("services");
  cs.RegisterSource("endpointslices");
  EXPECT_FALSE(cs.AllSourcesSynced());
  cs.MarkSourceSynced("services");
  EXPECT_FALSE(cs.AllSourcesSynced());
  cs.MarkSourceSynced("endpointslices");
  EXPECT_TRUE(cs.AllSourcesSynced());
  EXPECT_TRUE(cs.TakePendingChanges().all);
}

TEST(ClusterState, KeepsTheEarliestTriggerTimePerService) {
  ClusterState cs("node-a");
  auto a = SliceJson("web-1", "web", {{.ip = "10.0.0.1"}});
  a["metadata"]["annotations"]["endpoints.kubernetes.io/last-change-trigger-time"] =
      "2026-01-01T10:00:05Z";
  auto b = SliceJson("web-2", "web", {{.ip = "10.0.0.2"}});
  b["metadata"]["annotations"]["endpoints.kubernetes.io/last-change-trigger-time"] =
      "2026-01-01T10:00:01Z";
  cs.UpsertEndpointSlice(Slice(a));
  cs.UpsertEndpointSlice(Slice(b));
  auto p = cs.TakePendingChanges();
  ASSERT_EQ(p.trigger_times.count("default/web"), 1u);
  EXPECT_EQ(p.trigger_times["default/web"],
            std::chrono::system_clock::time_point(*api::ParseTimestamp("2026-01-01T10:00:01Z")));
}

}  // namespace
}  // namespace sluice::state
