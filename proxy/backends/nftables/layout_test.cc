// The nftables layout as a pure function of NodeState: golden text for each kind of service
// port, and the properties the backend's diffing relies on.
#include "proxy/backends/nftables/layout.h"

#include <gtest/gtest.h>

#include <string>

#include "proxy/backends/nftables/encode.h"

namespace sluice::proxy::nftables {
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

ServicePortState Port(std::string_view cluster_ip, uint16_t port, std::vector<Endpoint> eps,
                      api::Protocol proto = api::Protocol::kTcp) {
  ServicePortState p;
  p.name = {"default", "web", "http", proto};
  p.cluster_ip = IpAddress::MustParse(cluster_ip);
  p.family = p.cluster_ip.family();
  p.port = port;
  p.cluster_endpoints = std::move(eps);
  p.has_any_endpoints = !p.cluster_endpoints.empty();
  for (const auto& e : p.cluster_endpoints) {
    if (e.local) p.local_endpoints.push_back(e);
  }
  p.internal_verdict = p.has_any_endpoints ? TrafficVerdict::kForward : TrafficVerdict::kReject;
  p.external_verdict = p.internal_verdict;
  return p;
}

ServiceState Svc(std::vector<ServicePortState> ports) {
  return ServiceState{"default/web", std::move(ports)};
}

LayoutOptions Opts() {
  LayoutOptions o;
  o.cluster_cidrs = {IpPrefix::MustParse("10.244.0.0/16"), IpPrefix::MustParse("fd00:244::/48")};
  return o;
}

// Chains as "name: rule | rule", elements as text, for compact golden comparisons.
std::string Dump(const ServiceObjects& o) {
  std::string s;
  for (const auto& c : o.chains) {
    s += c.name + ":\n";
    for (const auto& r : c.rules) s += "  " + RuleText(r) + "\n";
  }
  for (const auto& a : o.affinity_sets) {
    s += "set " + a.name + " timeout " + std::to_string(a.timeout_seconds) + "\n";
  }
  for (const auto& e : o.elements) s += MapName(e.key.map, e.key.family) + " " + ElementText(e) + "\n";
  for (const auto& ip : o.cluster_ips) s += "cluster-ip " + ip.ToString() + "\n";
  for (const auto& ip : o.hairpin_ips) s += "hairpin " + ip.ToString() + "\n";
  return s;
}

TEST(NftLayout, ClusterIpWithEndpointsIsOneChainAndOneElement) {
  auto svc = Svc({Port("10.96.0.10", 80, {Ep("10.244.1.2", 8080, true), Ep("10.244.2.3", 8080)})});
  EXPECT_EQ(Dump(RenderService(svc, Opts())),
            "svc4-default/web/tcp/http:\n"
            "  ip saddr != 10.244.0.0/16 jump mark-for-masquerade\n"
            "  meta l4proto tcp dnat ip to numgen random mod 2 map { 0 : 10.244.1.2 . 8080, "
            "1 : 10.244.2.3 . 8080 }\n"
            "service-ips4 10.96.0.10 . tcp . 80 : goto svc4-default/web/tcp/http\n"
            "cluster-ip 10.96.0.10\n"
            "hairpin 10.244.1.2\n");
}

TEST(NftLayout, SingleEndpointDnatsWithoutAMap) {
  auto svc = Svc({Port("fd00:96::a", 53, {Ep("fd00:244:1::2", 5353)}, api::Protocol::kUdp)});
  svc.ports[0].name.port = "";
  EXPECT_EQ(Dump(RenderService(svc, Opts())),
            "svc6-default/web/udp/53:\n"
            "  ip6 saddr != fd00:244::/48 jump mark-for-masquerade\n"
            "  meta l4proto udp dnat ip6 to [fd00:244:1::2]:5353\n"
            "service-ips6 fd00:96::a . udp . 53 : goto svc6-default/web/udp/53\n"
            "cluster-ip fd00:96::a\n");
}

TEST(NftLayout, NoEndpointsRejectsAndLocalPolicyWithoutLocalEndpointsDrops) {
  auto none = Port("10.96.0.11", 80, {});
  none.node_port = 30080;
  EXPECT_EQ(Dump(RenderService(Svc({none}), Opts())),
            "no-endpoint-services4 10.96.0.11 . tcp . 80 : goto reject-chain\n"
            "no-endpoint-nodeports4 tcp . 30080 : goto reject-chain\n"
            "cluster-ip 10.96.0.11\n");

  auto remote_only = Port("10.96.0.12", 80, {Ep("10.244.2.3", 8080)});
  remote_only.node_port = 30081;
  remote_only.external_policy_local = true;
  remote_only.external_verdict = TrafficVerdict::kDrop;
  EXPECT_EQ(Dump(RenderService(Svc({remote_only}), Opts())),
            "svc4-default/web/tcp/http:\n"
            "  ip saddr != 10.244.0.0/16 jump mark-for-masquerade\n"
            "  meta l4proto tcp dnat ip to 10.244.2.3:8080\n"
            "service-ips4 10.96.0.12 . tcp . 80 : goto svc4-default/web/tcp/http\n"
            "no-endpoint-nodeports4 tcp . 30081 : drop\n"
            "cluster-ip 10.96.0.12\n");
}

TEST(NftLayout, ExternalClusterPolicyMasqueradesEverything) {
  auto p = Port("10.96.0.13", 80, {Ep("10.244.1.2", 8080, true)});
  p.node_port = 30082;
  p.external_ips = {IpAddress::MustParse("192.0.2.10")};
  EXPECT_EQ(Dump(RenderService(Svc({p}), Opts())),
            "svc4-default/web/tcp/http:\n"
            "  ip saddr != 10.244.0.0/16 jump mark-for-masquerade\n"
            "  meta l4proto tcp dnat ip to 10.244.1.2:8080\n"
            "ext4-default/web/tcp/http:\n"
            "  jump mark-for-masquerade\n"
            "  meta l4proto tcp dnat ip to 10.244.1.2:8080\n"
            "service-ips4 10.96.0.13 . tcp . 80 : goto svc4-default/web/tcp/http\n"
            "service-ips4 192.0.2.10 . tcp . 80 : goto ext4-default/web/tcp/http\n"
            "service-nodeports4 tcp . 30082 : goto ext4-default/web/tcp/http\n"
            "cluster-ip 10.96.0.13\n"
            "hairpin 10.244.1.2\n");
}

TEST(NftLayout, ExternalLocalPolicyKeepsTheSourceOfOutsideClients) {
  auto p = Port("10.96.0.14", 80, {Ep("10.244.1.2", 8080, true), Ep("10.244.2.3", 8080)});
  p.external_policy_local = true;
  p.load_balancer_ips = {IpAddress::MustParse("203.0.113.7")};
  p.load_balancer_source_ranges = {IpPrefix::MustParse("198.51.100.0/24")};
  EXPECT_EQ(Dump(RenderService(Svc({p}), Opts())),
            "svc4-default/web/tcp/http:\n"
            "  ip saddr != 10.244.0.0/16 jump mark-for-masquerade\n"
            "  meta l4proto tcp dnat ip to numgen random mod 2 map { 0 : 10.244.1.2 . 8080, "
            "1 : 10.244.2.3 . 8080 }\n"
            "ext4-default/web/tcp/http:\n"
            "  ip saddr 10.244.0.0/16 meta l4proto tcp dnat ip to numgen random mod 2 map { "
            "0 : 10.244.1.2 . 8080, 1 : 10.244.2.3 . 8080 }\n"
            "  fib saddr type local jump mark-for-masquerade\n"
            "  fib saddr type local meta l4proto tcp dnat ip to numgen random mod 2 map { "
            "0 : 10.244.1.2 . 8080, 1 : 10.244.2.3 . 8080 }\n"
            "  meta l4proto tcp dnat ip to 10.244.1.2:8080\n"
            "fw4-default/web/tcp/http:\n"
            "  ip saddr 198.51.100.0/24 return\n"
            "  drop\n"
            "service-ips4 10.96.0.14 . tcp . 80 : goto svc4-default/web/tcp/http\n"
            "service-ips4 203.0.113.7 . tcp . 80 : goto ext4-default/web/tcp/http\n"
            "firewall-ips4 203.0.113.7 . tcp . 80 : goto fw4-default/web/tcp/http\n"
            "cluster-ip 10.96.0.14\n"
            "hairpin 10.244.1.2\n");
}

TEST(NftLayout, SessionAffinityUsesATimeoutSetPerEndpoint) {
  auto p = Port("10.96.0.15", 80, {Ep("10.244.1.2", 8080), Ep("10.244.2.3", 8080)});
  p.affinity_timeout_seconds = 10800;
  const std::string a = "default/web/tcp/http__10.244.1.2/8080";
  const std::string b = "default/web/tcp/http__10.244.2.3/8080";
  const std::string as = a + "__10800s";
  const std::string bs = b + "__10800s";
  EXPECT_EQ(Dump(RenderService(Svc({p}), Opts())),
            "svc4-default/web/tcp/http:\n"
            "  ip saddr != 10.244.0.0/16 jump mark-for-masquerade\n"
            "  ip saddr @aff4-" + as + " goto ep4-" + a + "\n"
            "  ip saddr @aff4-" + bs + " goto ep4-" + b + "\n"
            "  numgen random mod 2 vmap { 0 : goto ep4-" + a + ", 1 : goto ep4-" + b + " }\n"
            "ep4-" + a + ":\n"
            "  update @aff4-" + as + " { ip saddr }\n"
            "  meta l4proto tcp dnat ip to 10.244.1.2:8080\n"
            "ep4-" + b + ":\n"
            "  update @aff4-" + bs + " { ip saddr }\n"
            "  meta l4proto tcp dnat ip to 10.244.2.3:8080\n"
            "set aff4-" + as + " timeout 10800\n"
            "set aff4-" + bs + " timeout 10800\n"
            "service-ips4 10.96.0.15 . tcp . 80 : goto svc4-default/web/tcp/http\n"
            "cluster-ip 10.96.0.15\n");
}

TEST(NftLayout, MasqueradeAllAndNoClusterCidr) {
  auto p = Port("10.96.0.16", 80, {Ep("10.244.1.2", 8080)});
  LayoutOptions all;
  all.masquerade_all = true;
  EXPECT_EQ(RuleText(RenderService(Svc({p}), all).chains[0].rules[0]), "jump mark-for-masquerade");
  // Without a cluster CIDR ClusterIP traffic keeps its source (kube-proxy without local
  // traffic detection): the chain is just the DNAT.
  EXPECT_EQ(RenderService(Svc({p}), LayoutOptions{}).chains[0].rules.size(), 1u);
}

TEST(NftLayout, InternalLocalPolicyUsesOnlyLocalEndpoints) {
  auto p = Port("10.96.0.17", 80, {Ep("10.244.1.2", 8080, true), Ep("10.244.2.3", 8080)});
  p.internal_policy_local = true;
  auto objects = RenderService(Svc({p}), Opts());
  EXPECT_EQ(RuleText(objects.chains[0].rules[1]), "meta l4proto tcp dnat ip to 10.244.1.2:8080");
}

TEST(NftLayout, BaseChainsHookEverywhereKubeProxyDoes) {
  std::string s;
  for (const auto& c : RenderBaseChains(Opts())) {
    s += c.name + (c.base() ? " (" + c.type + " " + std::to_string(c.hook) + " " +
                                  std::to_string(c.priority) + ")"
                            : std::string()) +
         ":\n";
    for (const auto& r : c.rules) s += "  " + RuleText(r) + "\n";
  }
  EXPECT_EQ(s,
            "nat-prerouting (nat 0 -100):\n  jump services\n"
            "nat-output (nat 3 -100):\n  jump services\n"
            "nat-postrouting (nat 4 100):\n  jump masquerading\n"
            "filter-prerouting (filter 0 -110):\n  ct state new jump firewall-check\n"
            "filter-output (filter 3 -110):\n  ct state new jump firewall-check\n"
            "filter-input (filter 1 -1):\n  ct state new jump nodeport-endpoints-check\n"
            "  ct state new jump service-endpoints-check\n"
            "filter-forward (filter 2 -1):\n  ct state invalid drop\n"
            "  ct state new jump service-endpoints-check\n"
            "  ct state new jump cluster-ips-check\n"
            "filter-output-post-dnat (filter 3 -90):\n"
            "  ct state new jump service-endpoints-check\n"
            "  ct state new jump cluster-ips-check\n"
            "services:\n"
            "  ip daddr . meta l4proto . th dport vmap @service-ips4\n"
            "  ip6 daddr . meta l4proto . th dport vmap @service-ips6\n"
            "  fib daddr type local ip daddr != 127.0.0.0/8 meta nfproto ipv4 meta l4proto . th "
            "dport vmap @service-nodeports4\n"
            "  fib daddr type local ip6 daddr != ::1 meta nfproto ipv6 meta l4proto . th dport "
            "vmap @service-nodeports6\n"
            "firewall-check:\n"
            "  ip daddr . meta l4proto . th dport vmap @firewall-ips4\n"
            "  ip6 daddr . meta l4proto . th dport vmap @firewall-ips6\n"
            "service-endpoints-check:\n"
            "  ip daddr . meta l4proto . th dport vmap @no-endpoint-services4\n"
            "  ip6 daddr . meta l4proto . th dport vmap @no-endpoint-services6\n"
            "nodeport-endpoints-check:\n"
            "  fib daddr type local ip daddr != 127.0.0.0/8 meta nfproto ipv4 meta l4proto . th "
            "dport vmap @no-endpoint-nodeports4\n"
            "  fib daddr type local ip6 daddr != ::1 meta nfproto ipv6 meta l4proto . th dport "
            "vmap @no-endpoint-nodeports6\n"
            "cluster-ips-check:\n"
            "  ip daddr @cluster-ips4 goto reject-chain\n"
            "  ip6 daddr @cluster-ips6 goto reject-chain\n"
            "reject-chain:\n  meta l4proto tcp reject with tcp reset\n"
            "  reject with icmpx port-unreachable\n"
            "mark-for-masquerade:\n  meta mark set meta mark | 0x00004000\n"
            "masquerading:\n"
            "  ct status dnat ip saddr . ip daddr @hairpin4 masquerade fully-random\n"
            "  ct status dnat ip6 saddr . ip6 daddr @hairpin6 masquerade fully-random\n"
            "  meta mark & 0x00004000 == 0x00000000 return\n"
            "  meta mark set meta mark ^ 0x00004000\n"
            "  masquerade fully-random\n");
}

TEST(NftLayout, NodePortAddressesSetInsteadOfEveryLocalAddress) {
  LayoutOptions o = Opts();
  o.nodeports_on_all_local_addresses = false;
  for (const auto& c : RenderBaseChains(o)) {
    if (c.name != "services") continue;
    EXPECT_EQ(RuleText(c.rules[2]),
              "ip daddr @nodeport-ips4 meta nfproto ipv4 meta l4proto . th dport vmap "
              "@service-nodeports4");
  }
}

TEST(NftLayout, FingerprintsFollowContent) {
  auto a = RenderService(Svc({Port("10.96.0.10", 80, {Ep("10.244.1.2", 8080)})}), Opts());
  auto b = RenderService(Svc({Port("10.96.0.10", 80, {Ep("10.244.1.3", 8080)})}), Opts());
  EXPECT_EQ(Fingerprint(a.chains[0].rules[0]), Fingerprint(b.chains[0].rules[0]));
  EXPECT_NE(Fingerprint(a.chains[0].rules[1]), Fingerprint(b.chains[0].rules[1]));
}

TEST(NftLayout, ElementKeysArePaddedLikeTheKernelStoresThem) {
  ElementKey k{.map = MapId::kServiceIps, .family = IpFamily::kV4,
               .ip = IpAddress::MustParse("10.96.0.10"), .proto = api::Protocol::kUdp,
               .port = 53};
  EXPECT_EQ(ElementKeyBytes(k),
            (std::vector<uint8_t>{10, 96, 0, 10, 17, 0, 0, 0, 0, 53, 0, 0}));
  ElementKey n{.map = MapId::kNodePorts, .family = IpFamily::kV6, .proto = api::Protocol::kSctp,
               .port = 30000};
  EXPECT_EQ(ElementKeyBytes(n), (std::vector<uint8_t>{132, 0, 0, 0, 0x75, 0x30, 0, 0}));
}

}  // namespace
}  // namespace sluice::proxy::nftables
