// PodMasquerade in fresh network namespaces: the layout nft reads back, idempotence, races
// between processes, DEL/GC, removal of the reference plugin's rules, and real packets.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "dataplane/nft/netns_testing.h"
#include "dataplane/nft/nft_socket.h"
#include "dataplane/nft/pod_masquerade.h"
#include "dataplane/nft/reference_masquerade.h"

namespace sluice::nft {
namespace {

using json = nlohmann::json;
using testing::Netns;
using testing::NftJson;
using testing::NftText;
using testing::RunCommand;

const std::string kCid1 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const std::string kCid2 = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";

CniAttachment Pod(const std::string& network, const std::string& cid,
                  const std::string& ifname = "eth0") {
  return {network, cid, ifname};
}

std::vector<MasqueradeAddress> V4(const std::string& ip, const std::string& subnet) {
  return {{IpAddress::MustParse(ip), IpPrefix::MustParse(subnet)}};
}

// The ruleset's objects of one kind ("table", "chain", "map", "rule") in our table.
std::vector<json> Objects(const json& ruleset, const std::string& kind,
                          const std::string& table = std::string(PodMasquerade::kTable)) {
  std::vector<json> out;
  for (const json& item : ruleset["nftables"]) {
    if (!item.contains(kind)) continue;
    const json& object = item[kind];
    std::string name = kind == "table" ? object["name"] : object["table"];
    if (name == table) out.push_back(object);
  }
  return out;
}

json Ruleset() { return json::parse(NftJson()); }

size_t ElementCount(const json& ruleset, const std::string& map) {
  for (const json& m : Objects(ruleset, "map")) {
    if (m["name"] == map) return m.contains("elem") ? m["elem"].size() : 0;
  }
  return 0;
}

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

TEST(PodMasqueradeKernelTest, AddBuildsTheLayout) {
  SLUICE_IN_FRESH_NETNS([] {
    NftSocket socket;
    PodMasquerade masq(socket);
    std::vector<MasqueradeAddress> addresses = {
        {IpAddress::MustParse("10.99.0.2"), IpPrefix::MustParse("10.99.0.0/24")},
        {IpAddress::MustParse("fd00:99::2"), IpPrefix::MustParse("fd00:99::/64")},
    };
    masq.Add(Pod("mynet", kCid1), addresses);

    const std::string chain4 =
        PodMasquerade::SubnetChainName("mynet", IpPrefix::MustParse("10.99.0.0/24"));
    const std::string chain6 =
        PodMasquerade::SubnetChainName("mynet", IpPrefix::MustParse("fd00:99::/64"));
    const std::string comment = "net=mynet id=" + kCid1 + " if=eth0";

    json ruleset = Ruleset();
    ASSERT_EQ(Objects(ruleset, "table").size(), 1u) << ruleset.dump(1);
    EXPECT_EQ(Objects(ruleset, "table")[0]["family"], "inet");
    std::vector<json> chains = Objects(ruleset, "chain");
    ASSERT_EQ(chains.size(), 3u) << ruleset.dump(1);
    for (const json& c : chains) {
      if (c["name"] == "postrouting") {
        EXPECT_EQ(c["type"], "nat");
        EXPECT_EQ(c["hook"], "postrouting");
        EXPECT_EQ(c["prio"], 100);
      } else {
        EXPECT_TRUE(c["name"] == chain4 || c["name"] == chain6) << c.dump();
        EXPECT_FALSE(c.contains("hook"));
      }
    }
    ASSERT_EQ(Objects(ruleset, "map").size(), 2u);
    for (const json& m : Objects(ruleset, "map")) {
      EXPECT_EQ(m["map"], "verdict");
      EXPECT_EQ(m["type"], m["name"] == "pods4" ? "ipv4_addr" : "ipv6_addr");
      ASSERT_EQ(m["elem"].size(), 1u) << m.dump();
      const json& elem = m["elem"][0];  // [ {"elem": {"val", "comment"}}, {"jump": {...}} ]
      EXPECT_EQ(elem[0]["elem"]["comment"], comment) << elem.dump();
      EXPECT_EQ(elem[0]["elem"]["val"], m["name"] == "pods4" ? "10.99.0.2" : "fd00:99::2");
      EXPECT_EQ(elem[1]["jump"]["target"], m["name"] == "pods4" ? chain4 : chain6);
    }
    EXPECT_EQ(Objects(ruleset, "rule").size(), 2u + 3u + 3u);

    // The same, as an operator reads it.
    std::string text = NftText();
    EXPECT_TRUE(Contains(text, "type nat hook postrouting priority srcnat; policy accept;"))
        << text;
    EXPECT_TRUE(Contains(text, "ip saddr vmap @pods4")) << text;
    EXPECT_TRUE(Contains(text, "ip6 saddr vmap @pods6")) << text;
    EXPECT_TRUE(Contains(text, "comment \"net=mynet subnet=10.99.0.0/24\"")) << text;
    EXPECT_TRUE(Contains(text, "ip daddr 10.99.0.0/24 return")) << text;
    EXPECT_TRUE(Contains(text, "ip daddr 224.0.0.0/4 return")) << text;
    EXPECT_TRUE(Contains(text, "ip6 daddr fd00:99::/64 return")) << text;
    EXPECT_TRUE(Contains(text, "ip6 daddr ff00::/8 return")) << text;
    EXPECT_TRUE(Contains(text, "masquerade comment \"net=mynet subnet=fd00:99::/64\"")) << text;
    EXPECT_TRUE(Contains(text, "10.99.0.2 comment \"" + comment + "\" : jump " + chain4)) << text;

    EXPECT_TRUE(masq.Has(Pod("mynet", kCid1), IpAddress::MustParse("10.99.0.2")));
    EXPECT_TRUE(masq.Has(Pod("mynet", kCid1), IpAddress::MustParse("fd00:99::2")));
    EXPECT_FALSE(masq.Has(Pod("mynet", kCid2), IpAddress::MustParse("10.99.0.2")));
    EXPECT_FALSE(masq.Has(Pod("mynet", kCid1), IpAddress::MustParse("10.99.0.3")));
    std::vector<MasqueradeEntry> listed = masq.List("mynet");
    ASSERT_EQ(listed.size(), 2u);
    EXPECT_EQ(listed[0].attachment, Pod("mynet", kCid1));
    EXPECT_EQ(listed[0].ip, IpAddress::MustParse("10.99.0.2"));
    EXPECT_EQ(listed[0].chain, chain4);
    EXPECT_TRUE(masq.List("othernet").empty());
  });
}

TEST(PodMasqueradeKernelTest, AddIsIdempotent) {
  SLUICE_IN_FRESH_NETNS([] {
    NftSocket socket;
    PodMasquerade masq(socket);
    masq.Add(Pod("mynet", kCid1), V4("10.99.0.2", "10.99.0.0/24"));
    std::string first = NftText();
    masq.Add(Pod("mynet", kCid1), V4("10.99.0.2", "10.99.0.0/24"));
    masq.Add(Pod("mynet", kCid1), V4("10.99.0.2", "10.99.0.0/24"));
    EXPECT_EQ(NftText(), first);
    // A second pod in the same subnet reuses the subnet chain.
    masq.Add(Pod("mynet", kCid2), V4("10.99.0.3", "10.99.0.0/24"));
    json ruleset = Ruleset();
    EXPECT_EQ(Objects(ruleset, "chain").size(), 2u);
    EXPECT_EQ(Objects(ruleset, "rule").size(), 2u + 3u);
    EXPECT_EQ(ElementCount(ruleset, "pods4"), 2u);
  });
}

TEST(PodMasqueradeKernelTest, AddTakesOverALeakedElementForTheSameAddress) {
  SLUICE_IN_FRESH_NETNS([] {
    NftSocket socket;
    PodMasquerade masq(socket);
    masq.Add(Pod("mynet", kCid1), V4("10.99.0.2", "10.99.0.0/24"));
    // Same address, another pod (the first one's DEL never came), even another subnet chain.
    masq.Add(Pod("othernet", kCid2), V4("10.99.0.2", "10.99.0.0/16"));
    EXPECT_FALSE(masq.Has(Pod("mynet", kCid1), IpAddress::MustParse("10.99.0.2")));
    EXPECT_TRUE(masq.Has(Pod("othernet", kCid2), IpAddress::MustParse("10.99.0.2")));
    std::vector<MasqueradeEntry> all = masq.List("");
    ASSERT_EQ(all.size(), 1u);
    EXPECT_EQ(all[0].chain,
              PodMasquerade::SubnetChainName("othernet", IpPrefix::MustParse("10.99.0.0/16")));
    // And the same pod re-added with the same subnet but another comment (ifname) too.
    masq.Add(Pod("othernet", kCid2, "net1"), V4("10.99.0.2", "10.99.0.0/16"));
    EXPECT_TRUE(masq.Has(Pod("othernet", kCid2, "net1"), IpAddress::MustParse("10.99.0.2")));
  });
}

// Two CNI ADDs at once on a node that has no table yet: one table, one subnet chain, both pods.
TEST(PodMasqueradeKernelTest, ConcurrentAddsFromTwoProcesses) {
  for (int round = 0; round < 10; ++round) {
    SLUICE_IN_FRESH_NETNS([] {
      int go[2];
      ASSERT_EQ(pipe(go), 0);
      pid_t children[2];
      for (int k = 0; k < 2; ++k) {
        children[k] = fork();
        ASSERT_GE(children[k], 0);
        if (children[k] == 0) {
          close(go[1]);
          int code = 0;
          try {
            NftSocket socket;
            PodMasquerade masq(socket);
            char c;
            (void)!read(go[0], &c, 1);  // returns 0 when the parent closes the pipe
            masq.Add(Pod("mynet", k == 0 ? kCid1 : kCid2),
                     V4(k == 0 ? "10.99.0.2" : "10.99.0.3", "10.99.0.0/24"));
          } catch (const std::exception& e) {
            std::fprintf(stderr, "child %d: %s\n", k, e.what());
            code = 1;
          }
          _exit(code);
        }
      }
      close(go[0]);
      close(go[1]);  // both start now
      for (pid_t child : children) {
        int status = 0;
        ASSERT_EQ(waitpid(child, &status, 0), child);
        EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
      }
      json ruleset = Ruleset();
      EXPECT_EQ(Objects(ruleset, "table").size(), 1u);
      EXPECT_EQ(Objects(ruleset, "chain").size(), 2u) << ruleset.dump(1);
      EXPECT_EQ(Objects(ruleset, "rule").size(), 2u + 3u) << ruleset.dump(1);
      EXPECT_EQ(ElementCount(ruleset, "pods4"), 2u);
    });
  }
}

TEST(PodMasqueradeKernelTest, RemoveDeletesOnlyThatAttachment) {
  SLUICE_IN_FRESH_NETNS([] {
    NftSocket socket;
    PodMasquerade masq(socket);
    masq.Remove(Pod("mynet", kCid1));  // nothing at all yet: fine
    masq.Add(Pod("mynet", kCid1),
             std::vector<MasqueradeAddress>{
                 {IpAddress::MustParse("10.99.0.2"), IpPrefix::MustParse("10.99.0.0/24")},
                 {IpAddress::MustParse("fd00:99::2"), IpPrefix::MustParse("fd00:99::/64")}});
    masq.Add(Pod("mynet", kCid2), V4("10.99.0.3", "10.99.0.0/24"));
    masq.Remove(Pod("mynet", kCid1));
    json ruleset = Ruleset();
    EXPECT_EQ(ElementCount(ruleset, "pods4"), 1u);
    EXPECT_EQ(ElementCount(ruleset, "pods6"), 0u);
    std::vector<MasqueradeEntry> left = masq.List("mynet");
    ASSERT_EQ(left.size(), 1u);
    EXPECT_EQ(left[0].attachment, Pod("mynet", kCid2));
    masq.Remove(Pod("mynet", kCid1));  // again: fine
    masq.Remove(Pod("mynet", kCid2));
    EXPECT_TRUE(masq.List("").empty());
    EXPECT_EQ(Objects(Ruleset(), "table").size(), 1u);  // the table stays
  });
}

TEST(PodMasqueradeKernelTest, RemoveExceptKeepsValidAttachmentsAndOtherNetworks) {
  SLUICE_IN_FRESH_NETNS([] {
    NftSocket socket;
    PodMasquerade masq(socket);
    masq.Add(Pod("net1", kCid1), V4("10.1.0.2", "10.1.0.0/24"));
    masq.Add(Pod("net1", kCid2), V4("10.1.0.3", "10.1.0.0/24"));
    masq.Add(Pod("net1", kCid2, "net1"), V4("10.1.0.4", "10.1.0.0/24"));
    masq.Add(Pod("net2", kCid1), V4("10.2.0.2", "10.2.0.0/24"));
    masq.RemoveExcept("net1", {{kCid2, "eth0"}});
    std::vector<MasqueradeEntry> left = masq.List("");
    ASSERT_EQ(left.size(), 2u);
    EXPECT_TRUE(masq.Has(Pod("net1", kCid2), IpAddress::MustParse("10.1.0.3")));
    EXPECT_TRUE(masq.Has(Pod("net2", kCid1), IpAddress::MustParse("10.2.0.2")));
    masq.RemoveExcept("net1", {});
    masq.RemoveExcept("net1", {});
    EXPECT_EQ(masq.List("").size(), 1u);
  });
}

TEST(PodMasqueradeKernelTest, RemoveDeletesTheReferencePluginsIptablesRules) {
  SLUICE_IN_FRESH_NETNS([] {
    // What the reference bridge plugin (iptables backend) leaves for ("mynet", kCid1).
    const std::string chain = ReferenceMasqueradeChain("mynet", kCid1);
    const std::string other = ReferenceMasqueradeChain("mynet", kCid2);
    const std::string comment = "name: \"mynet\" id: \"" + kCid1 + "\"";
    for (const std::string& c : {chain, other}) {
      RunCommand({"iptables", "-t", "nat", "-N", c});
      RunCommand({"iptables", "-t", "nat", "-A", c, "-d", "10.99.0.0/24", "-j", "ACCEPT", "-m",
                  "comment", "--comment", comment});
      RunCommand({"iptables", "-t", "nat", "-A", c, "!", "-d", "224.0.0.0/4", "-j", "MASQUERADE",
                  "-m", "comment", "--comment", comment});
    }
    RunCommand({"iptables", "-t", "nat", "-A", "POSTROUTING", "-s", "10.99.0.2", "-j", chain, "-m",
                "comment", "--comment", comment});
    RunCommand({"iptables", "-t", "nat", "-A", "POSTROUTING", "-s", "10.99.0.2/24", "-j",
                chain});  // legacy
    RunCommand({"iptables", "-t", "nat", "-A", "POSTROUTING", "-s", "10.99.0.3", "-j", other});
    RunCommand({"iptables", "-t", "nat", "-A", "POSTROUTING", "-o", "lo", "-j", "ACCEPT"});
    RunCommand({"ip6tables", "-t", "nat", "-N", chain});
    RunCommand({"ip6tables", "-t", "nat", "-A", chain, "!", "-d", "ff00::/8", "-j", "MASQUERADE"});
    RunCommand({"ip6tables", "-t", "nat", "-A", "POSTROUTING", "-s", "fd00::2", "-j", chain});
    ASSERT_TRUE(Contains(RunCommand({"iptables-save", "-t", "nat"}), chain));

    NftSocket socket;
    PodMasquerade masq(socket);
    masq.Add(Pod("mynet", kCid1), V4("10.99.0.2", "10.99.0.0/24"));
    masq.Remove(Pod("mynet", kCid1));

    std::string v4 = RunCommand({"iptables-save", "-t", "nat"});
    std::string v6 = RunCommand({"ip6tables-save", "-t", "nat"});
    EXPECT_FALSE(Contains(v4, chain)) << v4;
    EXPECT_FALSE(Contains(v6, chain)) << v6;
    EXPECT_TRUE(Contains(v4, "-A POSTROUTING -s 10.99.0.3/32 -j " + other)) << v4;
    EXPECT_TRUE(Contains(v4, "-A POSTROUTING -o lo -j ACCEPT")) << v4;
    EXPECT_TRUE(Contains(v4, ":" + other)) << v4;
    EXPECT_TRUE(masq.List("").empty());
    masq.Remove(Pod("mynet", kCid1));  // again: fine
  });
}

void WriteSysctl(const std::string& path, const std::string& value) {
  std::ofstream f(path);
  f << value;
  if (!f.flush()) throw std::runtime_error("cannot write " + path);
}

// node netns: vpod 10.99.0.1/24 <-> pod eth0 10.99.0.2/24, vout 192.0.2.1/24 <-> outside eth0
// 192.0.2.2/24; forwarding on in the node only. What source does "outside" see?
TEST(PodMasqueradeKernelTest, MasqueradesRealTraffic) {
  SLUICE_IN_FRESH_NETNS([] {
    Netns node = Netns::Current();
    Netns pod = Netns::Create();
    Netns outside = Netns::Create();
    RunCommand(
        {"ip", "link", "add", "vpod", "type", "veth", "peer", "name", "eth0", "netns", pod.Path()});
    RunCommand({"ip", "link", "add", "vout", "type", "veth", "peer", "name", "eth0", "netns",
                outside.Path()});
    RunCommand({"ip", "addr", "add", "10.99.0.1/24", "dev", "vpod"});
    RunCommand({"ip", "addr", "add", "192.0.2.1/24", "dev", "vout"});
    RunCommand({"ip", "link", "set", "vpod", "up"});
    RunCommand({"ip", "link", "set", "vout", "up"});
    pod.RunCommand({"ip", "addr", "add", "10.99.0.2/24", "dev", "eth0"});
    pod.RunCommand({"ip", "link", "set", "eth0", "up"});
    pod.RunCommand({"ip", "route", "add", "default", "via", "10.99.0.1"});
    outside.RunCommand({"ip", "addr", "add", "192.0.2.2/24", "dev", "eth0"});
    outside.RunCommand({"ip", "link", "set", "eth0", "up"});
    // Only so that unmasqueraded TCP can complete; UDP needs no way back.
    outside.RunCommand({"ip", "route", "add", "10.99.0.0/24", "via", "192.0.2.1"});
    WriteSysctl("/proc/sys/net/ipv4/ip_forward", "1");  // this (node) namespace only

    uint16_t port = 40000;
    EXPECT_EQ(testing::UdpSourceSeen(pod, outside, "192.0.2.2", port++), "10.99.0.2");

    NftSocket socket;
    PodMasquerade masq(socket);
    const CniAttachment attachment = Pod("mynet", kCid1);
    masq.Add(attachment, V4("10.99.0.2", "10.99.0.0/24"));
    EXPECT_EQ(testing::UdpSourceSeen(pod, outside, "192.0.2.2", port++), "192.0.2.1");
    EXPECT_EQ(testing::TcpSourceSeen(pod, outside, "192.0.2.2", port++), "192.0.2.1");
    // Traffic to the pod subnet keeps its source: the node sees the pod itself.
    EXPECT_EQ(testing::UdpSourceSeen(pod, node, "10.99.0.1", port++), "10.99.0.2");

    masq.Remove(attachment);
    EXPECT_EQ(testing::UdpSourceSeen(pod, outside, "192.0.2.2", port++), "10.99.0.2");
    EXPECT_EQ(testing::TcpSourceSeen(pod, outside, "192.0.2.2", port++), "10.99.0.2");
  });
}

}  // namespace
}  // namespace sluice::nft
