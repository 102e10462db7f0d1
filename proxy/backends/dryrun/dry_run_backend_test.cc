#include "proxy/backends/dryrun/dry_run_backend.h"

#include <gtest/gtest.h>

#include <sstream>

#include "controlplane/state/node_state_tracker.h"
#include "controlplane/state/testing/objects.h"

namespace sluice::proxy {
namespace {

using state::testing::Ep;
using state::testing::Slice;
using state::testing::SliceJson;
using state::testing::Svc;
using state::testing::SvcJson;

TEST(DryRunBackend, PrintsEverythingFirstThenTheDifference) {
  state::ClusterState cs("node-a");
  state::NodeStateTracker t({.node_name = "node-a"});
  std::ostringstream out;
  DryRunBackend b(out);
  cs.UpsertService(Svc(SvcJson("web", "10.96.0.1")));
  cs.UpsertService(Svc(SvcJson("db", "10.96.0.2")));
  cs.UpsertEndpointSlice(Slice(SliceJson("web-1", "web", {{.ip = "10.0.0.1", .node = "node-a"}})));
  auto c = t.Update(cs, true);
  b.Sync(t.state(), c);
  EXPECT_EQ(out.str(),
            "sync 1 (full): 2 services, 2 services / 2 ports in total; node node-a (no Node "
            "object yet)\n"
            "+ default/db:http TCP IPv4 clusterIP 10.96.0.2:80 internal [] reject\n"
            "+ default/web:http TCP IPv4 clusterIP 10.96.0.1:80 internal "
            "[10.0.0.1:8080(local)] forward\n");
  out.str("");
  cs.UpsertEndpointSlice(Slice(SliceJson("db-1", "db", {{.ip = "10.0.0.2"}})));
  cs.DeleteService("default/web");
  b.Sync(t.state(), t.Update(cs));
  EXPECT_EQ(out.str(),
            "sync 2 (partial): 2 services changed, 1 services / 1 ports in total\n"
            "~ default/db:http TCP IPv4 clusterIP 10.96.0.2:80 internal [10.0.0.2:8080] forward\n"
            "- default/web\n");
}

}  // namespace
}  // namespace sluice::proxy
