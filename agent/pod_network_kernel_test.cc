// PodNetwork against the kernel, in fresh network namespaces: the conflist on disk, host-gw routes
// (only ours touched), the egress masquerade table, and cleanup.
#include "agent/pod_network.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "dataplane/nft/netns_testing.h"

namespace sluice::agent {
namespace {

using nft::testing::RunCommand;

std::shared_ptr<const api::Node> MakeNode(std::string name, std::vector<std::string> cidrs,
                                          std::vector<std::string> ips) {
  auto n = std::make_shared<api::Node>();
  n->metadata.name = std::move(name);
  for (const auto& c : cidrs) n->pod_cidrs.push_back(IpPrefix::MustParse(c));
  for (const auto& ip : ips) {
    api::NodeAddress a;
    a.type = api::NodeAddressType::kInternalIp;
    a.address = ip;
    a.ip = IpAddress::MustParse(ip);
    n->addresses.push_back(a);
  }
  return n;
}

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/sluice-podnet-test-XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// The node's underlay: a veth (no dummy driver in this kernel) with addresses of both families, so gateways are reachable.
void Underlay() {
  RunCommand({"ip", "link", "add", "ul0", "type", "veth", "peer", "name", "ul1"});
  RunCommand({"ip", "link", "set", "ul1", "up"});
  RunCommand({"ip", "addr", "add", "192.168.77.11/24", "dev", "ul0"});
  RunCommand({"ip", "addr", "add", "fd00:77::11/64", "dev", "ul0", "nodad"});
  RunCommand({"ip", "link", "set", "ul0", "up"});
}

const std::set<IpFamily> kBoth = {IpFamily::kV4, IpFamily::kV6};
const std::vector<IpPrefix> kCluster = {IpPrefix::MustParse("10.244.0.0/16"),
                                        IpPrefix::MustParse("fd00:10:244::/56")};

TEST(PodNetworkKernel, ConflistRoutesMasqueradeAndCleanup) {
  TempDir dir;
  SLUICE_IN_FRESH_NETNS([&] {
    Underlay();
    // A route someone else owns, to a CIDR a node will also claim, and an unrelated one.
    RunCommand({"ip", "route", "add", "10.244.9.0/24", "via", "192.168.77.1"});
    RunCommand({"ip", "route", "add", "172.16.0.0/16", "via", "192.168.77.1"});

    PodNetworkOptions o;
    o.conf_dir = dir.path() + "/net.d";
    o.bin_dirs = {dir.path() + "/no-such-dir"};
    o.ipam_data_dir = dir.path() + "/ipam";
    PodNetwork net(o);
    std::vector<std::shared_ptr<const api::Node>> nodes = {
        MakeNode("node-0", {"10.244.0.0/24", "fd00:10:244::/64"}, {"192.168.77.10", "fd00:77::10"}),
        MakeNode("node-1", {"10.244.1.0/24", "fd00:10:244:1::/64"}, {"192.168.77.11", "fd00:77::11"}),
        MakeNode("node-2", {"10.244.2.0/24", "fd00:10:244:2::/64"}, {"192.168.77.12", "fd00:77::12"}),
    };
    auto state = state::ComputePodNetwork(nodes, "node-1", kCluster, kBoth);
    net.Apply(state, /*full=*/true);

    // The conflist: our bridge over the node's CIDRs, with the data dir; no portmap found.
    auto conf = nlohmann::json::parse(Slurp(net.conflist_path()));
    EXPECT_EQ(conf["name"], "sluice");
    EXPECT_EQ(conf["cniVersion"], "1.0.0");
    ASSERT_EQ(conf["plugins"].size(), 1u) << conf.dump();
    const auto& bridge = conf["plugins"][0];
    EXPECT_EQ(bridge["type"], "bridge");
    EXPECT_EQ(bridge["bridge"], "cni0");
    EXPECT_EQ(bridge["hairpinMode"], true);
    EXPECT_EQ(bridge["ipMasq"], false);
    EXPECT_EQ(bridge["ipam"]["ranges"].dump(),
              R"([[{"subnet":"10.244.1.0/24"}],[{"subnet":"fd00:10:244:1::/64"}]])");
    EXPECT_EQ(bridge["ipam"]["dataDir"], o.ipam_data_dir);

    std::string routes4 = RunCommand({"ip", "-4", "route", "show", "proto", "83"});
    EXPECT_NE(routes4.find("10.244.0.0/24 via 192.168.77.10"), std::string::npos) << routes4;
    EXPECT_NE(routes4.find("10.244.2.0/24 via 192.168.77.12"), std::string::npos) << routes4;
    EXPECT_EQ(routes4.find("10.244.1.0/24"), std::string::npos) << routes4;  // our own
    std::string routes6 = RunCommand({"ip", "-6", "route", "show", "proto", "83"});
    EXPECT_NE(routes6.find("fd00:10:244::/64 via fd00:77::10"), std::string::npos) << routes6;
    EXPECT_NE(routes6.find("fd00:10:244:2::/64 via fd00:77::12"), std::string::npos) << routes6;

    std::string table = RunCommand({"nft", "list", "table", "inet", "sluice-pod-egress"});
    EXPECT_NE(table.find("ip saddr 10.244.1.0/24 ip daddr 10.244.0.0/16 return"),
              std::string::npos)
        << table;
    EXPECT_NE(table.find("ip6 saddr fd00:10:244:1::/64 ip6 daddr fd00:10:244::/56 return"),
              std::string::npos)
        << table;
    EXPECT_NE(table.find("ip saddr 10.244.1.0/24 masquerade"), std::string::npos) << table;
    EXPECT_NE(table.find("ip6 saddr fd00:10:244:1::/64 masquerade"), std::string::npos) << table;

    // node-2 leaves, node-0 moves, node-9 claims a CIDR another route owns; node-1's CIDR grows.
    nodes = {
        MakeNode("node-0", {"10.244.0.0/24"}, {"192.168.77.20"}),
        MakeNode("node-1", {"10.244.1.0/24", "fd00:10:244:1::/64"}, {"192.168.77.11", "fd00:77::11"}),
        MakeNode("node-9", {"10.244.9.0/24"}, {"192.168.77.19"}),
    };
    state = state::ComputePodNetwork(nodes, "node-1", kCluster, kBoth);
    try {
      net.Apply(state, /*full=*/false);
      ADD_FAILURE() << "a route owned by someone else must be reported";
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("10.244.9.0/24: a route to it not installed by sluice"),
                std::string::npos)
          << e.what();
    }
    routes4 = RunCommand({"ip", "-4", "route", "show"});
    EXPECT_NE(routes4.find("10.244.0.0/24 via 192.168.77.20 dev ul0 proto 83"), std::string::npos)
        << routes4;
    EXPECT_EQ(routes4.find("10.244.2.0/24"), std::string::npos) << routes4;
    EXPECT_NE(routes4.find("10.244.9.0/24 via 192.168.77.1 dev ul0 \n"), std::string::npos)
        << routes4;
    EXPECT_NE(routes4.find("172.16.0.0/16 via 192.168.77.1"), std::string::npos) << routes4;
    EXPECT_EQ(RunCommand({"ip", "-6", "route", "show", "proto", "83"}), "");

    // A route of ours deleted by hand comes back on the next (full) apply.
    RunCommand({"ip", "route", "del", "10.244.0.0/24"});
    RunCommand({"ip", "route", "del", "10.244.9.0/24"});
    net.Apply(state, /*full=*/true);
    routes4 = RunCommand({"ip", "-4", "route", "show", "proto", "83"});
    EXPECT_NE(routes4.find("10.244.0.0/24 via 192.168.77.20"), std::string::npos) << routes4;
    EXPECT_NE(routes4.find("10.244.9.0/24 via 192.168.77.19"), std::string::npos) << routes4;

    // This node's own Node goes away (deleted, about to come back): the routes to the others
    // follow, the conflist and the masquerade stay for the pods still running.
    nodes = {MakeNode("node-0", {"10.244.0.0/24"}, {"192.168.77.20"})};
    net.Apply(state::ComputePodNetwork(nodes, "node-1", kCluster, kBoth), /*full=*/true);
    routes4 = RunCommand({"ip", "-4", "route", "show", "proto", "83"});
    EXPECT_NE(routes4.find("10.244.0.0/24 via 192.168.77.20"), std::string::npos) << routes4;
    EXPECT_EQ(routes4.find("10.244.9.0/24"), std::string::npos) << routes4;
    EXPECT_TRUE(std::filesystem::exists(net.conflist_path()));
    table = RunCommand({"nft", "list", "table", "inet", "sluice-pod-egress"});
    EXPECT_NE(table.find("ip saddr 10.244.1.0/24 masquerade"), std::string::npos) << table;

    net.Cleanup();
    EXPECT_EQ(RunCommand({"ip", "-4", "route", "show", "proto", "83"}), "");
    EXPECT_NE(RunCommand({"ip", "-4", "route", "show"}).find("172.16.0.0/16"), std::string::npos);
    EXPECT_EQ(RunCommand({"nft", "list", "tables"}).find("sluice-pod-egress"), std::string::npos);
    EXPECT_FALSE(std::filesystem::exists(net.conflist_path()));
  });
}

TEST(PodNetworkKernel, PodEgressIsMasqueradedPodToPodIsNot) {
  SLUICE_IN_FRESH_NETNS([&] {
    // This netns is the node; a pod netns behind a veth, and "outside" and "other node's pod"
    // addresses on a second veth's far side.
    nft::testing::Netns node = nft::testing::Netns::Current();
    nft::testing::Netns pod = nft::testing::Netns::Create();
    nft::testing::Netns far = nft::testing::Netns::Create();
    RunCommand({"ip", "link", "add", "p0", "type", "veth", "peer", "name", "eth0", "netns",
                pod.Path()});
    RunCommand({"ip", "link", "add", "ul0", "type", "veth", "peer", "name", "eth0", "netns",
                far.Path()});
    RunCommand({"ip", "addr", "add", "10.244.1.1/24", "dev", "p0"});
    RunCommand({"ip", "addr", "add", "192.168.77.11/24", "dev", "ul0"});
    RunCommand({"ip", "link", "set", "p0", "up"});
    RunCommand({"ip", "link", "set", "ul0", "up"});
    RunCommand({"sysctl", "-qw", "net.ipv4.ip_forward=1"});
    pod.RunCommand({"ip", "addr", "add", "10.244.1.5/24", "dev", "eth0"});
    pod.RunCommand({"ip", "link", "set", "eth0", "up"});
    pod.RunCommand({"ip", "route", "add", "default", "via", "10.244.1.1"});
    // "far" answers as the other node (10.244.2.7, a pod there) and as the outside (203.0.113.9).
    far.RunCommand({"ip", "addr", "add", "192.168.77.12/24", "dev", "eth0"});
    far.RunCommand({"ip", "addr", "add", "10.244.2.7/32", "dev", "eth0"});
    far.RunCommand({"ip", "addr", "add", "203.0.113.9/32", "dev", "eth0"});
    far.RunCommand({"ip", "link", "set", "eth0", "up"});
    far.RunCommand({"ip", "route", "add", "10.244.1.0/24", "via", "192.168.77.11"});

    PodNetworkOptions o;
    char tmpl[] = "/tmp/sluice-podnet-test-XXXXXX";
    o.conf_dir = std::string(mkdtemp(tmpl)) + "/net.d";
    PodNetwork net(o);
    std::vector<std::shared_ptr<const api::Node>> nodes = {
        MakeNode("node-1", {"10.244.1.0/24"}, {"192.168.77.11"}),
        MakeNode("node-2", {"10.244.2.0/24"}, {"192.168.77.12"}),
    };
    net.Apply(state::ComputePodNetwork(nodes, "node-1", kCluster, kBoth), true);
    RunCommand({"ip", "route", "add", "203.0.113.0/24", "via", "192.168.77.12"});

    EXPECT_EQ(nft::testing::TcpSourceSeen(pod, far, "10.244.2.7", 7001), "10.244.1.5");
    EXPECT_EQ(nft::testing::UdpSourceSeen(pod, far, "10.244.2.7", 7002), "10.244.1.5");
    EXPECT_EQ(nft::testing::TcpSourceSeen(pod, far, "203.0.113.9", 7003), "192.168.77.11");
    EXPECT_EQ(nft::testing::UdpSourceSeen(pod, far, "203.0.113.9", 7004), "192.168.77.11");
    net.Cleanup();
    std::filesystem::remove_all(std::filesystem::path(o.conf_dir).parent_path());
  });
}

}  // namespace
}  // namespace sluice::agent
