// The iptables layout as a pure function of NodeState: kube-proxy's chain names, golden text for
// each kind of service port, kube-proxy's own overall scenario, and partial syncs.
#include "proxy/backends/iptables/layout.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <map>
#include <set>
#include <memory>
#include <sstream>
#include <string>

namespace sluice::proxy::iptables {
namespace {

using state::Endpoint;
using state::ServicePortState;
using state::ServiceState;
using state::TrafficVerdict;

Endpoint Ep(std::string_view ip, uint16_t port, bool local = false) {
  Endpoint e;
  e.ip = IpAddress::MustParse(ip);
  e.port = port;
  e.local = local;
  return e;
}

// A port whose verdicts and endpoint lists follow from `eps` as NodeState computes them.
ServicePortState Port(std::string ns, std::string name, std::string_view cluster_ip, uint16_t port,
                      std::vector<Endpoint> eps, api::Protocol proto = api::Protocol::kTcp) {
  ServicePortState p;
  p.name = {std::move(ns), std::move(name), "p" + std::to_string(port), proto};
  p.cluster_ip = IpAddress::MustParse(cluster_ip);
  p.family = p.cluster_ip.family();
  p.port = port;
  p.cluster_endpoints = std::move(eps);
  return p;
}

// Fills the endpoint lists and verdicts the way NodeState does once the policies are set: each
// list only where a policy uses it.
ServicePortState Settle(ServicePortState p) {
  p.local_endpoints.clear();
  if (p.internal_policy_local || (p.external_policy_local && p.externally_accessible())) {
    for (const auto& e : p.cluster_endpoints) {
      if (e.local) p.local_endpoints.push_back(e);
    }
  }
  if (p.internal_policy_local && !p.externally_accessible()) p.cluster_endpoints.clear();
  p.has_any_endpoints = !p.cluster_endpoints.empty() || !p.local_endpoints.empty();
  if (!p.has_any_endpoints) {
    p.internal_verdict = p.external_verdict = TrafficVerdict::kReject;
  } else {
    p.internal_verdict =
        p.internal_endpoints().empty() ? TrafficVerdict::kDrop : TrafficVerdict::kForward;
    p.external_verdict =
        p.external_endpoints().empty() ? TrafficVerdict::kDrop : TrafficVerdict::kForward;
  }
  return p;
}

state::ServiceStatePtr Svc(std::vector<ServicePortState> ports) {
  const std::string key = ports.front().name.ServiceKey();
  for (auto& p : ports) p = Settle(std::move(p));
  return std::make_shared<const ServiceState>(ServiceState{key, std::move(ports)});
}

state::NodeState Node(std::vector<state::ServiceStatePtr> services) {
  state::NodeState st;
  st.node.name = "node-a";
  st.node.node_ips = {IpAddress::MustParse("192.168.0.2"), IpAddress::MustParse("fd00:1::2")};
  for (auto& s : services) st.services[s->key] = std::move(s);
  return st;
}

LayoutOptions Opts() {
  LayoutOptions o;
  o.cluster_cidrs = {IpPrefix::MustParse("10.0.0.0/8"), IpPrefix::MustParse("fd00:10::/48")};
  return o;
}

// Shared-chain rules (with their table), then each chain with its rules.
std::string Dump(const ServiceRules& r) {
  std::string s;
  for (size_t i = 0; i < kSharedChainCount; ++i) {
    const char* table = i < static_cast<size_t>(SharedChain::kNatServices) ? "filter " : "nat ";
    for (const auto& l : r.shared[i]) s += table + l + "\n";
  }
  for (const auto& c : r.chains) {
    s += ":" + c.name + "\n";
    for (const auto& l : c.rules) s += l + "\n";
  }
  return s;
}

std::string DumpOf(const state::ServiceStatePtr& svc, IpFamily f = IpFamily::kV4,
                   const LayoutOptions& o = Opts()) {
  return Dump(RenderService(*svc, f, o, Node({}).node));
}

// kube-proxy's names for the same service ports and endpoints: the chains of
// pkg/proxy/iptables/proxier_test.go (TestOverallIPTablesRules) and those every cluster has.
TEST(IptablesLayout, ChainNamesAreKubeProxys) {
  const state::ServicePortName svc1{"ns1", "svc1", "p80", api::Protocol::kTcp};
  EXPECT_EQ(ServicePortChainName(PortChain::kCluster, svc1), "KUBE-SVC-XPGD46QRK7WJZT7O");
  EXPECT_EQ(EndpointChainName(svc1, Ep("10.180.0.1", 80)), "KUBE-SEP-SXIVWICOYRO3J4NJ");
  const state::ServicePortName svc2{"ns2", "svc2", "p80", api::Protocol::kTcp};
  EXPECT_EQ(ServicePortChainName(PortChain::kCluster, svc2), "KUBE-SVC-GNZBNJ2PO5MGZ6GT");
  EXPECT_EQ(ServicePortChainName(PortChain::kExternal, svc2), "KUBE-EXT-GNZBNJ2PO5MGZ6GT");
  EXPECT_EQ(ServicePortChainName(PortChain::kLocal, svc2), "KUBE-SVL-GNZBNJ2PO5MGZ6GT");
  EXPECT_EQ(EndpointChainName(svc2, Ep("10.180.0.2", 80)), "KUBE-SEP-RS4RBKLTHTF2IUXJ");
  const state::ServicePortName svc4{"ns4", "svc4", "p80", api::Protocol::kTcp};
  EXPECT_EQ(EndpointChainName(svc4, Ep("10.180.0.5", 80)), "KUBE-SEP-C6EBXVWJJZMIWKLZ");
  const state::ServicePortName svc5{"ns5", "svc5", "p80", api::Protocol::kTcp};
  EXPECT_EQ(ServicePortChainName(PortChain::kFirewall, svc5), "KUBE-FW-NUKIZ6OKUXPJNT4C");
  EXPECT_EQ(EndpointChainName(svc5, Ep("10.180.0.3", 80)), "KUBE-SEP-I77PXRDZVX7PMWMN");

  EXPECT_EQ(ServicePortChainName(PortChain::kCluster,
                                 {"default", "kubernetes", "https", api::Protocol::kTcp}),
            "KUBE-SVC-NPX46M4PTMTKRN6Y");
  EXPECT_EQ(ServicePortChainName(PortChain::kCluster,
                                 {"kube-system", "kube-dns", "dns", api::Protocol::kUdp}),
            "KUBE-SVC-TCOU7JCQXEZGVUNU");
  EXPECT_EQ(ServicePortChainName(PortChain::kCluster,
                                 {"kube-system", "kube-dns", "dns-tcp", api::Protocol::kTcp}),
            "KUBE-SVC-ERIFXISQEP7F7OF4");
  EXPECT_EQ(PortProtoHash("kube-system/kube-dns:metrics", "tcp"), "JD5MR3NA4I4DYORP");

  EXPECT_TRUE(IsServiceChain("KUBE-SEP-SXIVWICOYRO3J4NJ"));
  EXPECT_TRUE(IsServiceChain("KUBE-FW-NUKIZ6OKUXPJNT4C"));
  EXPECT_FALSE(IsServiceChain("KUBE-SERVICES"));
  EXPECT_FALSE(IsServiceChain("KUBE-MARK-MASQ"));
}

TEST(IptablesLayout, ProbabilitiesPrintLikeKubeProxy) {
  EXPECT_EQ(Probability(2), "0.5000000000");
  EXPECT_EQ(Probability(3), "0.3333333333");
  EXPECT_EQ(Probability(7), "0.1428571429");
  EXPECT_EQ(Probability(1000), "0.0010000000");
}

TEST(IptablesLayout, ClusterIpWithThreeEndpointsFullText) {
  auto p = Port("ns1", "svc1", "172.30.0.41", 80,
                {Ep("10.180.0.1", 8080), Ep("10.180.0.2", 8080), Ep("10.180.0.3", 8080, true)});
  EXPECT_EQ(FullRestoreText(Node({Svc({p})}), IpFamily::kV4, Opts()),
            R"(*nat
:KUBE-SVC-XPGD46QRK7WJZT7O - [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-SEP-VLCBLZ3INDL6LVTP - [0:0]
:KUBE-SEP-NAZVJRW4ZXJURRRS - [0:0]
:KUBE-SEP-CPWPCALSNDDLLDLJ - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-MARK-MASQ - [0:0]
-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully
-A KUBE-SEP-CPWPCALSNDDLLDLJ -m comment --comment ns1/svc1:p80 -s 10.180.0.1 -j KUBE-MARK-MASQ
-A KUBE-SEP-CPWPCALSNDDLLDLJ -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.1:8080
-A KUBE-SEP-NAZVJRW4ZXJURRRS -m comment --comment ns1/svc1:p80 -s 10.180.0.3 -j KUBE-MARK-MASQ
-A KUBE-SEP-NAZVJRW4ZXJURRRS -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.3:8080
-A KUBE-SEP-VLCBLZ3INDL6LVTP -m comment --comment ns1/svc1:p80 -s 10.180.0.2 -j KUBE-MARK-MASQ
-A KUBE-SEP-VLCBLZ3INDL6LVTP -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.2:8080
-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O
-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL ! -d 127.0.0.0/8 -j KUBE-NODEPORTS
-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.0.1:8080" -m statistic --mode random --probability 0.3333333333 -j KUBE-SEP-CPWPCALSNDDLLDLJ
-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.0.2:8080" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-VLCBLZ3INDL6LVTP
-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.0.3:8080" -j KUBE-SEP-NAZVJRW4ZXJURRRS
COMMIT
*filter
:KUBE-SERVICES - [0:0]
:KUBE-EXTERNAL-SERVICES - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-PROXY-FIREWALL - [0:0]
:KUBE-FORWARD - [0:0]
-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
COMMIT
)");
}

// Each endpoint chain marks traffic from the endpoint itself for masquerade, so a pod reaching
// its own Service and landing on itself sees the node's address, not its own.
TEST(IptablesLayout, HairpinRuleInEveryEndpointChain) {
  auto p = Port("ns1", "svc1", "172.30.0.41", 80, {Ep("10.180.0.1", 80, true)});
  const ServiceRules r = RenderService(*Svc({p}), IpFamily::kV4, Opts(), Node({}).node);
  ASSERT_EQ(r.chains.size(), 2u);
  EXPECT_EQ(r.chains[1].name, "KUBE-SEP-SXIVWICOYRO3J4NJ");
  EXPECT_EQ(r.chains[1].rules.front(),
            "-A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -s 10.180.0.1 -j "
            "KUBE-MARK-MASQ");
}

TEST(IptablesLayout, NoEndpointsRejectInFilter) {
  auto p = Port("ns6", "svc6", "172.30.0.46", 80, {});
  p.node_port = 30006;
  p.external_ips = {IpAddress::MustParse("192.168.99.11")};
  p.load_balancer_ips = {IpAddress::MustParse("1.2.3.4")};
  p.load_balancer_source_ranges = {IpPrefix::MustParse("203.0.113.0/25")};
  // No nat rule at all, no chain: every destination is refused in filter.
  EXPECT_EQ(
      DumpOf(Svc({p})),
      R"(filter -A KUBE-SERVICES -m comment --comment "ns6/svc6:p80 has no endpoints" -m tcp -p tcp -d 172.30.0.46 --dport 80 -j REJECT
filter -A KUBE-EXTERNAL-SERVICES -m comment --comment "ns6/svc6:p80 has no endpoints" -m tcp -p tcp -d 192.168.99.11 --dport 80 -j REJECT
filter -A KUBE-EXTERNAL-SERVICES -m comment --comment "ns6/svc6:p80 has no endpoints" -m tcp -p tcp -d 1.2.3.4 --dport 80 -j REJECT
filter -A KUBE-EXTERNAL-SERVICES -m comment --comment "ns6/svc6:p80 has no endpoints" -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 30006 -j REJECT
)");
}

TEST(IptablesLayout, NodePortWithExternalPolicyLocal) {
  auto p =
      Port("ns2", "svc2", "172.30.0.42", 80, {Ep("10.180.0.2", 80, true), Ep("10.180.0.9", 80)});
  p.node_port = 3001;
  p.external_policy_local = true;
  // Outside clients keep their source and reach the local endpoint (KUBE-SVL-); pods and the
  // node itself short-circuit to every endpoint (KUBE-SVC-), the node's traffic masqueraded.
  EXPECT_EQ(
      DumpOf(Svc({p})),
      R"(nat -A KUBE-SERVICES -m comment --comment "ns2/svc2:p80 cluster IP" -m tcp -p tcp -d 172.30.0.42 --dport 80 -j KUBE-SVC-GNZBNJ2PO5MGZ6GT
nat -A KUBE-NODEPORTS -m comment --comment ns2/svc2:p80 -m tcp -p tcp --dport 3001 -j KUBE-EXT-GNZBNJ2PO5MGZ6GT
:KUBE-SVC-GNZBNJ2PO5MGZ6GT
-A KUBE-SVC-GNZBNJ2PO5MGZ6GT -m comment --comment "ns2/svc2:p80 cluster IP" -m tcp -p tcp -d 172.30.0.42 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
-A KUBE-SVC-GNZBNJ2PO5MGZ6GT -m comment --comment "ns2/svc2:p80 -> 10.180.0.2:80" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-RS4RBKLTHTF2IUXJ
-A KUBE-SVC-GNZBNJ2PO5MGZ6GT -m comment --comment "ns2/svc2:p80 -> 10.180.0.9:80" -j KUBE-SEP-J7U5MD4DR465WUF4
:KUBE-SVL-GNZBNJ2PO5MGZ6GT
-A KUBE-SVL-GNZBNJ2PO5MGZ6GT -m comment --comment "ns2/svc2:p80 -> 10.180.0.2:80" -j KUBE-SEP-RS4RBKLTHTF2IUXJ
:KUBE-EXT-GNZBNJ2PO5MGZ6GT
-A KUBE-EXT-GNZBNJ2PO5MGZ6GT -m comment --comment "pod traffic for ns2/svc2:p80 external destinations" -s 10.0.0.0/8 -j KUBE-SVC-GNZBNJ2PO5MGZ6GT
-A KUBE-EXT-GNZBNJ2PO5MGZ6GT -m comment --comment "masquerade LOCAL traffic for ns2/svc2:p80 external destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ
-A KUBE-EXT-GNZBNJ2PO5MGZ6GT -m comment --comment "route LOCAL traffic for ns2/svc2:p80 external destinations" -m addrtype --src-type LOCAL -j KUBE-SVC-GNZBNJ2PO5MGZ6GT
-A KUBE-EXT-GNZBNJ2PO5MGZ6GT -j KUBE-SVL-GNZBNJ2PO5MGZ6GT
:KUBE-SEP-RS4RBKLTHTF2IUXJ
-A KUBE-SEP-RS4RBKLTHTF2IUXJ -m comment --comment ns2/svc2:p80 -s 10.180.0.2 -j KUBE-MARK-MASQ
-A KUBE-SEP-RS4RBKLTHTF2IUXJ -m comment --comment ns2/svc2:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.2:80
:KUBE-SEP-J7U5MD4DR465WUF4
-A KUBE-SEP-J7U5MD4DR465WUF4 -m comment --comment ns2/svc2:p80 -s 10.180.0.9 -j KUBE-MARK-MASQ
-A KUBE-SEP-J7U5MD4DR465WUF4 -m comment --comment ns2/svc2:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.9:80
)");

  // No local endpoint: outside clients are dropped in filter, the short-circuit stays.
  auto remote = Port("ns2", "svc2", "172.30.0.42", 80, {Ep("10.180.0.9", 80)});
  remote.node_port = 3001;
  remote.external_policy_local = true;
  remote.health_check_node_port = 30000;
  EXPECT_EQ(
      DumpOf(Svc({remote})),
      R"(filter -A KUBE-EXTERNAL-SERVICES -m comment --comment "ns2/svc2:p80 has no local endpoints" -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 3001 -j DROP
filter -A KUBE-NODEPORTS -m comment --comment "ns2/svc2:p80 health check node port" -m tcp -p tcp --dport 30000 -j ACCEPT
nat -A KUBE-SERVICES -m comment --comment "ns2/svc2:p80 cluster IP" -m tcp -p tcp -d 172.30.0.42 --dport 80 -j KUBE-SVC-GNZBNJ2PO5MGZ6GT
nat -A KUBE-NODEPORTS -m comment --comment ns2/svc2:p80 -m tcp -p tcp --dport 3001 -j KUBE-EXT-GNZBNJ2PO5MGZ6GT
:KUBE-SVC-GNZBNJ2PO5MGZ6GT
-A KUBE-SVC-GNZBNJ2PO5MGZ6GT -m comment --comment "ns2/svc2:p80 cluster IP" -m tcp -p tcp -d 172.30.0.42 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
-A KUBE-SVC-GNZBNJ2PO5MGZ6GT -m comment --comment "ns2/svc2:p80 -> 10.180.0.9:80" -j KUBE-SEP-J7U5MD4DR465WUF4
:KUBE-EXT-GNZBNJ2PO5MGZ6GT
-A KUBE-EXT-GNZBNJ2PO5MGZ6GT -m comment --comment "pod traffic for ns2/svc2:p80 external destinations" -s 10.0.0.0/8 -j KUBE-SVC-GNZBNJ2PO5MGZ6GT
-A KUBE-EXT-GNZBNJ2PO5MGZ6GT -m comment --comment "masquerade LOCAL traffic for ns2/svc2:p80 external destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ
-A KUBE-EXT-GNZBNJ2PO5MGZ6GT -m comment --comment "route LOCAL traffic for ns2/svc2:p80 external destinations" -m addrtype --src-type LOCAL -j KUBE-SVC-GNZBNJ2PO5MGZ6GT
:KUBE-SEP-J7U5MD4DR465WUF4
-A KUBE-SEP-J7U5MD4DR465WUF4 -m comment --comment ns2/svc2:p80 -s 10.180.0.9 -j KUBE-MARK-MASQ
-A KUBE-SEP-J7U5MD4DR465WUF4 -m comment --comment ns2/svc2:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.9:80
)");
}

TEST(IptablesLayout, LoadBalancerWithSourceRanges) {
  auto p = Port("ns5", "svc5", "172.30.0.45", 80, {Ep("10.180.0.3", 80)});
  p.node_port = 3002;
  p.load_balancer_ips = {IpAddress::MustParse("5.6.7.8")};
  // The IPv6 range belongs to the IPv6 port; 192.168.0.0/24 holds the node's address, so the
  // node may reach the LoadBalancer IP it holds (its packets come from that address).
  p.load_balancer_source_ranges = {IpPrefix::MustParse("203.0.113.0/25"),
                                   IpPrefix::MustParse("fd00::/8"),
                                   IpPrefix::MustParse("192.168.0.0/24")};
  EXPECT_EQ(
      DumpOf(Svc({p})),
      R"(filter -A KUBE-PROXY-FIREWALL -m comment --comment "ns5/svc5:p80 traffic not accepted by KUBE-FW-NUKIZ6OKUXPJNT4C" -m tcp -p tcp -d 5.6.7.8 --dport 80 -j DROP
nat -A KUBE-SERVICES -m comment --comment "ns5/svc5:p80 cluster IP" -m tcp -p tcp -d 172.30.0.45 --dport 80 -j KUBE-SVC-NUKIZ6OKUXPJNT4C
nat -A KUBE-SERVICES -m comment --comment "ns5/svc5:p80 loadbalancer IP" -m tcp -p tcp -d 5.6.7.8 --dport 80 -j KUBE-FW-NUKIZ6OKUXPJNT4C
nat -A KUBE-NODEPORTS -m comment --comment ns5/svc5:p80 -m tcp -p tcp --dport 3002 -j KUBE-EXT-NUKIZ6OKUXPJNT4C
:KUBE-SVC-NUKIZ6OKUXPJNT4C
-A KUBE-SVC-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 cluster IP" -m tcp -p tcp -d 172.30.0.45 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
-A KUBE-SVC-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 -> 10.180.0.3:80" -j KUBE-SEP-I77PXRDZVX7PMWMN
:KUBE-EXT-NUKIZ6OKUXPJNT4C
-A KUBE-EXT-NUKIZ6OKUXPJNT4C -m comment --comment "masquerade traffic for ns5/svc5:p80 external destinations" -j KUBE-MARK-MASQ
-A KUBE-EXT-NUKIZ6OKUXPJNT4C -j KUBE-SVC-NUKIZ6OKUXPJNT4C
:KUBE-FW-NUKIZ6OKUXPJNT4C
-A KUBE-FW-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 loadbalancer IP" -s 203.0.113.0/25 -j KUBE-EXT-NUKIZ6OKUXPJNT4C
-A KUBE-FW-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 loadbalancer IP" -s 192.168.0.0/24 -j KUBE-EXT-NUKIZ6OKUXPJNT4C
-A KUBE-FW-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 loadbalancer IP" -s 5.6.7.8 -j KUBE-EXT-NUKIZ6OKUXPJNT4C
-A KUBE-FW-NUKIZ6OKUXPJNT4C -m comment --comment "other traffic to ns5/svc5:p80 will be dropped by KUBE-PROXY-FIREWALL"
:KUBE-SEP-I77PXRDZVX7PMWMN
-A KUBE-SEP-I77PXRDZVX7PMWMN -m comment --comment ns5/svc5:p80 -s 10.180.0.3 -j KUBE-MARK-MASQ
-A KUBE-SEP-I77PXRDZVX7PMWMN -m comment --comment ns5/svc5:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.3:80
)");
}

TEST(IptablesLayout, ClientIpAffinity) {
  auto p = Port("ns5", "svc5", "172.30.0.45", 80, {Ep("10.180.0.3", 80), Ep("10.180.0.4", 80)});
  p.affinity_timeout_seconds = 10800;
  // A remembered client goes back to its endpoint; the endpoint chain (re)records the client.
  EXPECT_EQ(
      DumpOf(Svc({p})),
      R"(nat -A KUBE-SERVICES -m comment --comment "ns5/svc5:p80 cluster IP" -m tcp -p tcp -d 172.30.0.45 --dport 80 -j KUBE-SVC-NUKIZ6OKUXPJNT4C
:KUBE-SVC-NUKIZ6OKUXPJNT4C
-A KUBE-SVC-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 cluster IP" -m tcp -p tcp -d 172.30.0.45 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
-A KUBE-SVC-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 -> 10.180.0.3:80" -m recent --name KUBE-SEP-I77PXRDZVX7PMWMN --rcheck --seconds 10800 --reap -j KUBE-SEP-I77PXRDZVX7PMWMN
-A KUBE-SVC-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 -> 10.180.0.4:80" -m recent --name KUBE-SEP-4XN4Y7BLDMS4FVTY --rcheck --seconds 10800 --reap -j KUBE-SEP-4XN4Y7BLDMS4FVTY
-A KUBE-SVC-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 -> 10.180.0.3:80" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-I77PXRDZVX7PMWMN
-A KUBE-SVC-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 -> 10.180.0.4:80" -j KUBE-SEP-4XN4Y7BLDMS4FVTY
:KUBE-SEP-I77PXRDZVX7PMWMN
-A KUBE-SEP-I77PXRDZVX7PMWMN -m comment --comment ns5/svc5:p80 -s 10.180.0.3 -j KUBE-MARK-MASQ
-A KUBE-SEP-I77PXRDZVX7PMWMN -m comment --comment ns5/svc5:p80 -m recent --name KUBE-SEP-I77PXRDZVX7PMWMN --set -m tcp -p tcp -j DNAT --to-destination 10.180.0.3:80
:KUBE-SEP-4XN4Y7BLDMS4FVTY
-A KUBE-SEP-4XN4Y7BLDMS4FVTY -m comment --comment ns5/svc5:p80 -s 10.180.0.4 -j KUBE-MARK-MASQ
-A KUBE-SEP-4XN4Y7BLDMS4FVTY -m comment --comment ns5/svc5:p80 -m recent --name KUBE-SEP-4XN4Y7BLDMS4FVTY --set -m tcp -p tcp -j DNAT --to-destination 10.180.0.4:80
)");
}

TEST(IptablesLayout, ExternalIpsWithClusterPolicy) {
  auto p = Port("ns4", "svc4", "172.30.0.44", 80, {Ep("10.180.0.4", 80)});
  p.external_ips = {IpAddress::MustParse("192.168.99.33")};
  EXPECT_EQ(
      DumpOf(Svc({p})),
      R"(nat -A KUBE-SERVICES -m comment --comment "ns4/svc4:p80 cluster IP" -m tcp -p tcp -d 172.30.0.44 --dport 80 -j KUBE-SVC-4SW47YFZTEDKD3PK
nat -A KUBE-SERVICES -m comment --comment "ns4/svc4:p80 external IP" -m tcp -p tcp -d 192.168.99.33 --dport 80 -j KUBE-EXT-4SW47YFZTEDKD3PK
:KUBE-SVC-4SW47YFZTEDKD3PK
-A KUBE-SVC-4SW47YFZTEDKD3PK -m comment --comment "ns4/svc4:p80 cluster IP" -m tcp -p tcp -d 172.30.0.44 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
-A KUBE-SVC-4SW47YFZTEDKD3PK -m comment --comment "ns4/svc4:p80 -> 10.180.0.4:80" -j KUBE-SEP-UKSFD7AGPMPPLUHC
:KUBE-EXT-4SW47YFZTEDKD3PK
-A KUBE-EXT-4SW47YFZTEDKD3PK -m comment --comment "masquerade traffic for ns4/svc4:p80 external destinations" -j KUBE-MARK-MASQ
-A KUBE-EXT-4SW47YFZTEDKD3PK -j KUBE-SVC-4SW47YFZTEDKD3PK
:KUBE-SEP-UKSFD7AGPMPPLUHC
-A KUBE-SEP-UKSFD7AGPMPPLUHC -m comment --comment ns4/svc4:p80 -s 10.180.0.4 -j KUBE-MARK-MASQ
-A KUBE-SEP-UKSFD7AGPMPPLUHC -m comment --comment ns4/svc4:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.4:80
)");
}

TEST(IptablesLayout, InternalPolicyLocal) {
  auto p =
      Port("ns8", "svc8", "172.30.0.48", 80, {Ep("10.180.0.1", 80, true), Ep("10.180.0.2", 80)});
  p.internal_policy_local = true;
  EXPECT_EQ(
      DumpOf(Svc({p})),
      R"(nat -A KUBE-SERVICES -m comment --comment "ns8/svc8:p80 cluster IP" -m tcp -p tcp -d 172.30.0.48 --dport 80 -j KUBE-SVL-C2DO364MY4EZZI3V
:KUBE-SVL-C2DO364MY4EZZI3V
-A KUBE-SVL-C2DO364MY4EZZI3V -m comment --comment "ns8/svc8:p80 cluster IP" -m tcp -p tcp -d 172.30.0.48 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
-A KUBE-SVL-C2DO364MY4EZZI3V -m comment --comment "ns8/svc8:p80 -> 10.180.0.1:80" -j KUBE-SEP-MGVPWPBF6ZW3YV5M
:KUBE-SEP-MGVPWPBF6ZW3YV5M
-A KUBE-SEP-MGVPWPBF6ZW3YV5M -m comment --comment ns8/svc8:p80 -s 10.180.0.1 -j KUBE-MARK-MASQ
-A KUBE-SEP-MGVPWPBF6ZW3YV5M -m comment --comment ns8/svc8:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.1:80
)");
  auto none = Port("ns8", "svc8", "172.30.0.48", 80, {Ep("10.180.0.2", 80)});
  none.internal_policy_local = true;
  auto s = Svc({none});
  // NodeState keeps the remote endpoint's existence in the verdict: DROP, not REJECT.
  auto port = s->ports[0];
  port.has_any_endpoints = true;
  port.internal_verdict = TrafficVerdict::kDrop;
  EXPECT_EQ(DumpOf(std::make_shared<const ServiceState>(ServiceState{s->key, {port}})),
            "filter -A KUBE-SERVICES -m comment --comment \"ns8/svc8:p80 has no local endpoints\" "
            "-m tcp -p tcp -d 172.30.0.48 --dport 80 -j DROP\n");
}

TEST(IptablesLayout, MasqueradeAllAndNoClusterCidr) {
  auto p = Port("ns1", "svc1", "172.30.0.41", 80, {Ep("10.180.0.1", 80)});
  LayoutOptions all = Opts();
  all.masquerade_all = true;
  auto r = RenderService(*Svc({p}), IpFamily::kV4, all, Node({}).node);
  EXPECT_EQ(r.chains[0].rules[0],
            "-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment \"ns1/svc1:p80 cluster IP\" -m tcp "
            "-p tcp -d 172.30.0.41 --dport 80 -j KUBE-MARK-MASQ");
  // Without local-traffic detection ClusterIP traffic keeps its source, as kube-proxy's.
  r = RenderService(*Svc({p}), IpFamily::kV4, LayoutOptions{}, Node({}).node);
  EXPECT_EQ(r.chains[0].rules.size(), 1u);
}

TEST(IptablesLayout, Ipv6FullText) {
  auto p = Port("ns7", "svc7", "fd00:30::7", 53,
                {Ep("fd00:10:1::5", 5353, true), Ep("fd00:10:2::6", 5353)}, api::Protocol::kUdp);
  p.node_port = 30053;
  auto v4 = Port("ns1", "svc1", "172.30.0.41", 80, {Ep("10.180.0.1", 80)});
  const auto st = Node({Svc({p}), Svc({v4})});
  EXPECT_EQ(FullRestoreText(st, IpFamily::kV6, Opts()), R"(*nat
:KUBE-SVC-WIAVBDJFSBFKTY5M - [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-SEP-YFTP4PSS4KLARC6R - [0:0]
:KUBE-SEP-M4K5NZNYA2IKHBMO - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-EXT-WIAVBDJFSBFKTY5M - [0:0]
-A KUBE-EXT-WIAVBDJFSBFKTY5M -m comment --comment "masquerade traffic for ns7/svc7:p53 external destinations" -j KUBE-MARK-MASQ
-A KUBE-EXT-WIAVBDJFSBFKTY5M -j KUBE-SVC-WIAVBDJFSBFKTY5M
-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000
-A KUBE-NODEPORTS -m comment --comment ns7/svc7:p53 -m udp -p udp --dport 30053 -j KUBE-EXT-WIAVBDJFSBFKTY5M
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully
-A KUBE-SEP-M4K5NZNYA2IKHBMO -m comment --comment ns7/svc7:p53 -s fd00:10:1::5 -j KUBE-MARK-MASQ
-A KUBE-SEP-M4K5NZNYA2IKHBMO -m comment --comment ns7/svc7:p53 -m udp -p udp -j DNAT --to-destination [fd00:10:1::5]:5353
-A KUBE-SEP-YFTP4PSS4KLARC6R -m comment --comment ns7/svc7:p53 -s fd00:10:2::6 -j KUBE-MARK-MASQ
-A KUBE-SEP-YFTP4PSS4KLARC6R -m comment --comment ns7/svc7:p53 -m udp -p udp -j DNAT --to-destination [fd00:10:2::6]:5353
-A KUBE-SERVICES -m comment --comment "ns7/svc7:p53 cluster IP" -m udp -p udp -d fd00:30::7 --dport 53 -j KUBE-SVC-WIAVBDJFSBFKTY5M
-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL ! -d ::1/128 -j KUBE-NODEPORTS
-A KUBE-SVC-WIAVBDJFSBFKTY5M -m comment --comment "ns7/svc7:p53 cluster IP" -m udp -p udp -d fd00:30::7 --dport 53 ! -s fd00:10::/48 -j KUBE-MARK-MASQ
-A KUBE-SVC-WIAVBDJFSBFKTY5M -m comment --comment "ns7/svc7:p53 -> [fd00:10:1::5]:5353" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-M4K5NZNYA2IKHBMO
-A KUBE-SVC-WIAVBDJFSBFKTY5M -m comment --comment "ns7/svc7:p53 -> [fd00:10:2::6]:5353" -j KUBE-SEP-YFTP4PSS4KLARC6R
COMMIT
*filter
:KUBE-SERVICES - [0:0]
:KUBE-EXTERNAL-SERVICES - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-PROXY-FIREWALL - [0:0]
:KUBE-FORWARD - [0:0]
-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
COMMIT
)");
}

TEST(IptablesLayout, NodePortsOnListedAddresses) {
  LayoutOptions o = Opts();
  o.nodeports_on_all_local_addresses = false;
  o.nodeport_addresses = {IpAddress::MustParse("192.168.0.2"), IpAddress::MustParse("127.0.0.1"),
                          IpAddress::MustParse("fd00:1::2")};
  const std::string text = FullRestoreText(Node({}), IpFamily::kV4, o);
  EXPECT_NE(text.find("-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: "
                      "this must be the last rule in this chain\" -d 192.168.0.2 -j "
                      "KUBE-NODEPORTS\n"),
            std::string::npos);
  EXPECT_EQ(text.find("127.0.0.1"), std::string::npos);
  EXPECT_EQ(text.find("fd00:1::2"), std::string::npos);
}

// The table sections of a restore text: "*filter" -> its lines (sorted), "*nat" -> ...
std::map<std::string, std::vector<std::string>> Tables(std::string_view text) {
  std::map<std::string, std::vector<std::string>> out;
  std::string table;
  std::istringstream in{std::string(text)};
  for (std::string l; std::getline(in, l);) {
    if (l.starts_with("*")) {
      table = l;
    } else if (l != "COMMIT" && !l.empty()) {
      out[table].push_back(l);
    }
  }
  for (auto& [t, lines] : out) std::sort(lines.begin(), lines.end());
  return out;
}

// kube-proxy's TestOverallIPTablesRules scenario (six Services: ClusterIP, LoadBalancer with
// policy Local and no local endpoint, NodePort, external IP with a local endpoint, LoadBalancer
// with source ranges and affinity, no endpoints), with its localhost NodePorts and cluster CIDR.
// The expected lines are kube-proxy's expected output for it, rule for rule, except that
//  - kube-proxy's nfacct counting (its duplicate 127.0.0.0/8 NodePort rules and the nfacct
//    match on the INVALID drop) is left out: it only feeds metrics;
//  - MASQUERADE has --random-fully (kube-proxy adds it where iptables supports it; its fake
//    iptables does not).
// Line order differs (kube-proxy's test sorts too), so tables are compared as sorted lines.
TEST(IptablesLayout, KubeProxysOverallScenario) {
  auto svc1 = Port("ns1", "svc1", "172.30.0.41", 80, {Ep("10.180.0.1", 80)});
  auto svc2 = Port("ns2", "svc2", "172.30.0.42", 80, {Ep("10.180.0.2", 80)});
  svc2.node_port = 3001;
  svc2.load_balancer_ips = {IpAddress::MustParse("1.2.3.4")};
  svc2.external_ips = {IpAddress::MustParse("192.168.99.22")};
  svc2.external_policy_local = true;
  svc2.health_check_node_port = 30000;
  auto svc3 = Port("ns3", "svc3", "172.30.0.43", 80, {Ep("10.180.0.3", 80)});
  svc3.node_port = 3003;
  auto svc4 =
      Port("ns4", "svc4", "172.30.0.44", 80, {Ep("10.180.0.4", 80), Ep("10.180.0.5", 80, true)});
  svc4.external_ips = {IpAddress::MustParse("192.168.99.33")};
  auto svc5 = Port("ns5", "svc5", "172.30.0.45", 80, {Ep("10.180.0.3", 80)});
  svc5.node_port = 3002;
  svc5.load_balancer_ips = {IpAddress::MustParse("5.6.7.8")};
  svc5.load_balancer_source_ranges = {IpPrefix::MustParse("203.0.113.0/25")};
  svc5.affinity_timeout_seconds = 10800;
  auto svc6 = Port("ns6", "svc6", "172.30.0.46", 80, {});
  LayoutOptions o;
  o.cluster_cidrs = {IpPrefix::MustParse("10.0.0.0/8")};
  o.localhost_nodeports = true;
  const auto st =
      Node({Svc({svc1}), Svc({svc2}), Svc({svc3}), Svc({svc4}), Svc({svc5}), Svc({svc6})});

  const std::string kube_proxy = R"(*nat
:KUBE-EXT-4SW47YFZTEDKD3PK - [0:0]
:KUBE-EXT-GNZBNJ2PO5MGZ6GT - [0:0]
:KUBE-EXT-NUKIZ6OKUXPJNT4C - [0:0]
:KUBE-EXT-X27LE4BHSL4DOUIK - [0:0]
:KUBE-FW-NUKIZ6OKUXPJNT4C - [0:0]
:KUBE-MARK-MASQ - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-POSTROUTING - [0:0]
:KUBE-SEP-C6EBXVWJJZMIWKLZ - [0:0]
:KUBE-SEP-I77PXRDZVX7PMWMN - [0:0]
:KUBE-SEP-OYPFS5VJICHGATKP - [0:0]
:KUBE-SEP-RS4RBKLTHTF2IUXJ - [0:0]
:KUBE-SEP-SXIVWICOYRO3J4NJ - [0:0]
:KUBE-SEP-UKSFD7AGPMPPLUHC - [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-SVC-4SW47YFZTEDKD3PK - [0:0]
:KUBE-SVC-GNZBNJ2PO5MGZ6GT - [0:0]
:KUBE-SVC-NUKIZ6OKUXPJNT4C - [0:0]
:KUBE-SVC-X27LE4BHSL4DOUIK - [0:0]
:KUBE-SVC-XPGD46QRK7WJZT7O - [0:0]
-A KUBE-EXT-4SW47YFZTEDKD3PK -m comment --comment "masquerade traffic for ns4/svc4:p80 external destinations" -j KUBE-MARK-MASQ
-A KUBE-EXT-4SW47YFZTEDKD3PK -j KUBE-SVC-4SW47YFZTEDKD3PK
-A KUBE-EXT-GNZBNJ2PO5MGZ6GT -m comment --comment "pod traffic for ns2/svc2:p80 external destinations" -s 10.0.0.0/8 -j KUBE-SVC-GNZBNJ2PO5MGZ6GT
-A KUBE-EXT-GNZBNJ2PO5MGZ6GT -m comment --comment "masquerade LOCAL traffic for ns2/svc2:p80 external destinations" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ
-A KUBE-EXT-GNZBNJ2PO5MGZ6GT -m comment --comment "route LOCAL traffic for ns2/svc2:p80 external destinations" -m addrtype --src-type LOCAL -j KUBE-SVC-GNZBNJ2PO5MGZ6GT
-A KUBE-EXT-NUKIZ6OKUXPJNT4C -m comment --comment "masquerade traffic for ns5/svc5:p80 external destinations" -j KUBE-MARK-MASQ
-A KUBE-EXT-NUKIZ6OKUXPJNT4C -j KUBE-SVC-NUKIZ6OKUXPJNT4C
-A KUBE-EXT-X27LE4BHSL4DOUIK -m comment --comment "masquerade traffic for ns3/svc3:p80 external destinations" -j KUBE-MARK-MASQ
-A KUBE-EXT-X27LE4BHSL4DOUIK -j KUBE-SVC-X27LE4BHSL4DOUIK
-A KUBE-FW-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 loadbalancer IP" -s 203.0.113.0/25 -j KUBE-EXT-NUKIZ6OKUXPJNT4C
-A KUBE-FW-NUKIZ6OKUXPJNT4C -m comment --comment "other traffic to ns5/svc5:p80 will be dropped by KUBE-PROXY-FIREWALL"
-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000
-A KUBE-NODEPORTS -m comment --comment ns2/svc2:p80 -m tcp -p tcp --dport 3001 -j KUBE-EXT-GNZBNJ2PO5MGZ6GT
-A KUBE-NODEPORTS -m comment --comment ns3/svc3:p80 -m tcp -p tcp --dport 3003 -j KUBE-EXT-X27LE4BHSL4DOUIK
-A KUBE-NODEPORTS -m comment --comment ns5/svc5:p80 -m tcp -p tcp --dport 3002 -j KUBE-EXT-NUKIZ6OKUXPJNT4C
-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000
-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully
-A KUBE-SEP-C6EBXVWJJZMIWKLZ -m comment --comment ns4/svc4:p80 -s 10.180.0.5 -j KUBE-MARK-MASQ
-A KUBE-SEP-C6EBXVWJJZMIWKLZ -m comment --comment ns4/svc4:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.5:80
-A KUBE-SEP-I77PXRDZVX7PMWMN -m comment --comment ns5/svc5:p80 -s 10.180.0.3 -j KUBE-MARK-MASQ
-A KUBE-SEP-I77PXRDZVX7PMWMN -m comment --comment ns5/svc5:p80 -m recent --name KUBE-SEP-I77PXRDZVX7PMWMN --set -m tcp -p tcp -j DNAT --to-destination 10.180.0.3:80
-A KUBE-SEP-OYPFS5VJICHGATKP -m comment --comment ns3/svc3:p80 -s 10.180.0.3 -j KUBE-MARK-MASQ
-A KUBE-SEP-OYPFS5VJICHGATKP -m comment --comment ns3/svc3:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.3:80
-A KUBE-SEP-RS4RBKLTHTF2IUXJ -m comment --comment ns2/svc2:p80 -s 10.180.0.2 -j KUBE-MARK-MASQ
-A KUBE-SEP-RS4RBKLTHTF2IUXJ -m comment --comment ns2/svc2:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.2:80
-A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -s 10.180.0.1 -j KUBE-MARK-MASQ
-A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.1:80
-A KUBE-SEP-UKSFD7AGPMPPLUHC -m comment --comment ns4/svc4:p80 -s 10.180.0.4 -j KUBE-MARK-MASQ
-A KUBE-SEP-UKSFD7AGPMPPLUHC -m comment --comment ns4/svc4:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.4:80
-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O
-A KUBE-SERVICES -m comment --comment "ns2/svc2:p80 cluster IP" -m tcp -p tcp -d 172.30.0.42 --dport 80 -j KUBE-SVC-GNZBNJ2PO5MGZ6GT
-A KUBE-SERVICES -m comment --comment "ns2/svc2:p80 external IP" -m tcp -p tcp -d 192.168.99.22 --dport 80 -j KUBE-EXT-GNZBNJ2PO5MGZ6GT
-A KUBE-SERVICES -m comment --comment "ns2/svc2:p80 loadbalancer IP" -m tcp -p tcp -d 1.2.3.4 --dport 80 -j KUBE-EXT-GNZBNJ2PO5MGZ6GT
-A KUBE-SERVICES -m comment --comment "ns3/svc3:p80 cluster IP" -m tcp -p tcp -d 172.30.0.43 --dport 80 -j KUBE-SVC-X27LE4BHSL4DOUIK
-A KUBE-SERVICES -m comment --comment "ns4/svc4:p80 cluster IP" -m tcp -p tcp -d 172.30.0.44 --dport 80 -j KUBE-SVC-4SW47YFZTEDKD3PK
-A KUBE-SERVICES -m comment --comment "ns4/svc4:p80 external IP" -m tcp -p tcp -d 192.168.99.33 --dport 80 -j KUBE-EXT-4SW47YFZTEDKD3PK
-A KUBE-SERVICES -m comment --comment "ns5/svc5:p80 cluster IP" -m tcp -p tcp -d 172.30.0.45 --dport 80 -j KUBE-SVC-NUKIZ6OKUXPJNT4C
-A KUBE-SERVICES -m comment --comment "ns5/svc5:p80 loadbalancer IP" -m tcp -p tcp -d 5.6.7.8 --dport 80 -j KUBE-FW-NUKIZ6OKUXPJNT4C
-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS
-A KUBE-SVC-4SW47YFZTEDKD3PK -m comment --comment "ns4/svc4:p80 cluster IP" -m tcp -p tcp -d 172.30.0.44 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
-A KUBE-SVC-4SW47YFZTEDKD3PK -m comment --comment "ns4/svc4:p80 -> 10.180.0.4:80" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-UKSFD7AGPMPPLUHC
-A KUBE-SVC-4SW47YFZTEDKD3PK -m comment --comment "ns4/svc4:p80 -> 10.180.0.5:80" -j KUBE-SEP-C6EBXVWJJZMIWKLZ
-A KUBE-SVC-GNZBNJ2PO5MGZ6GT -m comment --comment "ns2/svc2:p80 cluster IP" -m tcp -p tcp -d 172.30.0.42 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
-A KUBE-SVC-GNZBNJ2PO5MGZ6GT -m comment --comment "ns2/svc2:p80 -> 10.180.0.2:80" -j KUBE-SEP-RS4RBKLTHTF2IUXJ
-A KUBE-SVC-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 cluster IP" -m tcp -p tcp -d 172.30.0.45 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
-A KUBE-SVC-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 -> 10.180.0.3:80" -m recent --name KUBE-SEP-I77PXRDZVX7PMWMN --rcheck --seconds 10800 --reap -j KUBE-SEP-I77PXRDZVX7PMWMN
-A KUBE-SVC-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 -> 10.180.0.3:80" -j KUBE-SEP-I77PXRDZVX7PMWMN
-A KUBE-SVC-X27LE4BHSL4DOUIK -m comment --comment "ns3/svc3:p80 cluster IP" -m tcp -p tcp -d 172.30.0.43 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
-A KUBE-SVC-X27LE4BHSL4DOUIK -m comment --comment "ns3/svc3:p80 -> 10.180.0.3:80" -j KUBE-SEP-OYPFS5VJICHGATKP
-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" -j KUBE-SEP-SXIVWICOYRO3J4NJ
COMMIT
*filter
:KUBE-NODEPORTS - [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-EXTERNAL-SERVICES - [0:0]
:KUBE-FIREWALL - [0:0]
:KUBE-FORWARD - [0:0]
:KUBE-PROXY-FIREWALL - [0:0]
-A KUBE-NODEPORTS -m comment --comment "ns2/svc2:p80 health check node port" -m tcp -p tcp --dport 30000 -j ACCEPT
-A KUBE-SERVICES -m comment --comment "ns6/svc6:p80 has no endpoints" -m tcp -p tcp -d 172.30.0.46 --dport 80 -j REJECT
-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns2/svc2:p80 has no local endpoints" -m tcp -p tcp -d 192.168.99.22 --dport 80 -j DROP
-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns2/svc2:p80 has no local endpoints" -m tcp -p tcp -d 1.2.3.4 --dport 80 -j DROP
-A KUBE-EXTERNAL-SERVICES -m comment --comment "ns2/svc2:p80 has no local endpoints" -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 3001 -j DROP
-A KUBE-FIREWALL -m comment --comment "block incoming localnet connections" -d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP
-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT
-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A KUBE-PROXY-FIREWALL -m comment --comment "ns5/svc5:p80 traffic not accepted by KUBE-FW-NUKIZ6OKUXPJNT4C" -m tcp -p tcp -d 5.6.7.8 --dport 80 -j DROP
COMMIT
)";
  EXPECT_EQ(Tables(FullRestoreText(st, IpFamily::kV4, o)), Tables(kube_proxy));
}

// Two Services; one endpoint of the first is replaced.
struct EndpointChange {
  state::ServiceStatePtr web_before =
      Svc({Port("ns1", "web", "172.30.0.41", 80, {Ep("10.180.0.1", 80), Ep("10.180.0.2", 80)})});
  state::ServiceStatePtr web_after =
      Svc({Port("ns1", "web", "172.30.0.41", 80, {Ep("10.180.0.1", 80), Ep("10.180.0.3", 80)})});
  state::ServiceStatePtr db =
      Svc({Port("ns1", "db", "172.30.0.42", 5432, {Ep("10.180.0.9", 5432)})});
};

TEST(IptablesLayout, PartialTextForOneEndpointChange) {
  EndpointChange c;
  const auto after = Node({c.web_after, c.db});
  const std::vector<state::ServiceDiff> diff = {{"ns1/web", c.web_before, c.web_after}};
  // The shared chains in full, ns1/web's chains rewritten, the replaced endpoint's chain
  // deleted; nothing of ns1/db's chains, nothing static.
  EXPECT_EQ(PartialRestoreText(after, IpFamily::kV4, Opts(), diff), R"(*nat
:KUBE-SVC-PPBSTXGMF4OXFMWK - [0:0]
:KUBE-SERVICES - [0:0]
:KUBE-SEP-BF4QWWKRAYUTLP6J - [0:0]
:KUBE-SEP-7UC2XTHCPWYET5QZ - [0:0]
:KUBE-SEP-5M3UK7KXO4MOBXUS - [0:0]
:KUBE-NODEPORTS - [0:0]
-A KUBE-SEP-5M3UK7KXO4MOBXUS -m comment --comment ns1/web:p80 -s 10.180.0.1 -j KUBE-MARK-MASQ
-A KUBE-SEP-5M3UK7KXO4MOBXUS -m comment --comment ns1/web:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.1:80
-A KUBE-SEP-BF4QWWKRAYUTLP6J -m comment --comment ns1/web:p80 -s 10.180.0.3 -j KUBE-MARK-MASQ
-A KUBE-SEP-BF4QWWKRAYUTLP6J -m comment --comment ns1/web:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.3:80
-A KUBE-SERVICES -m comment --comment "ns1/db:p5432 cluster IP" -m tcp -p tcp -d 172.30.0.42 --dport 5432 -j KUBE-SVC-TEEUQMCTN7DAR4EM
-A KUBE-SERVICES -m comment --comment "ns1/web:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 -j KUBE-SVC-PPBSTXGMF4OXFMWK
-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL ! -d 127.0.0.0/8 -j KUBE-NODEPORTS
-A KUBE-SVC-PPBSTXGMF4OXFMWK -m comment --comment "ns1/web:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
-A KUBE-SVC-PPBSTXGMF4OXFMWK -m comment --comment "ns1/web:p80 -> 10.180.0.1:80" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-5M3UK7KXO4MOBXUS
-A KUBE-SVC-PPBSTXGMF4OXFMWK -m comment --comment "ns1/web:p80 -> 10.180.0.3:80" -j KUBE-SEP-BF4QWWKRAYUTLP6J
-X KUBE-SEP-7UC2XTHCPWYET5QZ
COMMIT
*filter
:KUBE-SERVICES - [0:0]
:KUBE-EXTERNAL-SERVICES - [0:0]
:KUBE-NODEPORTS - [0:0]
:KUBE-PROXY-FIREWALL - [0:0]
COMMIT
)");
}

TEST(IptablesLayout, RemovedServiceChainsAreDeleted) {
  EndpointChange c;
  const std::vector<state::ServiceDiff> diff = {{"ns1/web", c.web_before, nullptr}};
  const std::string text = PartialRestoreText(Node({c.db}), IpFamily::kV4, Opts(), diff);
  for (const auto& chain : RenderService(*c.web_before, IpFamily::kV4, Opts(), {}).chains) {
    EXPECT_NE(text.find(":" + chain.name + " - [0:0]\n"), std::string::npos) << chain.name;
    EXPECT_NE(text.find("-X " + chain.name + "\n"), std::string::npos) << chain.name;
  }
  EXPECT_EQ(text.find("ns1/web"), std::string::npos);
}

// The full text is the partial text of a sync where every Service is new, plus the static
// chains: one code path writes both.
TEST(IptablesLayout, FullTextIsPartialTextOfEveryServicePlusStaticChains) {
  EndpointChange c;
  auto np = Port("ns2", "np", "172.30.0.50", 80, {Ep("10.180.0.7", 80)});
  np.node_port = 30080;
  np.load_balancer_ips = {IpAddress::MustParse("5.6.7.9")};
  np.load_balancer_source_ranges = {IpPrefix::MustParse("203.0.113.0/25")};
  const auto st = Node({c.web_after, c.db, Svc({np})});
  std::vector<state::ServiceDiff> all;
  for (const auto& [key, svc] : st.services) all.push_back({key, nullptr, svc});
  const std::string partial = PartialRestoreText(st, IpFamily::kV4, Opts(), all);
  std::string full_without_static;
  std::istringstream in(FullRestoreText(st, IpFamily::kV4, Opts()));
  for (std::string l; std::getline(in, l);) {
    const bool is_static = l.find("KUBE-FORWARD") != std::string::npos ||
                           l.starts_with(":KUBE-POSTROUTING") ||
                           l.starts_with("-A KUBE-POSTROUTING") ||
                           l.starts_with(":KUBE-MARK-MASQ") || l.starts_with("-A KUBE-MARK-MASQ");
    if (!is_static) full_without_static += l + "\n";
  }
  EXPECT_EQ(full_without_static, partial);
}

TEST(IptablesLayout, FullTextDeletesStaleServiceChainsOnly) {
  EndpointChange c;
  const auto st = Node({c.web_after});
  const std::vector<std::string> existing = {"KUBE-SERVICES",
                                             "KUBE-SVC-PPBSTXGMF4OXFMWK",
                                             "KUBE-SEP-7UC2XTHCPWYET5QZ",
                                             "KUBE-SVC-TEEUQMCTN7DAR4EM",
                                             "DOCKER",
                                             "KUBE-KUBELET-CANARY"};
  const std::string text = FullRestoreText(st, IpFamily::kV4, Opts(), existing);
  EXPECT_NE(text.find("-X KUBE-SEP-7UC2XTHCPWYET5QZ\n-X KUBE-SVC-TEEUQMCTN7DAR4EM\nCOMMIT\n"),
            std::string::npos);
  EXPECT_EQ(text.find("-X KUBE-SVC-PPBSTXGMF4OXFMWK"), std::string::npos);
  EXPECT_EQ(text.find("DOCKER"), std::string::npos);
  EXPECT_EQ(text.find("CANARY"), std::string::npos);
}

TEST(IptablesLayout, ChainNamesAreStableAcrossRenders) {
  EndpointChange c;
  const auto a = RenderService(*c.web_after, IpFamily::kV4, Opts(), {});
  LayoutOptions other = Opts();
  other.masquerade_all = true;
  const auto b = RenderService(*c.web_after, IpFamily::kV4, other, {});
  ASSERT_EQ(a.chains.size(), b.chains.size());
  for (size_t i = 0; i < a.chains.size(); ++i) EXPECT_EQ(a.chains[i].name, b.chains[i].name);
}

TEST(IptablesLayout, JumpRulesAreKubeProxys) {
  std::string s;
  for (const auto& r : JumpRules(IpFamily::kV4, Opts())) {
    for (const auto& a : JumpArgv(r, "-C")) s += a + " ";
    s += "\n";
  }
  EXPECT_EQ(s,
            "-w 5 -t filter -C INPUT -m conntrack --ctstate NEW -m comment --comment kubernetes "
            "externally-visible service portals -j KUBE-EXTERNAL-SERVICES \n"
            "-w 5 -t filter -C FORWARD -m conntrack --ctstate NEW -m comment --comment kubernetes "
            "externally-visible service portals -j KUBE-EXTERNAL-SERVICES \n"
            "-w 5 -t filter -C INPUT -m comment --comment kubernetes health check service ports "
            "-j KUBE-NODEPORTS \n"
            "-w 5 -t filter -C FORWARD -m conntrack --ctstate NEW -m comment --comment kubernetes "
            "service portals -j KUBE-SERVICES \n"
            "-w 5 -t filter -C OUTPUT -m conntrack --ctstate NEW -m comment --comment kubernetes "
            "service portals -j KUBE-SERVICES \n"
            "-w 5 -t filter -C FORWARD -m comment --comment kubernetes forwarding rules -j "
            "KUBE-FORWARD \n"
            "-w 5 -t filter -C INPUT -m conntrack --ctstate NEW -m comment --comment kubernetes "
            "load balancer firewall -j KUBE-PROXY-FIREWALL \n"
            "-w 5 -t filter -C OUTPUT -m conntrack --ctstate NEW -m comment --comment kubernetes "
            "load balancer firewall -j KUBE-PROXY-FIREWALL \n"
            "-w 5 -t filter -C FORWARD -m conntrack --ctstate NEW -m comment --comment kubernetes "
            "load balancer firewall -j KUBE-PROXY-FIREWALL \n"
            "-w 5 -t nat -C OUTPUT -m comment --comment kubernetes service portals -j "
            "KUBE-SERVICES \n"
            "-w 5 -t nat -C PREROUTING -m comment --comment kubernetes service portals -j "
            "KUBE-SERVICES \n"
            "-w 5 -t nat -C POSTROUTING -m comment --comment kubernetes postrouting rules -j "
            "KUBE-POSTROUTING \n");
  LayoutOptions localhost = Opts();
  localhost.localhost_nodeports = true;
  EXPECT_EQ(JumpRules(IpFamily::kV4, localhost).size(), 14u);
  EXPECT_EQ(JumpRules(IpFamily::kV6, localhost).size(), 12u);
  // Each argument is one argv entry: the comment is not split or quoted.
  EXPECT_EQ(JumpArgv(JumpRules(IpFamily::kV4, Opts())[0], "-I")[13],
            "kubernetes externally-visible service portals");
}

TEST(IptablesLayout, MissingJumpsGoInTheRestoreTextAndAreFoundInSaveOutput) {
  const auto jumps = JumpRules(IpFamily::kV4, Opts());
  const JumpRule& portals = jumps.back();  // nat PREROUTING -> KUBE-SERVICES
  ASSERT_EQ(portals.chain, "POSTROUTING");
  const JumpRule& prerouting = jumps[jumps.size() - 2];
  const std::string text = FullRestoreText(Node({}), IpFamily::kV4, Opts(), {}, {{prerouting}});
  const std::string line =
      "-I PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n";
  ASSERT_NE(text.find(line), std::string::npos) << text;
  EXPECT_GT(text.find(line), text.find("*nat"));
  EXPECT_LT(text.find(line), text.rfind("COMMIT"));

  const std::string save =
      "*nat\n:PREROUTING ACCEPT [0:0]\n"
      "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n"
      "-A OUTPUT -j KUBE-SERVICES\nCOMMIT\n";
  EXPECT_TRUE(HasJump(save, prerouting));
  // Same chain and target, another comment (or none): not ours.
  EXPECT_FALSE(HasJump(save, jumps[jumps.size() - 3]));  // nat OUTPUT, with its comment
  EXPECT_FALSE(HasJump(save, portals));
}

TEST(IptablesLayout, ManyServicesRenderInKeyOrderAndLargeClusterDropsEndpointComments) {
  // Enough Services for the text to reach the sink in several pieces: Services in key order in
  // KUBE-SERVICES, nat chains declared in reverse name order and filled in name order, each
  // chain's rules together.
  std::vector<state::ServiceStatePtr> services;
  for (int i = 0; i < 2600; ++i) {
    char ip[32], ep[32];
    std::snprintf(ip, sizeof ip, "172.30.%d.%d", i / 250, i % 250 + 1);
    std::snprintf(ep, sizeof ep, "10.%d.%d.%d", i / 62500, i / 250 % 250, i % 250 + 1);
    char name[16];
    std::snprintf(name, sizeof name, "s%05d", i);
    services.push_back(Svc({Port("ns", name, ip, 80, {Ep(ep, 8080)})}));
  }
  const state::NodeState st = Node(services);
  const std::string text = FullRestoreText(st, IpFamily::kV4, Opts());
  size_t last = 0;
  for (int i = 0; i < 2600; i += 97) {
    char needle[64];
    std::snprintf(needle, sizeof needle, "\"ns/s%05d:p80 cluster IP\"", i);
    const size_t at = text.find(needle);
    ASSERT_NE(at, std::string::npos) << needle;
    EXPECT_GT(at, last) << needle;
    last = at;
  }
  ASSERT_TRUE(text.starts_with("*nat\n"));
  std::istringstream in(text.substr(0, text.find("*filter\n")));
  std::string line, previous_declared = "~", previous_filled;
  size_t pieces = 0, filled = 0;
  WriteFullRestore(st, IpFamily::kV4, Opts(), {}, {}, [&](std::string_view piece) {
    ++pieces;
    EXPECT_EQ(piece.back(), '\n');  // whole lines
  });
  EXPECT_GT(pieces, 1u);
  while (std::getline(in, line)) {
    if (line[0] == ':') {
      const std::string chain = line.substr(1, line.find(' ') - 1);
      EXPECT_GT(previous_declared, chain);
      previous_declared = chain;
    } else if (line.starts_with("-A ")) {
      const std::string chain = line.substr(3, line.find(' ', 3) - 3);
      EXPECT_LE(previous_filled, chain) << line;
      filled += chain != previous_filled;
      previous_filled = chain;
    }
  }
  // KUBE-MARK-MASQ, KUBE-POSTROUTING, KUBE-SERVICES and a KUBE-SVC- and a KUBE-SEP- each.
  EXPECT_EQ(filled, 3u + 2u * 2600u);
  // Large-cluster mode: the endpoint rules lose their comments, the others keep theirs.
  LayoutOptions large = Opts();
  large.large_cluster = true;
  const std::string big = FullRestoreText(st, IpFamily::kV4, large);
  EXPECT_LT(big.size(), text.size());
  EXPECT_EQ(big.find(" -> 10."), std::string::npos);  // no "svc -> endpoint" comments
  EXPECT_NE(big.find("\"ns/s01300:p80 cluster IP\""), std::string::npos);  // others stay
}

// A restore text's nat sections (each a list of its lines between "*nat" and "COMMIT") and the
// multiset of all its lines but the section markers.
struct Sections {
  std::vector<std::vector<std::string>> nat;
  std::multiset<std::string> lines;
};
Sections Split(const std::string& text) {
  Sections out;
  std::istringstream in(text);
  bool in_nat = false;
  for (std::string line; std::getline(in, line);) {
    if (line == "*nat") {
      in_nat = true;
      out.nat.emplace_back();
    } else if (line == "COMMIT" || line.starts_with("*")) {
      in_nat = false;
    } else {
      if (in_nat) out.nat.back().push_back(line);
      out.lines.insert(line);
    }
  }
  return out;
}

// The word after `flag` in a restore line ("-A CHAIN", "-j TARGET"), "" if none.
std::string After(const std::string& line, std::string_view flag) {
  const size_t at = line.find(std::string(flag) + " ");
  if (at == std::string::npos) return "";
  const size_t start = at + flag.size() + 1;
  return line.substr(start, line.find(' ', start) - start);
}

// For iptables-nft the nat table goes in sections of about nat_section_chains chains: the same
// rules as one section; the static chains first; each Service's chains together; every jump
// target declared in its section or an earlier one; the shared chains, the jumps from the
// built-in chains and the deletions last.
TEST(IptablesLayout, NatInSectionsHoldsTheSameRulesWholeServicesEachSharedChainsLast) {
  std::vector<state::ServiceStatePtr> services;
  for (int i = 0; i < 40; ++i) {
    const std::string n = std::to_string(i);
    auto p = Port("ns", "s" + n, "172.30.1." + n, 80,
                  {Ep("10.180.1." + n, 80), Ep("10.180.2." + n, 80), Ep("10.180.3." + n, 80)});
    if (i % 4 == 0) p.node_port = 30000 + i;
    services.push_back(Svc({p}));
  }
  const state::NodeState st = Node(services);
  LayoutOptions split = Opts();
  split.nat_section_chains = 10;
  const std::vector<std::string> existing = {"KUBE-SEP-STALESTALESTALE12", "FOREIGN"};
  const std::vector<JumpRule> jumps = JumpRules(IpFamily::kV4, split);
  const Sections one = Split(FullRestoreText(st, IpFamily::kV4, Opts(), existing, jumps));
  const Sections many = Split(FullRestoreText(st, IpFamily::kV4, split, existing, jumps));
  EXPECT_EQ(one.nat.size(), 1u);
  EXPECT_EQ(many.lines, one.lines);
  // 40 x (KUBE-SVC- + 3 KUBE-SEP-) + 10 x KUBE-EXT- = 170 chains, sections closed at 10 or more.
  ASSERT_GE(many.nat.size(), 12u);
  ASSERT_LE(many.nat.size(), 19u);

  std::map<std::string, size_t> declared_in;
  for (size_t i = 0; i < many.nat.size(); ++i) {
    for (const auto& line : many.nat[i]) {
      if (line.starts_with(":")) declared_in[line.substr(1, line.find(' ') - 1)] = i;
    }
    for (const auto& line : many.nat[i]) {
      if (line.starts_with("-I ") || line.starts_with("-X ")) {
        EXPECT_EQ(i, many.nat.size() - 1) << line;
      }
      const std::string target = After(line, "-j");
      if (!line.starts_with("-") || !target.starts_with("KUBE-")) continue;
      ASSERT_TRUE(declared_in.contains(target)) << line;
      EXPECT_LE(declared_in[target], i) << line;
    }
  }
  EXPECT_EQ(declared_in.at("KUBE-MARK-MASQ"), 0u);
  EXPECT_EQ(declared_in.at("KUBE-POSTROUTING"), 0u);
  EXPECT_EQ(declared_in.at("KUBE-SERVICES"), many.nat.size() - 1);
  EXPECT_EQ(declared_in.at("KUBE-NODEPORTS"), many.nat.size() - 1);
  EXPECT_EQ(declared_in.at("KUBE-SEP-STALESTALESTALE12"), many.nat.size() - 1);
  EXPECT_FALSE(declared_in.contains("FOREIGN"));
  EXPECT_NE(std::find(many.nat.back().begin(), many.nat.back().end(),
                      "-X KUBE-SEP-STALESTALESTALE12"),
            many.nat.back().end());
  for (const auto& service : services) {
    const ServiceRules r = RenderService(*service, IpFamily::kV4, split, st.node);
    for (const auto& c : r.chains) {
      EXPECT_EQ(declared_in.at(c.name), declared_in.at(r.chains.front().name)) << c.name;
    }
  }
  // A section's declarations go largest name first, as in one section.
  for (const auto& section : many.nat) {
    std::string previous = "~";
    for (const auto& line : section) {
      if (!line.starts_with(":")) continue;
      EXPECT_GT(previous, line);
      previous = line;
    }
  }
}

// Thousands of stale chains (Services gone) are deleted in sections of their own after the
// shared chains: all of them flushed first, then deleted, largest name first in each section.
TEST(IptablesLayout, ManyDeletionsInSectionsAreFlushedFirstThenDeleted) {
  EndpointChange c;
  std::vector<std::string> existing;
  for (int i = 0; i < 25; ++i) {
    existing.push_back((i % 5 ? "KUBE-SEP-STALE" : "KUBE-SVC-STALE") + std::to_string(100 + i));
  }
  LayoutOptions split = Opts();
  split.nat_section_chains = 10;
  const Sections many = Split(FullRestoreText(Node({c.db}), IpFamily::kV4, split, existing, {}));
  ASSERT_EQ(many.nat.size(), 1u + 3u + 3u);  // db's chains and the shared ones; 3 + 3
  std::multiset<std::string> flushed, gone;
  for (const auto& line : many.nat[0]) EXPECT_FALSE(line.starts_with("-X ")) << line;
  for (size_t i = 1; i < many.nat.size(); ++i) {
    std::string previous = "~";
    for (const auto& line : many.nat[i]) {
      const bool flush = i <= 3;
      ASSERT_TRUE(line.starts_with(flush ? ":" : "-X ")) << i << ": " << line;
      const std::string chain = flush ? line.substr(1, line.find(' ') - 1) : line.substr(3);
      EXPECT_GT(previous, chain);
      previous = chain;
      (flush ? flushed : gone).insert(chain);
    }
  }
  const std::multiset<std::string> all(existing.begin(), existing.end());
  EXPECT_EQ(flushed, all);
  EXPECT_EQ(gone, all);
  // The same lines as in one section.
  EXPECT_EQ(many.lines, Split(FullRestoreText(Node({c.db}), IpFamily::kV4, Opts(), existing, {}))
                            .lines);
}

// A change smaller than a section stays one nat section.
TEST(IptablesLayout, SmallChangeInSectionsIsOneSection) {
  EndpointChange c;
  const auto after = Node({c.web_after, c.db});
  const std::vector<state::ServiceDiff> diff = {{"ns1/web", c.web_before, c.web_after}};
  LayoutOptions split = Opts();
  split.nat_section_chains = 1000;
  const std::string text = PartialRestoreText(after, IpFamily::kV4, split, diff);
  EXPECT_EQ(Split(text).nat.size(), 1u);
  EXPECT_EQ(Split(text).lines, Split(PartialRestoreText(after, IpFamily::kV4, Opts(), diff)).lines);
  split.nat_section_chains = 1;  // web's chains in a section before the shared chains
  const Sections many = Split(PartialRestoreText(after, IpFamily::kV4, split, diff));
  ASSERT_EQ(many.nat.size(), 2u);
  EXPECT_EQ(many.nat[1].front(), ":KUBE-SERVICES - [0:0]");
  EXPECT_EQ(many.nat[1].back(), "-X KUBE-SEP-7UC2XTHCPWYET5QZ");
}

// The text `write` hands its sink.
std::string Written(const std::function<void(const RestoreSink&)>& write) {
  std::string text;
  write([&](std::string_view piece) { text += piece; });
  return text;
}

// What the shared chains hold after a full text of `st`.
SharedChainState SharedAfterFull(const state::NodeState& st, IpFamily family,
                                 const LayoutOptions& o) {
  SharedChainState shared;
  WriteFullRestore(st, family, o, {}, {}, [](std::string_view) {}, &shared);
  return shared;
}

// Given what the shared chains hold, a partial text leaves out those it would write unchanged:
// a one-endpoint change is the Service's chains alone, no filter section; one section or several.
TEST(IptablesLayout, PartialTextLeavesOutUnchangedSharedChains) {
  EndpointChange c;
  const auto before = Node({c.web_before, c.db});
  const auto after = Node({c.web_after, c.db});
  const std::vector<state::ServiceDiff> diff = {{"ns1/web", c.web_before, c.web_after}};
  const SharedChainState in_kernel = SharedAfterFull(before, IpFamily::kV4, Opts());
  EXPECT_TRUE(in_kernel.known);
  EXPECT_EQ(in_kernel.services.size(), 2u);
  const std::string expected = R"(*nat
:KUBE-SVC-PPBSTXGMF4OXFMWK - [0:0]
:KUBE-SEP-BF4QWWKRAYUTLP6J - [0:0]
:KUBE-SEP-7UC2XTHCPWYET5QZ - [0:0]
:KUBE-SEP-5M3UK7KXO4MOBXUS - [0:0]
-A KUBE-SEP-5M3UK7KXO4MOBXUS -m comment --comment ns1/web:p80 -s 10.180.0.1 -j KUBE-MARK-MASQ
-A KUBE-SEP-5M3UK7KXO4MOBXUS -m comment --comment ns1/web:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.1:80
-A KUBE-SEP-BF4QWWKRAYUTLP6J -m comment --comment ns1/web:p80 -s 10.180.0.3 -j KUBE-MARK-MASQ
-A KUBE-SEP-BF4QWWKRAYUTLP6J -m comment --comment ns1/web:p80 -m tcp -p tcp -j DNAT --to-destination 10.180.0.3:80
-A KUBE-SVC-PPBSTXGMF4OXFMWK -m comment --comment "ns1/web:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ
-A KUBE-SVC-PPBSTXGMF4OXFMWK -m comment --comment "ns1/web:p80 -> 10.180.0.1:80" -m statistic --mode random --probability 0.5000000000 -j KUBE-SEP-5M3UK7KXO4MOBXUS
-A KUBE-SVC-PPBSTXGMF4OXFMWK -m comment --comment "ns1/web:p80 -> 10.180.0.3:80" -j KUBE-SEP-BF4QWWKRAYUTLP6J
-X KUBE-SEP-7UC2XTHCPWYET5QZ
COMMIT
)";
  EXPECT_EQ(PartialRestoreText(after, IpFamily::kV4, Opts(), diff, &in_kernel), expected);
  LayoutOptions split = Opts();
  for (size_t chains : {size_t{1000}, size_t{1}}) {
    split.nat_section_chains = chains;
    const std::string text = PartialRestoreText(after, IpFamily::kV4, split, diff, &in_kernel);
    EXPECT_EQ(Split(text).lines, Split(expected).lines) << text;
    EXPECT_EQ(text.find("*filter"), std::string::npos) << text;
  }
  // What the shared chains hold after it: as before, and as after a full text of `after`.
  SharedChainState shared = in_kernel;
  WritePartialRestore(after, IpFamily::kV4, Opts(), diff, [](std::string_view) {}, &shared);
  EXPECT_EQ(shared, in_kernel);
  EXPECT_EQ(shared, SharedAfterFull(after, IpFamily::kV4, Opts()));
  // The other family has nothing to write.
  const SharedChainState v6 = SharedAfterFull(before, IpFamily::kV6, Opts());
  EXPECT_EQ(PartialRestoreText(after, IpFamily::kV6, Opts(), diff, &v6), "");
  // Without what the kernel holds, every shared chain is written, as kube-proxy does.
  EXPECT_NE(PartialRestoreText(after, IpFamily::kV4, Opts(), diff).find("*filter"),
            std::string::npos);
}

// A change that does touch shared chains rewrites those, whole, and only those.
TEST(IptablesLayout, PartialTextRewritesTheSharedChainsThatChange) {
  EndpointChange c;
  const auto before = Node({c.web_before, c.db});
  auto empty_port = Port("ns1", "web", "172.30.0.41", 80, {});
  const auto web_empty = Svc({empty_port});
  const auto after = Node({web_empty, c.db});
  const std::vector<state::ServiceDiff> diff = {{"ns1/web", c.web_before, web_empty}};
  for (size_t chains : {size_t{0}, size_t{1}}) {
    LayoutOptions o = Opts();
    o.nat_section_chains = chains;
    const SharedChainState in_kernel = SharedAfterFull(before, IpFamily::kV4, o);
    const std::string text = PartialRestoreText(after, IpFamily::kV4, o, diff, &in_kernel);
    // nat KUBE-SERVICES without web's rule, filter KUBE-SERVICES with its REJECT; the
    // NodePort chains and the other filter chains as they were.
    const Sections s = Split(text);
    EXPECT_EQ(s.lines.count(":KUBE-SERVICES - [0:0]"), 2u) << text;
    EXPECT_EQ(text.find(":KUBE-NODEPORTS"), std::string::npos) << text;
    EXPECT_EQ(text.find(":KUBE-EXTERNAL-SERVICES"), std::string::npos) << text;
    EXPECT_EQ(text.find(":KUBE-PROXY-FIREWALL"), std::string::npos) << text;
    EXPECT_NE(text.find("-A KUBE-SERVICES -m comment --comment \"ns1/web:p80 has no "
                        "endpoints\""),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("-A KUBE-SERVICES -m comment --comment \"ns1/db:p5432 cluster IP\""),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("kubernetes service nodeports"), std::string::npos) << text;
    EXPECT_NE(text.find("-X KUBE-SVC-PPBSTXGMF4OXFMWK"), std::string::npos) << text;
    SharedChainState shared = in_kernel;
    WritePartialRestore(after, IpFamily::kV4, o, diff, [](std::string_view) {}, &shared);
    EXPECT_EQ(shared, SharedAfterFull(after, IpFamily::kV4, o));
  }
}

// Given what the shared chains hold, a partial text renders the changed Services only: the
// others' shared rules are the state's (here a marker standing for db's, which a render would
// not give), in Service order. A Service gone takes its rules along.
TEST(IptablesLayout, PartialTextTakesUnchangedServicesFromTheState) {
  EndpointChange c;
  const auto before = Node({c.web_before, c.db});
  const auto web_empty = Svc({Port("ns1", "web", "172.30.0.41", 80, {})});
  const auto after = Node({web_empty, c.db});
  const std::vector<state::ServiceDiff> diff = {{"ns1/web", c.web_before, web_empty}};
  for (size_t chains : {size_t{0}, size_t{1}}) {
    LayoutOptions o = Opts();
    o.nat_section_chains = chains;
    SharedChainState in_kernel = SharedAfterFull(before, IpFamily::kV4, o);
    auto& db_nat = in_kernel.services.at("ns1/db")[static_cast<size_t>(SharedChain::kNatServices)];
    ASSERT_EQ(db_nat.size(), 1u);
    db_nat[0] = "-A KUBE-SERVICES -m comment --comment marker -j KUBE-SVC-MARKER";
    const std::string text = PartialRestoreText(after, IpFamily::kV4, o, diff, &in_kernel);
    std::vector<std::string> nat_services;
    for (const auto& section : Split(text).nat) {
      for (const auto& l : section) {
        if (l.starts_with("-A KUBE-SERVICES")) nat_services.push_back(l);
      }
    }
    ASSERT_EQ(nat_services.size(), 2u) << text;
    EXPECT_EQ(nat_services[0], db_nat[0]);
    EXPECT_NE(nat_services[1].find("kubernetes service nodeports"), std::string::npos);
    // Other options: every Service rendered again, every shared chain written.
    LayoutOptions other = o;
    other.masquerade_all = true;
    SharedChainState rebuilt = in_kernel;
    const std::string all = Written([&](const RestoreSink& sink) {
      WritePartialRestore(after, IpFamily::kV4, other, diff, sink, &rebuilt);
    });
    EXPECT_EQ(all.find("marker"), std::string::npos) << all;
    EXPECT_NE(all.find(":KUBE-NODEPORTS"), std::string::npos) << all;
    EXPECT_EQ(rebuilt, SharedAfterFull(after, IpFamily::kV4, other));
  }
  // ns1/db gone: nat KUBE-SERVICES keeps web's rule alone; the state drops db.
  SharedChainState shared = SharedAfterFull(before, IpFamily::kV4, Opts());
  const auto only_web = Node({c.web_before});
  const std::vector<state::ServiceDiff> gone = {{"ns1/db", c.db, nullptr}};
  const std::string text = Written([&](const RestoreSink& sink) {
    WritePartialRestore(only_web, IpFamily::kV4, Opts(), gone, sink, &shared);
  });
  EXPECT_EQ(text.find("ns1/db:p5432 cluster IP"), std::string::npos) << text;
  EXPECT_NE(text.find("-A KUBE-SERVICES -m comment --comment \"ns1/web:p80 cluster IP\""),
            std::string::npos)
      << text;
  EXPECT_EQ(shared, SharedAfterFull(only_web, IpFamily::kV4, Opts()));
}

}  // namespace
}  // namespace sluice::proxy::iptables
