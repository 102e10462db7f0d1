#include "controlplane/state/node_state.h"

#include <gtest/gtest.h>

#include "controlplane/state/testing/objects.h"

namespace sluice::state {
namespace {

using testing::Ep;
using testing::Fixture;
using testing::NodeJson;
using testing::NodeObj;
using testing::Slice;
using testing::SliceJson;
using testing::Svc;
using testing::SvcJson;
using SlicePtr = std::shared_ptr<const api::EndpointSlice>;

constexpr char kNode[] = "node-a";

NodeInfo Node(std::string zone = "", std::string name = kNode) {
  return ComputeNodeInfo(name, NodeObj(NodeJson(name, zone)).get());
}

std::optional<ServiceState> Compute(const nlohmann::json& svc, std::vector<SlicePtr> slices,
                                    const NodeInfo& node = Node(),
                                    NodeStateOptions options = {.node_name = kNode}) {
  return ComputeServiceState(*Svc(svc), slices, node, options);
}

// The addresses of a list of endpoints, "ip:port" each, in order.
std::vector<std::string> Addrs(const std::vector<Endpoint>& eps) {
  std::vector<std::string> out;
  for (const auto& e : eps) out.push_back(e.ToString());
  return out;
}
using Strings = std::vector<std::string>;

// ---- The reference fixtures ----

TEST(NodeStateFixtures, ClusterIpMultiportWithoutEndpointsRejects) {
  auto s = Compute(Fixture("service-clusterip-multiport.json"), {});
  ASSERT_TRUE(s);
  EXPECT_EQ(s->key, "default/my-service");
  ASSERT_EQ(s->ports.size(), 2u);
  EXPECT_EQ(s->ports[0].name.ToString(), "default/my-service:http");
  EXPECT_EQ(s->ports[0].cluster_ip.ToString(), "10.0.171.239");
  EXPECT_EQ(s->ports[0].port, 80);
  EXPECT_EQ(s->ports[1].name.port, "https");
  EXPECT_EQ(s->ports[1].port, 443);
  for (const auto& p : s->ports) {
    EXPECT_EQ(p.family, IpFamily::kV4);
    EXPECT_FALSE(p.externally_accessible());
    EXPECT_FALSE(p.has_any_endpoints);
    EXPECT_EQ(p.internal_verdict, TrafficVerdict::kReject);
    EXPECT_EQ(p.affinity_timeout_seconds, 0u);
  }
}

TEST(NodeStateFixtures, HeadlessAndExternalNameAreIgnored) {
  EXPECT_FALSE(Compute(Fixture("service-headless.json"), {}));
  EXPECT_FALSE(Compute(Fixture("service-externalname.json"), {}));
}

TEST(NodeStateFixtures, DualStackLoadBalancerIpv6PrimaryWithNilConditionsSlice) {
  // The IPv6 slice and the Node fixture describe the same cluster: endpoints ::a and ::c run on
  // this node, ::b is neither ready nor serving.
  auto node_obj = NodeObj(Fixture("node-dualstack.json"));
  NodeInfo node = ComputeNodeInfo(node_obj->metadata.name, node_obj.get());
  auto s = Compute(Fixture("service-dualstack-loadbalancer-ipv6-primary.json"),
                   {Slice(Fixture("endpointslice-ipv6-nil-conditions-SYNTHETIC.json"))}, node,
                   {.node_name = node.name});
  ASSERT_TRUE(s);
  ASSERT_EQ(s->ports.size(), 2u);
  const auto& v4 = s->ports[0];
  const auto& v6 = s->ports[1];
  EXPECT_EQ(v4.family, IpFamily::kV4);
  EXPECT_EQ(v4.cluster_ip.ToString(), "10.0.53.17");
  EXPECT_EQ(v4.node_port, 30790);
  EXPECT_TRUE(v4.load_balancer_ips.empty());  // the ingress IP is IPv6
  EXPECT_FALSE(v4.has_any_endpoints);         // no IPv4 slice
  EXPECT_EQ(v4.internal_verdict, TrafficVerdict::kReject);
  EXPECT_EQ(v4.external_verdict, TrafficVerdict::kReject);

  EXPECT_EQ(v6.family, IpFamily::kV6);
  EXPECT_EQ(v6.cluster_ip.ToString(), "2001:db8:fd00::7ebc");
  EXPECT_EQ(v6.node_port, 30790);
  ASSERT_EQ(v6.load_balancer_ips.size(), 1u);
  EXPECT_EQ(v6.load_balancer_ips[0].ToString(), "2603:1030:805::5");
  // ::a has nil conditions (ready), ::c has hints but ::a none, so the hints are ignored.
  EXPECT_EQ(Addrs(v6.cluster_endpoints), (Strings{"[2001:db8:1::a]:9376", "[2001:db8:1::c]:9376"}));
  EXPECT_TRUE(v6.cluster_endpoints[0].local);
  EXPECT_EQ(v6.local_ready_endpoints, 2u);
  EXPECT_EQ(v6.internal_verdict, TrafficVerdict::kForward);
  EXPECT_EQ(v6.external_verdict, TrafficVerdict::kForward);
  EXPECT_EQ(v6.health_check_node_port, 0);  // externalTrafficPolicy Cluster

  EXPECT_EQ(node.zone, "zone-a");
  ASSERT_EQ(node.node_ips.size(), 2u);
  EXPECT_EQ(node.node_ips[0].ToString(), "10.240.0.5");
  ASSERT_EQ(node.pod_cidrs.size(), 2u);
  EXPECT_EQ(node.pod_cidrs[1].ToString(), "a00:100::/24");
}

TEST(NodeStateFixtures, PreferDualStackClusterIpGetsAPortPerFamily) {
  auto s = Compute(Fixture("service-dualstack-preferdualstack.json"), {});
  ASSERT_TRUE(s);
  ASSERT_EQ(s->ports.size(), 2u);
  EXPECT_EQ(s->ports[0].cluster_ip.ToString(), "10.0.216.242");
  EXPECT_EQ(s->ports[1].cluster_ip.ToString(), "2001:db8:fd00::af55");
  // A node proxying only IPv4 programs only the IPv4 port.
  auto v4only = Compute(Fixture("service-dualstack-preferdualstack.json"), {}, Node(),
                        {.node_name = kNode, .families = {IpFamily::kV4}});
  ASSERT_TRUE(v4only);
  ASSERT_EQ(v4only->ports.size(), 1u);
  EXPECT_EQ(v4only->ports[0].family, IpFamily::kV4);
}

TEST(NodeStateFixtures, LoadBalancerStatusIngressIsCaptured) {
  auto s = Compute(Fixture("service-loadbalancer-docs-status.json"), {});
  ASSERT_TRUE(s);
  ASSERT_EQ(s->ports.size(), 1u);
  EXPECT_EQ(s->ports[0].node_port, 31201);
  ASSERT_EQ(s->ports[0].load_balancer_ips.size(), 1u);
  EXPECT_EQ(s->ports[0].load_balancer_ips[0].ToString(), "192.0.2.127");
  EXPECT_FALSE(s->ports[0].external_policy_local);
}

TEST(NodeStateFixtures, LoadBalancerLocalPolicyUsesLocalEndpointsAndHealthCheck) {
  auto svc = Fixture("service-loadbalancer-etp-local-ingress.json");
  auto slice = Slice(
      SliceJson("loadbalancer-1", "loadbalancer",
                {{.ip = "10.244.1.5", .node = kNode}, {.ip = "10.244.2.5", .node = "node-b"}}, ""));
  auto s = Compute(svc, {slice});
  ASSERT_TRUE(s);
  const auto& p = s->ports[0];
  EXPECT_TRUE(p.external_policy_local);
  EXPECT_EQ(p.health_check_node_port, 32122);
  EXPECT_EQ(p.load_balancer_ips[0].ToString(), "203.0.113.140");
  EXPECT_EQ(Addrs(p.external_endpoints()), (Strings{"10.244.1.5:8080"}));
  EXPECT_EQ(Addrs(p.internal_endpoints()), (Strings{"10.244.1.5:8080", "10.244.2.5:8080"}));
  EXPECT_EQ(p.local_ready_endpoints, 1u);
  EXPECT_EQ(p.external_verdict, TrafficVerdict::kForward);

  // Seen from node-b's neighbour node-c, which has no endpoint: external traffic is dropped (the
  // load balancer's health check steers away), ClusterIP traffic still works.
  auto other = Compute(svc, {slice}, Node("", "node-c"), {.node_name = "node-c"});
  ASSERT_TRUE(other);
  EXPECT_TRUE(other->ports[0].local_endpoints.empty());
  EXPECT_EQ(other->ports[0].external_verdict, TrafficVerdict::kDrop);
  EXPECT_EQ(other->ports[0].internal_verdict, TrafficVerdict::kForward);
  EXPECT_EQ(other->ports[0].local_ready_endpoints, 0u);
}

TEST(NodeStateFixtures, NodePortLocalPolicyHasNoHealthCheckPort) {
  auto s = Compute(Fixture("service-nodeport-etp-local.json"), {});
  ASSERT_TRUE(s);
  EXPECT_TRUE(s->ports[0].external_policy_local);
  EXPECT_EQ(s->ports[0].node_port, 30596);
  EXPECT_EQ(s->ports[0].health_check_node_port, 0);
  EXPECT_EQ(s->ports[0].external_verdict, TrafficVerdict::kReject);  // no endpoints anywhere
}

TEST(NodeStateFixtures, DocsBasicSliceJoinsTheNamedPort) {
  auto s =
      Compute(SvcJson("example", "10.96.0.20"), {Slice(Fixture("endpointslice-docs-basic.json"))},
              Node("", "node-1"), {.node_name = "node-1"});
  ASSERT_TRUE(s);
  EXPECT_EQ(Addrs(s->ports[0].cluster_endpoints), (Strings{"10.1.2.3:80"}));
  EXPECT_TRUE(s->ports[0].cluster_endpoints[0].local);
}

TEST(NodeStateFixtures, TerminatingAndReadySliceUsesOnlyTheReadyOne) {
  auto slice = Slice(Fixture("endpointslice-terminating-and-ready.json"));
  nlohmann::json svc = SvcJson("nginx-service", "10.96.0.30");
  svc["spec"]["ports"][0]["name"] = "";
  auto s = Compute(svc, {slice});
  ASSERT_TRUE(s);
  EXPECT_EQ(Addrs(s->ports[0].cluster_endpoints), (Strings{"10.12.1.202:80"}));
}

TEST(NodeStateFixtures, TopologyHintsSliceFollowsTheZone) {
  auto slice = Slice(Fixture("endpointslice-topology-hints.json"));
  auto svc = SvcJson("example-svc", "10.96.0.40");
  // In zone-a the hint applies; in zone-b no endpoint is hinted for us, so hints are ignored
  // rather than leaving the node without endpoints.
  for (std::string zone : {"zone-a", "zone-b", ""}) {
    auto s = Compute(svc, {slice}, Node(zone));
    ASSERT_TRUE(s);
    EXPECT_EQ(Addrs(s->ports[0].cluster_endpoints), (Strings{"10.1.2.3:80"})) << zone;
  }
}

// ---- The rules, case by case (the cases kube-proxy's topology and endpoint tests cover) ----

TEST(NodeStateRules, NotReadyEndpointsAreNotUsed) {
  auto s = Compute(
      SvcJson("web", "10.96.0.1"),
      {Slice(SliceJson("web-1", "web", {{.ip = "10.0.0.1"}, {.ip = "10.0.0.2", .ready = false}}))});
  EXPECT_EQ(Addrs(s->ports[0].cluster_endpoints), (Strings{"10.0.0.1:8080"}));
  EXPECT_EQ(s->ports[0].internal_verdict, TrafficVerdict::kForward);
}

TEST(NodeStateRules, NoReadyEndpointsFallBackToServingTerminating) {
  auto s =
      Compute(SvcJson("web", "10.96.0.1"),
              {Slice(SliceJson(
                  "web-1", "web",
                  {{.ip = "10.0.0.1", .ready = false, .serving = true, .terminating = true},
                   {.ip = "10.0.0.2", .ready = false, .serving = false, .terminating = true},
                   {.ip = "10.0.0.3", .ready = false, .serving = false, .terminating = false}}))});
  EXPECT_EQ(Addrs(s->ports[0].cluster_endpoints), (Strings{"10.0.0.1:8080"}));
  EXPECT_TRUE(s->ports[0].has_any_endpoints);
  EXPECT_EQ(s->ports[0].internal_verdict, TrafficVerdict::kForward);
}

TEST(NodeStateRules, OnlyNonServingEndpointsMeansReject) {
  auto s =
      Compute(SvcJson("web", "10.96.0.1"),
              {Slice(SliceJson(
                  "web-1", "web",
                  {{.ip = "10.0.0.1", .ready = false, .serving = false, .terminating = true}}))});
  EXPECT_TRUE(s->ports[0].cluster_endpoints.empty());
  EXPECT_FALSE(s->ports[0].has_any_endpoints);
  EXPECT_EQ(s->ports[0].internal_verdict, TrafficVerdict::kReject);
}

TEST(NodeStateRules, LocalPolicyFallsBackToLocalTerminatingIndependently) {
  // A ready remote endpoint and a terminating local one: Cluster uses the ready one, Local the
  // local terminating one (each list falls back on its own).
  auto svc = SvcJson("web", "10.96.0.1",
                     {{"type", "NodePort"},
                      {"externalTrafficPolicy", "Local"},
                      {"ports", {{{"name", "http"}, {"port", 80}, {"nodePort", 30080}}}}});
  auto s = Compute(svc, {Slice(SliceJson("web-1", "web",
                                         {{.ip = "10.0.0.1", .node = "node-b"},
                                          {.ip = "10.0.0.2",
                                           .node = kNode,
                                           .ready = false,
                                           .serving = true,
                                           .terminating = true}}))});
  const auto& p = s->ports[0];
  EXPECT_EQ(Addrs(p.cluster_endpoints), (Strings{"10.0.0.1:8080"}));
  EXPECT_EQ(Addrs(p.local_endpoints), (Strings{"10.0.0.2:8080"}));
  EXPECT_EQ(Addrs(p.AllReachableEndpoints()), (Strings{"10.0.0.1:8080", "10.0.0.2:8080"}));
  EXPECT_EQ(p.local_ready_endpoints, 0u);  // health check counts ready ones only
  EXPECT_EQ(p.external_verdict, TrafficVerdict::kForward);
}

TEST(NodeStateRules, ExternalTrafficPolicyLocalIgnoredForClusterIpType) {
  // externalTrafficPolicy only means something for NodePort and LoadBalancer.
  auto svc = SvcJson("web", "10.96.0.1",
                     {{"externalIPs", {"192.0.2.10"}}, {"externalTrafficPolicy", "Local"}});
  auto s = Compute(svc, {Slice(SliceJson("web-1", "web", {{.ip = "10.0.0.1", .node = "node-b"}}))});
  EXPECT_FALSE(s->ports[0].external_policy_local);
  EXPECT_EQ(Addrs(s->ports[0].external_endpoints()), (Strings{"10.0.0.1:8080"}));
}

TEST(NodeStateRules, InternalTrafficPolicyLocal) {
  auto svc = SvcJson("web", "10.96.0.1", {{"internalTrafficPolicy", "Local"}});
  auto slice = Slice(SliceJson(
      "web-1", "web", {{.ip = "10.0.0.1", .node = "node-b"}, {.ip = "10.0.0.2", .node = kNode}}));
  auto s = Compute(svc, {slice});
  const auto& p = s->ports[0];
  EXPECT_TRUE(p.internal_policy_local);
  EXPECT_EQ(Addrs(p.internal_endpoints()), (Strings{"10.0.0.2:8080"}));
  EXPECT_TRUE(p.cluster_endpoints.empty());  // not externally accessible: Cluster list unused
  EXPECT_EQ(p.internal_verdict, TrafficVerdict::kForward);

  // A node without a local endpoint drops ClusterIP traffic (endpoints exist elsewhere).
  auto far = Compute(svc, {slice}, Node("", "node-c"), {.node_name = "node-c"});
  EXPECT_TRUE(far->ports[0].internal_endpoints().empty());
  EXPECT_TRUE(far->ports[0].has_any_endpoints);
  EXPECT_EQ(far->ports[0].internal_verdict, TrafficVerdict::kDrop);
}

TEST(NodeStateRules, BothPoliciesLocalOnANodePortKeepClusterEndpointsForShortCircuit) {
  auto svc = SvcJson("web", "10.96.0.1",
                     {{"type", "NodePort"},
                      {"externalTrafficPolicy", "Local"},
                      {"internalTrafficPolicy", "Local"},
                      {"ports", {{{"name", "http"}, {"port", 80}, {"nodePort", 30080}}}}});
  auto s = Compute(svc, {Slice(SliceJson("web-1", "web", {{.ip = "10.0.0.1", .node = "node-b"}}))});
  const auto& p = s->ports[0];
  EXPECT_EQ(Addrs(p.cluster_endpoints), (Strings{"10.0.0.1:8080"}));
  EXPECT_TRUE(p.local_endpoints.empty());
  EXPECT_EQ(p.internal_verdict, TrafficVerdict::kDrop);
  EXPECT_EQ(p.external_verdict, TrafficVerdict::kDrop);
}

TEST(NodeStateRules, ZoneHintsFilterWhenEveryReadyEndpointHasThem) {
  auto svc = SvcJson("web", "10.96.0.1", {{"trafficDistribution", "PreferSameZone"}});
  auto hinted = Slice(SliceJson("web-1", "web",
                                {{.ip = "10.0.0.1", .zone_hints = {"zone-a"}},
                                 {.ip = "10.0.0.2", .zone_hints = {"zone-b"}},
                                 {.ip = "10.0.0.3", .ready = false, .zone_hints = {}}}));
  EXPECT_EQ(Addrs(Compute(svc, {hinted}, Node("zone-a"))->ports[0].cluster_endpoints),
            (Strings{"10.0.0.1:8080"}));
  EXPECT_EQ(Addrs(Compute(svc, {hinted}, Node("zone-b"))->ports[0].cluster_endpoints),
            (Strings{"10.0.0.2:8080"}));
  // No endpoint for zone-c, or the node has no zone label: hints ignored.
  EXPECT_EQ(Compute(svc, {hinted}, Node("zone-c"))->ports[0].cluster_endpoints.size(), 2u);
  EXPECT_EQ(Compute(svc, {hinted}, Node(""))->ports[0].cluster_endpoints.size(), 2u);
  // One ready endpoint without a hint: hints ignored.
  auto partial = Slice(SliceJson(
      "web-1", "web", {{.ip = "10.0.0.1", .zone_hints = {"zone-a"}}, {.ip = "10.0.0.2"}}));
  EXPECT_EQ(Compute(svc, {partial}, Node("zone-a"))->ports[0].cluster_endpoints.size(), 2u);
}

// kube-proxy's TestCategorizeEndpoints: "only unready endpoints in same zone (should not filter)".
TEST(NodeStateRules, HintsForOurZoneOnlyOnUnreadyEndpointsAreIgnored) {
  auto svc = SvcJson("web", "10.96.0.1");
  auto slice = Slice(SliceJson("web-1", "web",
                               {{.ip = "10.1.2.3", .ready = false, .zone_hints = {"zone-a"}},
                                {.ip = "10.1.2.4", .zone_hints = {"zone-b"}},
                                {.ip = "10.1.2.5", .zone_hints = {"zone-c"}},
                                {.ip = "10.1.2.6", .ready = false, .zone_hints = {"zone-a"}}}));
  EXPECT_EQ(Addrs(Compute(svc, {slice}, Node("zone-a"))->ports[0].cluster_endpoints),
            (Strings{"10.1.2.4:8080", "10.1.2.5:8080"}));
}

// kube-proxy's TestCategorizeEndpoints: "conflicting topology and localness require merging
// allEndpoints" (topology narrows the Cluster list, not the Local one).
TEST(NodeStateRules, TopologyAppliesToClusterEndpointsNotLocalOnes) {
  auto svc = SvcJson("web", "10.96.0.1",
                     {{"type", "NodePort"},
                      {"externalTrafficPolicy", "Local"},
                      {"ports", {{{"name", "http"}, {"port", 80}, {"nodePort", 30080}}}}});
  auto slice = Slice(SliceJson("web-1", "web",
                               {{.ip = "10.0.0.0", .node = kNode, .zone_hints = {"zone-a"}},
                                {.ip = "10.0.0.1", .node = kNode, .zone_hints = {"zone-b"}},
                                {.ip = "10.0.0.2", .node = "node-b", .zone_hints = {"zone-a"}},
                                {.ip = "10.0.0.3", .node = "node-b", .zone_hints = {"zone-b"}}}));
  const auto p = Compute(svc, {slice}, Node("zone-a"))->ports[0];
  EXPECT_EQ(Addrs(p.cluster_endpoints), (Strings{"10.0.0.0:8080", "10.0.0.2:8080"}));
  EXPECT_EQ(Addrs(p.local_endpoints), (Strings{"10.0.0.0:8080", "10.0.0.1:8080"}));
  EXPECT_EQ(Addrs(p.AllReachableEndpoints()),
            (Strings{"10.0.0.0:8080", "10.0.0.1:8080", "10.0.0.2:8080"}));
}

TEST(NodeStateRules, NodeHintsWinOverZoneHints) {
  // trafficDistribution PreferSameNode: the controller writes node hints (and zone hints).
  auto svc = SvcJson("web", "10.96.0.1", {{"trafficDistribution", "PreferSameNode"}});
  auto slice = Slice(SliceJson(
      "web-1", "web",
      {{.ip = "10.0.0.1", .node = kNode, .zone_hints = {"zone-a"}, .node_hints = {kNode}},
       {.ip = "10.0.0.2", .node = "node-b", .zone_hints = {"zone-a"}, .node_hints = {"node-b"}}}));
  EXPECT_EQ(Addrs(Compute(svc, {slice}, Node("zone-a"))->ports[0].cluster_endpoints),
            (Strings{"10.0.0.1:8080"}));
  // node-c has no node hint: falls back to the zone hints, both endpoints in zone-a.
  EXPECT_EQ(Compute(svc, {slice}, Node("zone-a", "node-c"), {.node_name = "node-c"})
                ->ports[0]
                .cluster_endpoints.size(),
            2u);
}

TEST(NodeStateRules, TopologyNeverHidesTerminatingFallback) {
  auto svc = SvcJson("web", "10.96.0.1");
  auto slice = Slice(SliceJson("web-1", "web",
                               {{.ip = "10.0.0.1",
                                 .ready = false,
                                 .serving = true,
                                 .terminating = true,
                                 .zone_hints = {"zone-b"}}}));
  EXPECT_EQ(Compute(svc, {slice}, Node("zone-a"))->ports[0].cluster_endpoints.size(), 1u);
}

TEST(NodeStateRules, SessionAffinityTimeout) {
  auto dflt = Compute(SvcJson("web", "10.96.0.1", {{"sessionAffinity", "ClientIP"}}), {});
  EXPECT_EQ(dflt->ports[0].affinity_timeout_seconds, 10800u);
  auto set = Compute(SvcJson("web", "10.96.0.1",
                             {{"sessionAffinity", "ClientIP"},
                              {"sessionAffinityConfig", {{"clientIP", {{"timeoutSeconds", 60}}}}}}),
                     {});
  EXPECT_EQ(set->ports[0].affinity_timeout_seconds, 60u);
  auto none = Compute(SvcJson("web", "10.96.0.1", {{"sessionAffinity", "None"}}), {});
  EXPECT_EQ(none->ports[0].affinity_timeout_seconds, 0u);
}

TEST(NodeStateRules, NamedTargetPortsResolveThroughSlicePortNames) {
  // Two service ports with named target ports; the slice carries the resolved numbers under the
  // service port names, and may differ per slice (pods with different container ports).
  auto svc = SvcJson("web", "10.96.0.1",
                     {{"ports",
                       {{{"name", "http"}, {"port", 80}, {"targetPort", "web"}},
                        {{"name", "metrics"}, {"port", 9100}, {"targetPort", "prom"}}}}});
  nlohmann::json a = SliceJson("web-a", "web", {{.ip = "10.0.0.1"}});
  a["ports"] = {{{"name", "http"}, {"port", 8080}}, {{"name", "metrics"}, {"port", 9090}}};
  nlohmann::json b = SliceJson("web-b", "web", {{.ip = "10.0.0.2"}});
  b["ports"] = {{{"name", "http"}, {"port", 8081}}, {{"name", "metrics"}, {"port", 9091}}};
  auto s = Compute(svc, {Slice(a), Slice(b)});
  ASSERT_EQ(s->ports.size(), 2u);
  EXPECT_EQ(Addrs(s->ports[0].cluster_endpoints), (Strings{"10.0.0.1:8080", "10.0.0.2:8081"}));
  EXPECT_EQ(Addrs(s->ports[1].cluster_endpoints), (Strings{"10.0.0.1:9090", "10.0.0.2:9091"}));
}

TEST(NodeStateRules, SlicePortsJoinByNameAndProtocolOnly) {
  auto svc = SvcJson("dns", "10.96.0.10",
                     {{"ports",
                       {{{"name", "dns"}, {"port", 53}, {"protocol", "UDP"}},
                        {{"name", "dns-tcp"}, {"port", 53}, {"protocol", "TCP"}}}}});
  nlohmann::json sl = SliceJson("dns-1", "dns", {{.ip = "10.0.0.1"}});
  sl["ports"] = {{{"name", "dns"}, {"port", 5353}, {"protocol", "UDP"}},
                 {{"name", "dns-tcp"}, {"port", 5353}, {"protocol", "TCP"}},
                 {{"name", "dns-sctp"}, {"port", 6000}, {"protocol", "SCTP"}},  // no such port
                 {{"port", 7000}},                                              // nil name: skipped
                 {{"name", "other"}, {"port", 7001}}};
  // Same name, other protocol: joins nothing.
  nlohmann::json sctp = SliceJson("dns-2", "dns", {{.ip = "10.0.0.2"}});
  sctp["ports"] = {{{"name", "dns"}, {"port", 6000}, {"protocol", "SCTP"}}};
  auto s = Compute(svc, {Slice(sl), Slice(sctp)});
  ASSERT_EQ(s->ports.size(), 2u);
  EXPECT_EQ(s->ports[0].name.protocol, api::Protocol::kUdp);
  EXPECT_EQ(Addrs(s->ports[0].cluster_endpoints), (Strings{"10.0.0.1:5353"}));
  EXPECT_EQ(Addrs(s->ports[1].cluster_endpoints), (Strings{"10.0.0.1:5353"}));
}

TEST(NodeStateRules, DuplicateEndpointsAcrossSlicesCollapsePreferringLocal) {
  auto svc = SvcJson("web", "10.96.0.1");
  auto a = Slice(SliceJson("web-a", "web", {{.ip = "10.0.0.1", .node = "node-b"}}));
  auto b =
      Slice(SliceJson("web-b", "web", {{.ip = "10.0.0.1", .node = kNode}, {.ip = "10.0.0.2"}}));
  auto s = Compute(svc, {a, b});
  ASSERT_EQ(s->ports[0].cluster_endpoints.size(), 2u);
  EXPECT_TRUE(s->ports[0].cluster_endpoints[0].local);
}

TEST(NodeStateRules, SlicesOfTheOtherFamilyAndFqdnSlicesAreIgnored) {
  auto svc = SvcJson("web", "10.96.0.1");
  auto v6 = Slice(SliceJson("web-6", "web", {{.ip = "fd00::1"}}, "http", 8080, "IPv6"));
  nlohmann::json fqdn = SliceJson("web-f", "web", {{.ip = "example.com"}}, "http", 8080, "FQDN");
  auto s = Compute(svc, {v6, Slice(fqdn)});
  ASSERT_EQ(s->ports.size(), 1u);
  EXPECT_TRUE(s->ports[0].cluster_endpoints.empty());
  EXPECT_EQ(s->ports[0].internal_verdict, TrafficVerdict::kReject);
}

TEST(NodeStateRules, DestinationsAreSplitByFamily) {
  auto svc = SvcJson("web", "10.96.0.1",
                     {{"type", "LoadBalancer"},
                      {"clusterIPs", {"10.96.0.1", "fd00:96::1"}},
                      {"ipFamilies", {"IPv4", "IPv6"}},
                      {"ipFamilyPolicy", "RequireDualStack"},
                      {"externalIPs", {"192.0.2.1", "2001:db8::1"}},
                      {"loadBalancerSourceRanges", {"198.51.100.0/24", "2001:db8:1::/48"}},
                      {"ports", {{{"name", "http"}, {"port", 80}, {"nodePort", 30080}}}}});
  svc["status"]["loadBalancer"]["ingress"] = {{{"ip", "203.0.113.1"}},
                                              {{"ip", "203.0.113.2"}, {"ipMode", "Proxy"}},
                                              {{"ip", "2001:db8:2::1"}, {"ipMode", "VIP"}},
                                              {{"hostname", "lb.example.com"}}};
  auto s = Compute(svc, {});
  ASSERT_EQ(s->ports.size(), 2u);
  const auto& v4 = s->ports[0];
  const auto& v6 = s->ports[1];
  EXPECT_EQ(v4.external_ips.size(), 1u);
  EXPECT_EQ(v4.external_ips[0].ToString(), "192.0.2.1");
  EXPECT_EQ(v6.external_ips[0].ToString(), "2001:db8::1");
  // ipMode Proxy: not captured by the node.
  ASSERT_EQ(v4.load_balancer_ips.size(), 1u);
  EXPECT_EQ(v4.load_balancer_ips[0].ToString(), "203.0.113.1");
  ASSERT_EQ(v6.load_balancer_ips.size(), 1u);
  EXPECT_EQ(v4.load_balancer_source_ranges[0].ToString(), "198.51.100.0/24");
  EXPECT_EQ(v6.load_balancer_source_ranges[0].ToString(), "2001:db8:1::/48");
  EXPECT_EQ(v6.cluster_ip.ToString(), "fd00:96::1");
}

TEST(NodeStateRules, ServiceWithoutClusterIpIsIgnored) {
  nlohmann::json svc = SvcJson("web", "10.96.0.1");
  svc["spec"].erase("clusterIP");
  EXPECT_FALSE(Compute(svc, {}));
}

TEST(NodeStateRules, ToStringNamesEverything) {
  auto svc = SvcJson("web", "10.96.0.1",
                     {{"type", "NodePort"},
                      {"sessionAffinity", "ClientIP"},
                      {"ports", {{{"name", "http"}, {"port", 80}, {"nodePort", 30080}}}}});
  auto s = Compute(svc, {Slice(SliceJson("web-1", "web", {{.ip = "10.0.0.1", .node = kNode}}))});
  EXPECT_EQ(s->ports[0].ToString(),
            "default/web:http TCP IPv4 clusterIP 10.96.0.1:80 nodePort 30080 affinity "
            "ClientIP/10800s internal [10.0.0.1:8080(local)] forward external "
            "[10.0.0.1:8080(local)] forward");
}

}  // namespace
}  // namespace sluice::state
