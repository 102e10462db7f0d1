#include "controlplane/state/pod_network.h"

#include <gtest/gtest.h>

namespace sluice::state {
namespace {

using NodePtr = std::shared_ptr<const api::Node>;

NodePtr MakeNode(std::string name, std::vector<std::string> cidrs, std::vector<std::string> ips,
                 std::vector<std::string> external_ips = {}) {
  auto n = std::make_shared<api::Node>();
  n->metadata.name = std::move(name);
  for (const auto& c : cidrs) n->pod_cidrs.push_back(IpPrefix::MustParse(c));
  auto add = [&](api::NodeAddressType type, const std::string& ip) {
    api::NodeAddress a;
    a.type = type;
    a.address = ip;
    a.ip = IpAddress::MustParse(ip);
    n->addresses.push_back(a);
  };
  for (const auto& ip : ips) add(api::NodeAddressType::kInternalIp, ip);
  for (const auto& ip : external_ips) add(api::NodeAddressType::kExternalIp, ip);
  return n;
}

const std::set<IpFamily> kBoth = {IpFamily::kV4, IpFamily::kV6};

std::vector<std::string> Strings(const std::vector<IpPrefix>& v) {
  std::vector<std::string> out;
  for (const auto& p : v) out.push_back(p.ToString());
  return out;
}

std::vector<std::string> Strings(const std::vector<PodRoute>& v) {
  std::vector<std::string> out;
  for (const auto& r : v) out.push_back(r.dst.ToString() + " via " + r.via.ToString() + " " + r.node);
  return out;
}

TEST(PodNetwork, RoutesEveryOtherNodeViaItsIpOfTheSameFamily) {
  std::vector<NodePtr> nodes = {
      MakeNode("node-2", {"10.244.2.0/24", "fd00:10:244:2::/64"}, {"192.168.77.12", "fd00:77::12"}),
      MakeNode("node-0", {"10.244.0.0/24", "fd00:10:244::/64"}, {"192.168.77.10", "fd00:77::10"}),
      MakeNode("node-1", {"10.244.1.7/24", "fd00:10:244:1::/64"}, {"192.168.77.11", "fd00:77::11"}),
  };
  std::vector<IpPrefix> cluster = {IpPrefix::MustParse("10.244.0.0/16"),
                                   IpPrefix::MustParse("fd00:10:244::/56")};
  PodNetworkState s = ComputePodNetwork(nodes, "node-1", cluster, kBoth);
  EXPECT_TRUE(s.node_known);
  EXPECT_EQ(Strings(s.pod_cidrs),
            (std::vector<std::string>{"10.244.1.0/24", "fd00:10:244:1::/64"}));
  EXPECT_EQ(Strings(s.routes), (std::vector<std::string>{
                                   "10.244.0.0/24 via 192.168.77.10 node-0",
                                   "10.244.2.0/24 via 192.168.77.12 node-2",
                                   "fd00:10:244::/64 via fd00:77::10 node-0",
                                   "fd00:10:244:2::/64 via fd00:77::12 node-2",
                               }));
  // The node CIDRs are inside the cluster CIDRs: only those remain.
  EXPECT_EQ(Strings(s.cluster_cidrs),
            (std::vector<std::string>{"10.244.0.0/16", "fd00:10:244::/56"}));
  EXPECT_TRUE(s.problems.empty());
}

TEST(PodNetwork, WithoutClusterCidrEveryNodesCidrKeepsTheSource) {
  std::vector<NodePtr> nodes = {
      MakeNode("a", {"10.1.0.0/24"}, {"192.168.1.1"}),
      MakeNode("b", {"10.2.0.0/24"}, {"192.168.1.2"}),
  };
  PodNetworkState s = ComputePodNetwork(nodes, "a", {}, kBoth);
  EXPECT_EQ(Strings(s.cluster_cidrs), (std::vector<std::string>{"10.1.0.0/24", "10.2.0.0/24"}));
  // A CIDR outside --cluster-cidr is added to it.
  std::vector<IpPrefix> cluster = {IpPrefix::MustParse("10.1.0.0/16")};
  s = ComputePodNetwork(nodes, "a", cluster, kBoth);
  EXPECT_EQ(Strings(s.cluster_cidrs), (std::vector<std::string>{"10.1.0.0/16", "10.2.0.0/24"}));
}

TEST(PodNetwork, UnroutableNodesAreReportedAndSkipped) {
  std::vector<NodePtr> nodes = {
      MakeNode("a", {"10.1.0.0/24", "fd00:1::/64"}, {"192.168.1.1"}),
      // No IPv6 address: its IPv6 CIDR cannot be routed; an ExternalIP serves when no InternalIP.
      MakeNode("b", {"10.2.0.0/24", "fd00:2::/64"}, {}, {"198.51.100.2"}),
      // Overlaps node a's range: a keeps it.
      MakeNode("c", {"10.1.0.128/25"}, {"192.168.1.3"}),
      // No pod CIDR yet: nothing to route.
      MakeNode("d", {}, {"192.168.1.4"}),
  };
  PodNetworkState s = ComputePodNetwork(nodes, "a", {}, kBoth);
  EXPECT_EQ(Strings(s.routes), (std::vector<std::string>{"10.2.0.0/24 via 198.51.100.2 b"}));
  ASSERT_EQ(s.problems.size(), 2u);
  EXPECT_NE(s.problems[0].find("node b: pod CIDR fd00:2::/64 has no node IP of its family"),
            std::string::npos)
      << s.problems[0];
  EXPECT_NE(s.problems[1].find("node c: pod CIDR 10.1.0.128/25 overlaps 10.1.0.0/24"),
            std::string::npos)
      << s.problems[1];
}

TEST(PodNetwork, FamiliesLimitEverything) {
  std::vector<NodePtr> nodes = {
      MakeNode("a", {"10.1.0.0/24", "fd00:1::/64"}, {"192.168.1.1", "fd00:9::1"}),
      MakeNode("b", {"10.2.0.0/24", "fd00:2::/64"}, {"192.168.1.2", "fd00:9::2"}),
  };
  PodNetworkState s = ComputePodNetwork(nodes, "a", {}, {IpFamily::kV6});
  EXPECT_EQ(Strings(s.pod_cidrs), (std::vector<std::string>{"fd00:1::/64"}));
  EXPECT_EQ(Strings(s.routes), (std::vector<std::string>{"fd00:2::/64 via fd00:9::2 b"}));
}

TEST(PodNetwork, UnknownNode) {
  std::vector<NodePtr> nodes = {MakeNode("b", {"10.2.0.0/24"}, {"192.168.1.2"})};
  PodNetworkState s = ComputePodNetwork(nodes, "a", {}, kBoth);
  EXPECT_FALSE(s.node_known);
  EXPECT_TRUE(s.pod_cidrs.empty());
  EXPECT_EQ(s.routes.size(), 1u);
}

}  // namespace
}  // namespace sluice::state
