// ConntrackTable against the kernel: real UDP and TCP flows to "Service IPs" that an nft rule
// DNATs to "endpoints", each test in a network namespace of its own.

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <optional>
#include <ostream>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/ip_address.h"
#include "common/unique_fd.h"
#include "dataplane/conntrack/conntrack.h"
#include "dataplane/nft/netns_testing.h"

namespace sluice {
// gtest names the parameter "ipv4"/"ipv6" instead of printing its byte.
[[maybe_unused]] static void PrintTo(IpFamily family, std::ostream* os) {
  *os << (family == IpFamily::kV4 ? "ipv4" : "ipv6");
}
}  // namespace sluice

namespace sluice::conntrack {
namespace {

using nft::testing::Netns;
using nft::testing::RunCommand;

// Client source ports, one per flow, so each entry is known by its original source port.
constexpr uint16_t kUdpToServiceADns = 40001;     // service_a:53   -> endpoint_1:5353
constexpr uint16_t kUdpToServiceAHttp = 40002;    // service_a:80   -> endpoint_1:8080
constexpr uint16_t kUdpToServiceBDns = 40003;     // service_b:53   -> endpoint_2:5353
constexpr uint16_t kUdpToEndpointDirect = 40004;  // endpoint_1:5353, no NAT
constexpr uint16_t kTcpToServiceADns = 40005;     // service_a:53   -> endpoint_1:5353

// The client sits on node0 (a veth; this kernel may lack dummy), the Service range is routed
// there, and the output hook DNATs Service traffic to endpoint addresses on lo: a host-network
// client of a ClusterIP.
struct Addresses {
  IpFamily family;
  IpAddress client;
  IpAddress service_a;
  IpAddress service_b;
  IpAddress endpoint_1;
  IpAddress endpoint_2;
};

Addresses AddressesFor(IpFamily family) {
  if (family == IpFamily::kV4) {
    return {family,
            IpAddress::MustParse("10.0.0.1"),
            IpAddress::MustParse("10.96.0.10"),
            IpAddress::MustParse("10.96.0.20"),
            IpAddress::MustParse("10.1.0.5"),
            IpAddress::MustParse("10.1.0.6")};
  }
  return {family,
          IpAddress::MustParse("fd00::1"),
          IpAddress::MustParse("fd00:96::10"),
          IpAddress::MustParse("fd00:96::20"),
          IpAddress::MustParse("fd00:1::5"),
          IpAddress::MustParse("fd00:1::6")};
}

constexpr char kRuleset[] = R"(
table inet services {
  chain output {
    type nat hook output priority -100; policy accept;
    ip daddr 10.96.0.10 meta l4proto { tcp, udp } th dport 53 dnat ip to 10.1.0.5:5353
    ip daddr 10.96.0.10 udp dport 80 dnat ip to 10.1.0.5:8080
    ip daddr 10.96.0.20 udp dport 53 dnat ip to 10.1.0.6:5353
    ip6 daddr fd00:96::10 meta l4proto { tcp, udp } th dport 53 dnat ip6 to [fd00:1::5]:5353
    ip6 daddr fd00:96::10 udp dport 80 dnat ip6 to [fd00:1::5]:8080
    ip6 daddr fd00:96::20 udp dport 53 dnat ip6 to [fd00:1::6]:5353
  }
}
)";

// Both families' addresses and the DNAT rules, in the calling thread's (test) namespace.
void SetUpServiceNetwork() {
  RunCommand({"ip", "link", "add", "node0", "type", "veth", "peer", "name", "node0-peer"});
  RunCommand({"ip", "link", "set", "node0", "up"});
  RunCommand({"ip", "link", "set", "node0-peer", "up"});
  RunCommand({"ip", "addr", "add", "10.0.0.1/24", "dev", "node0"});
  RunCommand({"ip", "route", "add", "10.96.0.0/16", "dev", "node0"});
  RunCommand({"ip", "addr", "add", "10.1.0.5/32", "dev", "lo"});
  RunCommand({"ip", "addr", "add", "10.1.0.6/32", "dev", "lo"});
  RunCommand({"ip", "-6", "addr", "add", "fd00::1/64", "dev", "node0", "nodad"});
  RunCommand({"ip", "-6", "route", "add", "fd00:96::/64", "dev", "node0"});
  RunCommand({"ip", "-6", "addr", "add", "fd00:1::5/128", "dev", "lo", "nodad"});
  RunCommand({"ip", "-6", "addr", "add", "fd00:1::6/128", "dev", "lo", "nodad"});

  char path[] = "/tmp/conntrack_kernel_test_XXXXXX";
  UniqueFd file(mkstemp(path));
  if (!file.valid()) throw std::runtime_error(std::string("mkstemp: ") + std::strerror(errno));
  std::ofstream(path) << kRuleset;
  try {
    RunCommand({"nft", "-f", path});
  } catch (...) {
    unlink(path);
    throw;
  }
  unlink(path);
}

std::string Errno(const std::string& what) { return what + ": " + std::strerror(errno); }

socklen_t ToSockaddr(const IpAddress& address, uint16_t port, sockaddr_storage& storage) {
  storage = {};
  if (address.is_v4()) {
    auto& sa = reinterpret_cast<sockaddr_in&>(storage);
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr = address.v4();
    return sizeof(sa);
  }
  auto& sa = reinterpret_cast<sockaddr_in6&>(storage);
  sa.sin6_family = AF_INET6;
  sa.sin6_port = htons(port);
  sa.sin6_addr = address.v6();
  return sizeof(sa);
}

UniqueFd BoundSocket(const IpAddress& address, uint16_t port, int type) {
  UniqueFd fd(socket(address.af(), type | SOCK_CLOEXEC, 0));
  if (!fd.valid()) throw std::runtime_error(Errno("socket"));
  sockaddr_storage sa;
  socklen_t len = ToSockaddr(address, port, sa);
  if (bind(fd.get(), reinterpret_cast<const sockaddr*>(&sa), len) != 0) {
    throw std::runtime_error(Errno("bind " + address.ToString() + " port " + std::to_string(port)));
  }
  return fd;
}

// Sends one datagram from client:source_port to to:port and checks it reached `listener` (so the
// DNAT happened and the entry is confirmed).
void UdpFlow(const IpAddress& client, uint16_t source_port, const IpAddress& to, uint16_t port,
             const UniqueFd& listener) {
  UniqueFd sender = BoundSocket(client, source_port, SOCK_DGRAM);
  sockaddr_storage sa;
  socklen_t len = ToSockaddr(to, port, sa);
  // UDP may lose the first datagram while the fresh link settles (seen for IPv6 on a loaded
  // machine): resent from the same socket, it is the same flow and the same entry.
  for (int attempt = 1;; ++attempt) {
    if (sendto(sender.get(), "probe", 5, 0, reinterpret_cast<const sockaddr*>(&sa), len) != 5) {
      throw std::runtime_error(Errno("sendto " + to.ToString()));
    }
    pollfd p{listener.get(), POLLIN, 0};
    if (poll(&p, 1, 1000) == 1) break;
    if (attempt == 5) {
      throw std::runtime_error("datagram to " + to.ToString() + " port " +
                               std::to_string(port) + " did not arrive (5 tries)");
    }
  }
  char buffer[16];
  while (recv(listener.get(), buffer, sizeof(buffer), MSG_DONTWAIT) > 0) {
  }
}

// The five flows of one family, kept alive (listeners and the TCP connection) while it lives.
class ServiceFlows {
 public:
  explicit ServiceFlows(const Addresses& a)
      : dns_1_(BoundSocket(a.endpoint_1, 5353, SOCK_DGRAM)),
        http_1_(BoundSocket(a.endpoint_1, 8080, SOCK_DGRAM)),
        dns_2_(BoundSocket(a.endpoint_2, 5353, SOCK_DGRAM)),
        tcp_listener_(BoundSocket(a.endpoint_1, 5353, SOCK_STREAM)) {
    UdpFlow(a.client, kUdpToServiceADns, a.service_a, 53, dns_1_);
    UdpFlow(a.client, kUdpToServiceAHttp, a.service_a, 80, http_1_);
    UdpFlow(a.client, kUdpToServiceBDns, a.service_b, 53, dns_2_);
    UdpFlow(a.client, kUdpToEndpointDirect, a.endpoint_1, 5353, dns_1_);

    if (listen(tcp_listener_.get(), 4) != 0) throw std::runtime_error(Errno("listen"));
    tcp_client_ = BoundSocket(a.client, kTcpToServiceADns, SOCK_STREAM);
    sockaddr_storage sa;
    socklen_t len = ToSockaddr(a.service_a, 53, sa);
    // The kernel completes the handshake for the listener, so a blocking connect is fine here.
    if (connect(tcp_client_.get(), reinterpret_cast<const sockaddr*>(&sa), len) != 0) {
      throw std::runtime_error(Errno("connect " + a.service_a.ToString()));
    }
  }

 private:
  UniqueFd dns_1_, http_1_, dns_2_, tcp_listener_, tcp_client_;
};

// Original source ports of the entries from `client`.
std::set<uint16_t> ClientPorts(const std::vector<Flow>& flows, const IpAddress& client) {
  std::set<uint16_t> ports;
  for (const Flow& flow : flows) {
    if (flow.original.src == client) ports.insert(flow.original.src_port);
  }
  return ports;
}

const char* FamilyName(IpFamily family) { return family == IpFamily::kV4 ? "ipv4" : "ipv6"; }

// What `conntrack -L` prints for the original direction of an entry.
std::string OriginalText(const IpAddress& src, uint16_t sport, const IpAddress& dst,
                         uint16_t dport) {
  return "src=" + src.ToString() + " dst=" + dst.ToString() + " sport=" + std::to_string(sport) +
         " dport=" + std::to_string(dport) + " ";
}

std::string ConntrackTool(IpFamily family, const char* protocol) {
  return RunCommand({"conntrack", "-L", "-f", FamilyName(family), "-p", protocol});
}

const std::set<uint16_t> kAllUdp = {kUdpToServiceADns, kUdpToServiceAHttp, kUdpToServiceBDns,
                                    kUdpToEndpointDirect};

FlowFilter Udp(IpFamily family) {
  FlowFilter filter;
  filter.protocol = IPPROTO_UDP;
  filter.family = family;
  return filter;
}

class ConntrackKernelTest : public ::testing::TestWithParam<IpFamily> {};

TEST_P(ConntrackKernelTest, ListsOriginalAndReplyTuples) {
  const IpFamily family = GetParam();
  SLUICE_IN_FRESH_NETNS([family] {
    SetUpServiceNetwork();
    const Addresses a = AddressesFor(family);
    ServiceFlows flows(a);
    ConntrackTable table;

    std::vector<Flow> udp = table.List(family, IPPROTO_UDP);
    EXPECT_EQ(ClientPorts(udp, a.client), kAllUdp);
    for (const Flow& flow : udp) {
      EXPECT_EQ(flow.protocol, IPPROTO_UDP);
      EXPECT_EQ(flow.zone, 0);
      if (flow.original.src_port == kUdpToServiceADns) {
        EXPECT_EQ(flow.original, (FlowTuple{a.client, a.service_a, kUdpToServiceADns, 53}))
            << flow.ToString();
        // The reply comes from the endpoint the DNAT chose.
        EXPECT_EQ(flow.reply, (FlowTuple{a.endpoint_1, a.client, 5353, kUdpToServiceADns}))
            << flow.ToString();
        EXPECT_EQ(flow.ToString(),
                  family == IpFamily::kV4
                      ? "udp 10.0.0.1:40001 -> 10.96.0.10:53 reply 10.1.0.5:5353 -> 10.0.0.1:40001"
                      : "udp [fd00::1]:40001 -> [fd00:96::10]:53 reply [fd00:1::5]:5353 -> "
                        "[fd00::1]:40001");
      }
      if (flow.original.src_port == kUdpToEndpointDirect) {
        EXPECT_EQ(flow.reply, (FlowTuple{a.endpoint_1, a.client, 5353, kUdpToEndpointDirect}))
            << flow.ToString();
      }
    }

    std::vector<Flow> tcp = table.List(family, IPPROTO_TCP);
    ASSERT_EQ(ClientPorts(tcp, a.client), std::set<uint16_t>{kTcpToServiceADns});
    EXPECT_EQ(tcp[0].reply.src, a.endpoint_1) << tcp[0].ToString();

    // The other family's table holds none of these.
    const IpFamily other = family == IpFamily::kV4 ? IpFamily::kV6 : IpFamily::kV4;
    EXPECT_TRUE(table.List(other, IPPROTO_UDP).empty());
    EXPECT_TRUE(table.List(family, IPPROTO_SCTP).empty());
  });
}

// kube-proxy's ClearEntriesForIP with a port: a UDP Service port lost its last endpoint.
TEST_P(ConntrackKernelTest, DeletesByServiceIpAndPort) {
  const IpFamily family = GetParam();
  SLUICE_IN_FRESH_NETNS([family] {
    SetUpServiceNetwork();
    const Addresses a = AddressesFor(family);
    ServiceFlows flows(a);
    ConntrackTable table;
    ASSERT_NE(ConntrackTool(family, "udp")
                  .find(OriginalText(a.client, kUdpToServiceADns, a.service_a, 53)),
              std::string::npos);

    FlowFilter filter = Udp(family);
    filter.orig_dst = a.service_a;
    filter.orig_dst_port = 53;
    EXPECT_EQ(table.Delete(filter), 1u);

    EXPECT_EQ(ClientPorts(table.List(family, IPPROTO_UDP), a.client),
              (std::set<uint16_t>{kUdpToServiceAHttp, kUdpToServiceBDns, kUdpToEndpointDirect}));
    // The TCP connection to the same Service port is not UDP's business.
    EXPECT_EQ(ClientPorts(table.List(family, IPPROTO_TCP), a.client),
              std::set<uint16_t>{kTcpToServiceADns});
    std::string listed = ConntrackTool(family, "udp");
    EXPECT_EQ(listed.find(OriginalText(a.client, kUdpToServiceADns, a.service_a, 53)),
              std::string::npos)
        << listed;
    EXPECT_NE(listed.find(OriginalText(a.client, kUdpToServiceAHttp, a.service_a, 80)),
              std::string::npos)
        << listed;
    EXPECT_NE(listed.find(OriginalText(a.client, kUdpToServiceBDns, a.service_b, 53)),
              std::string::npos)
        << listed;
    EXPECT_NE(ConntrackTool(family, "tcp")
                  .find(OriginalText(a.client, kTcpToServiceADns, a.service_a, 53)),
              std::string::npos);

    // Nothing left to match: not an error, nothing deleted.
    EXPECT_EQ(table.Delete(filter), 0u);
  });
}

// When a Service gets its first endpoint only entries that were never DNATed go: a flow the
// new rules already sent to an endpoint is left alone.
TEST_P(ConntrackKernelTest, NotDnatedSparesDnatedFlows) {
  const IpFamily family = GetParam();
  SLUICE_IN_FRESH_NETNS([family] {
    SetUpServiceNetwork();
    const Addresses a = AddressesFor(family);
    ServiceFlows flows(a);
    ConntrackTable table;

    FlowFilter dnated = Udp(family);
    dnated.orig_dst = a.service_a;
    dnated.orig_dst_port = 53;
    dnated.not_dnated = true;
    EXPECT_EQ(table.Delete(dnated), 0u);
    FlowFilter direct = Udp(family);
    direct.orig_dst = a.endpoint_1;
    direct.orig_dst_port = 5353;
    direct.not_dnated = true;
    EXPECT_EQ(table.DeleteAll(std::vector<FlowFilter>{dnated, direct}), 1u);
    EXPECT_EQ(ClientPorts(table.List(family, IPPROTO_UDP), a.client),
              (std::set<uint16_t>{kUdpToServiceADns, kUdpToServiceAHttp, kUdpToServiceBDns}));
  });
}

// kube-proxy's ClearEntriesForIP: every UDP entry to a Service IP.
TEST_P(ConntrackKernelTest, DeletesByServiceIp) {
  const IpFamily family = GetParam();
  SLUICE_IN_FRESH_NETNS([family] {
    SetUpServiceNetwork();
    const Addresses a = AddressesFor(family);
    ServiceFlows flows(a);
    ConntrackTable table;

    FlowFilter filter = Udp(family);
    filter.orig_dst = a.service_a;
    EXPECT_EQ(table.Delete(filter), 2u);
    EXPECT_EQ(ClientPorts(table.List(family, IPPROTO_UDP), a.client),
              (std::set<uint16_t>{kUdpToServiceBDns, kUdpToEndpointDirect}));
    std::string listed = ConntrackTool(family, "udp");
    EXPECT_EQ(listed.find("dst=" + a.service_a.ToString() + " "), std::string::npos) << listed;
    EXPECT_NE(listed.find("dst=" + a.service_b.ToString() + " "), std::string::npos) << listed;
  });
}

// kube-proxy's ClearEntriesForNAT: an endpoint behind a Service IP went away. The entry that
// reached the endpoint directly (orig dst = endpoint) stays; so do other endpoints' entries.
TEST_P(ConntrackKernelTest, DeletesByServiceIpAndEndpoint) {
  const IpFamily family = GetParam();
  SLUICE_IN_FRESH_NETNS([family] {
    SetUpServiceNetwork();
    const Addresses a = AddressesFor(family);
    ServiceFlows flows(a);
    ConntrackTable table;

    FlowFilter filter = Udp(family);
    filter.orig_dst = a.service_a;
    filter.reply_src = a.endpoint_2;  // service_a never went to endpoint_2
    EXPECT_EQ(table.Delete(filter), 0u);
    filter.reply_src = a.endpoint_1;
    EXPECT_EQ(table.Delete(filter), 2u);
    EXPECT_EQ(ClientPorts(table.List(family, IPPROTO_UDP), a.client),
              (std::set<uint16_t>{kUdpToServiceBDns, kUdpToEndpointDirect}));
    std::string listed = ConntrackTool(family, "udp");
    EXPECT_NE(listed.find(OriginalText(a.client, kUdpToEndpointDirect, a.endpoint_1, 5353)),
              std::string::npos)
        << listed;
    EXPECT_NE(listed.find(OriginalText(a.client, kUdpToServiceBDns, a.service_b, 53)),
              std::string::npos)
        << listed;

    // By endpoint alone: the direct entry too.
    FlowFilter by_endpoint = Udp(family);
    by_endpoint.reply_src = a.endpoint_1;
    EXPECT_EQ(table.Delete(by_endpoint), 1u);
    EXPECT_EQ(ClientPorts(table.List(family, IPPROTO_UDP), a.client),
              std::set<uint16_t>{kUdpToServiceBDns});
  });
}

// kube-proxy's ClearEntriesForPort and ClearEntriesForPortNAT (NodePorts): by port, with and
// without the endpoint.
TEST_P(ConntrackKernelTest, DeletesByPort) {
  const IpFamily family = GetParam();
  SLUICE_IN_FRESH_NETNS([family] {
    SetUpServiceNetwork();
    const Addresses a = AddressesFor(family);
    ServiceFlows flows(a);
    ConntrackTable table;

    FlowFilter port_nat = Udp(family);
    port_nat.orig_dst_port = 53;
    port_nat.reply_src = a.endpoint_2;
    EXPECT_EQ(table.Delete(port_nat), 1u);
    EXPECT_EQ(ClientPorts(table.List(family, IPPROTO_UDP), a.client),
              (std::set<uint16_t>{kUdpToServiceADns, kUdpToServiceAHttp, kUdpToEndpointDirect}));

    FlowFilter port = Udp(family);
    port.orig_dst_port = 53;
    EXPECT_EQ(table.Delete(port), 1u);
    EXPECT_EQ(ClientPorts(table.List(family, IPPROTO_UDP), a.client),
              (std::set<uint16_t>{kUdpToServiceAHttp, kUdpToEndpointDirect}));
    std::string listed = ConntrackTool(family, "udp");
    EXPECT_EQ(listed.find(" dport=53 "), std::string::npos) << listed;
    EXPECT_NE(listed.find(OriginalText(a.client, kUdpToEndpointDirect, a.endpoint_1, 5353)),
              std::string::npos)
        << listed;
    EXPECT_NE(ConntrackTool(family, "tcp").find(" dport=53 "), std::string::npos);
  });
}

TEST_P(ConntrackKernelTest, DeletesTcpOnlyWhenAskedFor) {
  const IpFamily family = GetParam();
  SLUICE_IN_FRESH_NETNS([family] {
    SetUpServiceNetwork();
    const Addresses a = AddressesFor(family);
    ServiceFlows flows(a);
    ConntrackTable table;

    FlowFilter filter = Udp(family);
    filter.protocol = IPPROTO_TCP;
    filter.orig_dst = a.service_a;
    EXPECT_EQ(table.Delete(filter), 1u);
    EXPECT_TRUE(ClientPorts(table.List(family, IPPROTO_TCP), a.client).empty());
    EXPECT_EQ(ClientPorts(table.List(family, IPPROTO_UDP), a.client), kAllUdp);
  });
}

// An entry in a conntrack zone is found only with its zone: the delete must carry it.
TEST_P(ConntrackKernelTest, DeletesEntriesInAZone) {
  const IpFamily family = GetParam();
  SLUICE_IN_FRESH_NETNS([family] {
    SetUpServiceNetwork();
    // Before conntrack (-200) looks the packet up: service_b's traffic lives in zone 7.
    RunCommand({"nft", "add table inet zones"});
    RunCommand({"nft", "add chain inet zones output { type filter hook output priority -300; }"});
    RunCommand({"nft", "add rule inet zones output ip daddr 10.96.0.20 ct zone set 7"});
    RunCommand({"nft", "add rule inet zones output ip6 daddr fd00:96::20 ct zone set 7"});
    const Addresses a = AddressesFor(family);
    ServiceFlows flows(a);
    ConntrackTable table;

    bool found = false;
    for (const Flow& flow : table.List(family, IPPROTO_UDP)) {
      if (flow.original.src_port != kUdpToServiceBDns) continue;
      found = true;
      EXPECT_EQ(flow.zone, 7) << flow.ToString();
      EXPECT_EQ(flow.reply.src, a.endpoint_2) << flow.ToString();
    }
    EXPECT_TRUE(found);
    ASSERT_NE(ConntrackTool(family, "udp").find("zone=7"), std::string::npos);

    FlowFilter filter = Udp(family);
    filter.orig_dst = a.service_b;
    EXPECT_EQ(table.Delete(filter), 1u);
    EXPECT_EQ(ClientPorts(table.List(family, IPPROTO_UDP), a.client),
              (std::set<uint16_t>{kUdpToServiceADns, kUdpToServiceAHttp, kUdpToEndpointDirect}));
    std::string listed = ConntrackTool(family, "udp");
    EXPECT_EQ(listed.find("zone=7"), std::string::npos) << listed;
  });
}

INSTANTIATE_TEST_SUITE_P(Families, ConntrackKernelTest,
                         ::testing::Values(IpFamily::kV4, IpFamily::kV6),
                         [](const ::testing::TestParamInfo<IpFamily>& info) {
                           return info.param == IpFamily::kV4 ? "V4" : "V6";
                         });

// One sync's worth of filters over both families, many of which match nothing.
TEST(ConntrackKernelBatchTest, DeleteAllMixesFamiliesAndManyFilters) {
  SLUICE_IN_FRESH_NETNS([] {
    SetUpServiceNetwork();
    const Addresses v4 = AddressesFor(IpFamily::kV4);
    const Addresses v6 = AddressesFor(IpFamily::kV6);
    ServiceFlows flows_v4(v4);
    ServiceFlows flows_v6(v6);
    ConntrackTable table;

    std::vector<FlowFilter> filters;
    FlowFilter filter = Udp(IpFamily::kV4);
    filter.orig_dst = v4.service_a;
    filter.orig_dst_port = 53;
    filters.push_back(filter);
    filter = Udp(IpFamily::kV6);
    filter.reply_src = v6.endpoint_2;
    filters.push_back(filter);
    filter = Udp(IpFamily::kV4);
    filter.orig_dst_port = 80;
    filters.push_back(filter);
    // Services that have no entries: 1,000 ClusterIPs nobody talked to.
    IpAddress unused = IpAddress::MustParse("10.97.0.1");
    for (int i = 0; i < 1000; ++i, unused = unused.Next()) {
      filter = Udp(IpFamily::kV4);
      filter.orig_dst = unused;
      filter.orig_dst_port = 53;
      filters.push_back(filter);
    }

    EXPECT_EQ(table.DeleteAll(filters), 3u);
    std::vector<Flow> left_v4 = table.List(IpFamily::kV4, IPPROTO_UDP);
    EXPECT_EQ(ClientPorts(left_v4, v4.client),
              (std::set<uint16_t>{kUdpToServiceBDns, kUdpToEndpointDirect}));
    std::vector<Flow> left_v6 = table.List(IpFamily::kV6, IPPROTO_UDP);
    EXPECT_EQ(ClientPorts(left_v6, v6.client),
              (std::set<uint16_t>{kUdpToServiceADns, kUdpToServiceAHttp, kUdpToEndpointDirect}));
    // The filters' own Matches agrees with what the index deleted.
    for (const std::vector<Flow>* left : {&left_v4, &left_v6}) {
      for (const Flow& flow : *left) {
        for (const FlowFilter& f : filters) EXPECT_FALSE(f.Matches(flow)) << flow.ToString();
      }
    }
    EXPECT_EQ(table.DeleteAll({}), 0u);
  });
}

// The handle stays in the namespace it was opened in, whatever the thread does afterwards.
TEST(ConntrackKernelNetnsTest, HandleStaysInItsNamespace) {
  SLUICE_IN_FRESH_NETNS([] {
    Netns inner = Netns::Create();
    const Addresses a = AddressesFor(IpFamily::kV4);
    std::optional<ServiceFlows> flows;
    std::optional<ConntrackTable> inner_table;
    {
      Netns::Scope scope(inner);
      SetUpServiceNetwork();
      flows.emplace(a);
      inner_table.emplace();
    }
    ConntrackTable outer_table;
    EXPECT_TRUE(outer_table.List(IpFamily::kV4, IPPROTO_UDP).empty());
    EXPECT_EQ(ClientPorts(inner_table->List(IpFamily::kV4, IPPROTO_UDP), a.client), kAllUdp);
    FlowFilter filter = Udp(IpFamily::kV4);
    filter.orig_dst_port = 53;
    EXPECT_EQ(outer_table.Delete(filter), 0u);
    EXPECT_EQ(inner_table->Delete(filter), 2u);
  });
}

TEST(ConntrackKernelFilterTest, RejectsMalformedFilters) {
  SLUICE_IN_FRESH_NETNS([] {
    ConntrackTable table;
    FlowFilter empty = Udp(IpFamily::kV4);
    EXPECT_THROW(table.Delete(empty), std::invalid_argument);

    FlowFilter wrong_family = Udp(IpFamily::kV6);
    wrong_family.orig_dst = IpAddress::MustParse("10.96.0.10");
    try {
      table.Delete(wrong_family);
      ADD_FAILURE() << "expected std::invalid_argument";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("10.96.0.10 is not an ipv6 address"), std::string::npos)
          << e.what();
    }

    FlowFilter icmp = Udp(IpFamily::kV4);
    icmp.protocol = IPPROTO_ICMP;
    icmp.orig_dst = IpAddress::MustParse("10.96.0.10");
    EXPECT_THROW(table.Delete(icmp), std::invalid_argument);
    EXPECT_THROW(table.List(IpFamily::kV4, IPPROTO_ICMP), std::invalid_argument);

    // One bad filter among good ones fails the whole call before anything is dumped.
    FlowFilter good = Udp(IpFamily::kV4);
    good.orig_dst_port = 53;
    std::vector<FlowFilter> mixed = {good, empty};
    EXPECT_THROW(table.DeleteAll(mixed), std::invalid_argument);
  });
}

}  // namespace
}  // namespace sluice::conntrack
