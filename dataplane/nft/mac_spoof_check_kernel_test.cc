// MacSpoofCheck in fresh network namespaces: layout, idempotence, DEL/GC, races, and frames
// through a real bridge.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "dataplane/nft/mac_spoof_check.h"
#include "dataplane/nft/netns_testing.h"
#include "dataplane/nft/nft_socket.h"

namespace sluice::nft {
namespace {

using testing::Netns;
using testing::NftText;
using testing::RunCommand;

const std::string kCid1 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const std::string kCid2 = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";
const MacAddress kMac2 = *ParseMac("02:00:00:00:00:02");
const MacAddress kMac3 = *ParseMac("02:00:00:00:00:03");

CniAttachment Pod(const std::string& network, const std::string& cid,
                  const std::string& ifname = "eth0") {
  return {network, cid, ifname};
}

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

TEST(MacSpoofCheckKernelTest, AddBuildsTheLayout) {
  SLUICE_IN_FRESH_NETNS([] {
    NftSocket socket;
    MacSpoofCheck check(socket);
    check.Add(Pod("mynet", kCid1), "veth12345678", kMac2);
    const std::string comment = "net=mynet id=" + kCid1 + " if=eth0";
    std::string text = NftText();
    EXPECT_TRUE(Contains(text, "table bridge sluice_cni_macspoof {")) << text;
    EXPECT_TRUE(Contains(text, "type ifname . ether_addr")) << text;
    EXPECT_TRUE(Contains(text, "\"veth12345678\" comment \"" + comment + "\"")) << text;
    EXPECT_TRUE(Contains(text, "\"veth12345678\" . 02:00:00:00:00:02 comment \"" + comment + "\""))
        << text;
    EXPECT_TRUE(Contains(text, "type filter hook prerouting priority dstnat; policy accept;"))
        << text;
    EXPECT_TRUE(Contains(text, "iifname @ports iifname . ether saddr != @allowed drop")) << text;

    EXPECT_TRUE(check.Has(Pod("mynet", kCid1), "veth12345678", kMac2));
    EXPECT_FALSE(check.Has(Pod("mynet", kCid1), "veth12345678", kMac3));
    EXPECT_FALSE(check.Has(Pod("mynet", kCid2), "veth12345678", kMac2));
    std::vector<MacSpoofEntry> entries = check.List("mynet");
    ASSERT_EQ(entries.size(), 1u);
    EXPECT_EQ(entries[0].attachment, Pod("mynet", kCid1));
    EXPECT_EQ(entries[0].host_ifname, "veth12345678");
    EXPECT_EQ(entries[0].mac, kMac2);
  });
}

TEST(MacSpoofCheckKernelTest, AddIsIdempotentAndTakesOverAPort) {
  SLUICE_IN_FRESH_NETNS([] {
    NftSocket socket;
    MacSpoofCheck check(socket);
    check.Add(Pod("mynet", kCid1), "veth1", kMac2);
    std::string first = NftText();
    check.Add(Pod("mynet", kCid1), "veth1", kMac2);
    EXPECT_EQ(NftText(), first);
    // The same pod with a new MAC, then another pod on the recycled port name.
    check.Add(Pod("mynet", kCid1), "veth1", kMac3);
    EXPECT_TRUE(check.Has(Pod("mynet", kCid1), "veth1", kMac3));
    EXPECT_FALSE(check.Has(Pod("mynet", kCid1), "veth1", kMac2));
    check.Add(Pod("mynet", kCid2), "veth1", kMac2);
    std::vector<MacSpoofEntry> entries = check.List("");
    ASSERT_EQ(entries.size(), 1u);
    EXPECT_EQ(entries[0].attachment, Pod("mynet", kCid2));
    EXPECT_EQ(entries[0].mac, kMac2);
    EXPECT_FALSE(Contains(NftText(), "02:00:00:00:00:03"));
  });
}

TEST(MacSpoofCheckKernelTest, RemoveAndRemoveExcept) {
  SLUICE_IN_FRESH_NETNS([] {
    NftSocket socket;
    MacSpoofCheck check(socket);
    check.Remove(Pod("mynet", kCid1));  // no table: fine
    check.Add(Pod("net1", kCid1), "veth1", kMac2);
    check.Add(Pod("net1", kCid2), "veth2", kMac3);
    check.Add(Pod("net2", kCid1), "veth3", kMac2);
    check.Remove(Pod("net1", kCid1));
    check.Remove(Pod("net1", kCid1));
    EXPECT_EQ(check.List("net1").size(), 1u);
    check.RemoveExcept("net1", {});
    EXPECT_TRUE(check.List("net1").empty());
    ASSERT_EQ(check.List("").size(), 1u);
    EXPECT_EQ(check.List("")[0].host_ifname, "veth3");
    EXPECT_FALSE(Contains(NftText(), "veth1"));
  });
}

TEST(MacSpoofCheckKernelTest, ConcurrentAddsFromTwoProcesses) {
  for (int round = 0; round < 5; ++round) {
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
            MacSpoofCheck check(socket);
            char c;
            (void)!read(go[0], &c, 1);
            check.Add(Pod("mynet", k == 0 ? kCid1 : kCid2), k == 0 ? "veth1" : "veth2",
                      k == 0 ? kMac2 : kMac3);
          } catch (const std::exception& e) {
            std::fprintf(stderr, "child %d: %s\n", k, e.what());
            code = 1;
          }
          _exit(code);
        }
      }
      close(go[0]);
      close(go[1]);
      for (pid_t child : children) {
        int status = 0;
        ASSERT_EQ(waitpid(child, &status, 0), child);
        EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
      }
      NftSocket socket;
      EXPECT_EQ(MacSpoofCheck(socket).List("mynet").size(), 2u);
      std::string text = NftText();
      size_t rules = 0;
      for (size_t at = 0; (at = text.find("ether saddr != @allowed", at)) != std::string::npos;
           ++at) {
        ++rules;
      }
      EXPECT_EQ(rules, 1u) << text;
    });
  }
}

// node netns: bridge br0 10.98.0.1/24 with port vpod0 <-> pod eth0 10.98.0.2/24 (MAC ...:02).
TEST(MacSpoofCheckKernelTest, DropsFramesWithAnotherSourceMac) {
  SLUICE_IN_FRESH_NETNS([] {
    Netns node = Netns::Current();
    Netns pod = Netns::Create();
    RunCommand({"ip", "link", "add", "br0", "type", "bridge"});
    RunCommand({"ip", "addr", "add", "10.98.0.1/24", "dev", "br0"});
    RunCommand({"ip", "link", "set", "br0", "up"});
    RunCommand({"ip", "link", "add", "vpod0", "type", "veth", "peer", "name", "eth0", "netns",
                pod.Path()});
    RunCommand({"ip", "link", "set", "vpod0", "master", "br0"});
    RunCommand({"ip", "link", "set", "vpod0", "up"});
    pod.RunCommand({"ip", "link", "set", "eth0", "address", FormatMac(kMac2)});
    pod.RunCommand({"ip", "addr", "add", "10.98.0.2/24", "dev", "eth0"});
    pod.RunCommand({"ip", "link", "set", "eth0", "up"});

    uint16_t port = 41000;
    EXPECT_EQ(testing::UdpSourceSeen(pod, node, "10.98.0.1", port++), "10.98.0.2");

    NftSocket socket;
    MacSpoofCheck check(socket);
    const CniAttachment attachment = Pod("mynet", kCid1);
    check.Add(attachment, "vpod0", kMac2);
    EXPECT_EQ(testing::UdpSourceSeen(pod, node, "10.98.0.1", port++), "10.98.0.2");

    // The pod changes its MAC: its frames no longer pass the bridge port.
    pod.RunCommand({"ip", "link", "set", "eth0", "address", FormatMac(kMac3)});
    EXPECT_EQ(testing::UdpSourceSeen(pod, node, "10.98.0.1", port++, 1000), "");

    check.Remove(attachment);
    EXPECT_EQ(testing::UdpSourceSeen(pod, node, "10.98.0.1", port++), "10.98.0.2");
  });
}

}  // namespace
}  // namespace sluice::nft
