// The nftables backend against the kernel, each test in a fresh network namespace (the "node"),
// with client and endpoint namespaces joined to it by veths: real TCP and UDP through the rules,
// and the reconciliation properties (no-op resync, partial syncs touching one Service, drift
// repaired, adoption without a flush, foreign tables untouched, cleanup).
#include "proxy/backends/nftables/nftables_backend.h"

#include <arpa/inet.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <regex>
#include <string>

#include "dataplane/nft/netns_testing.h"

namespace sluice::proxy::nftables {
namespace {

using nft::testing::Netns;
using nft::testing::RunCommand;
using state::Endpoint;
using state::ServicePortState;
using state::ServiceState;
using state::TrafficVerdict;

Endpoint Ep(std::string_view ip, uint16_t port, bool local = true) {
  Endpoint e;
  e.ip = IpAddress::MustParse(ip);
  e.port = port;
  e.local = local;
  return e;
}

state::ServiceStatePtr Service(std::string name, std::string_view cluster_ip, uint16_t port,
                               std::vector<Endpoint> eps,
                               api::Protocol proto = api::Protocol::kTcp) {
  ServicePortState p;
  p.name = {"default", name, "p", proto};
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
  return std::make_shared<const ServiceState>(ServiceState{"default/" + name, {p}});
}

NftablesOptions Options() {
  NftablesOptions o;
  o.cluster_cidrs = {IpPrefix::MustParse("10.244.0.0/16")};
  o.nodeport_cidrs = {IpPrefix::MustParse("0.0.0.0/0")};
  return o;
}

// Syncs `desired` fully, as the first sync and the periodic one do.
void FullSync(NftablesBackend& b, const state::NodeState& desired) {
  state::NodeStateChange change;
  change.full = true;
  b.Sync(desired, change);
}

// Applies `after` for one service key as a partial sync; `state` is updated.
void Change(NftablesBackend& b, state::NodeState& st, const std::string& key,
            state::ServiceStatePtr after) {
  state::NodeStateChange change;
  auto it = st.services.find(key);
  state::ServiceStatePtr before = it == st.services.end() ? nullptr : it->second;
  change.services.push_back(state::ServiceDiff{key, before, after});
  if (after) {
    st.services[key] = after;
  } else {
    st.services.erase(key);
  }
  b.Sync(st, change);
}

// A node with one client namespace (10.244.9.2, inside the cluster CIDR, or 192.168.7.2 outside
// it) and two endpoint namespaces (10.244.1.2, 10.244.1.3), each on its own veth.
struct Topology {
  Netns client = Netns::Create();
  Netns outside = Netns::Create();
  Netns ep1 = Netns::Create();
  Netns ep2 = Netns::Create();
  Netns upstream = Netns::Create();

  Topology() {
    Link(client, "vcl", "10.244.9.1/24", "10.244.9.2/24");
    Link(outside, "vout", "192.168.7.1/24", "192.168.7.2/24");
    Link(ep1, "vep1", "10.244.1.1/30", "10.244.1.2/30");
    Link(ep2, "vep2", "10.244.1.5/30", "10.244.1.6/30");
    RunCommand({"sysctl", "-qw", "net.ipv4.ip_forward=1"});
    // A default route, as every node has: traffic to a ClusterIP nobody DNATs is routed (and
    // so reaches the forward hook, where it is rejected) instead of failing to route.
    Link(upstream, "vup", "192.0.2.1/24", "192.0.2.254/24");
    RunCommand({"ip", "route", "add", "default", "via", "192.0.2.254"});
  }
  static void Link(const Netns& ns, const std::string& name, const std::string& node_addr,
                   const std::string& peer_addr) {
    RunCommand({"ip", "link", "add", name, "type", "veth", "peer", "name", "eth0", "netns",
                ns.Path()});
    RunCommand({"ip", "addr", "add", node_addr, "dev", name});
    RunCommand({"ip", "link", "set", name, "up"});
    ns.RunCommand({"ip", "addr", "add", peer_addr, "dev", "eth0"});
    ns.RunCommand({"ip", "link", "set", "eth0", "up"});
    ns.RunCommand({"ip", "link", "set", "lo", "up"});
    const std::string gw = node_addr.substr(0, node_addr.find('/'));
    ns.RunCommand({"ip", "route", "add", "default", "via", gw});
  }
};

struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  ~Fd() {
    if (fd >= 0) close(fd);
  }
};

sockaddr_in Addr(const std::string& ip, uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
  return a;
}

// Connects from `from` to vip:port; each endpoint namespace listens on its own address and
// `target_port`. Returns "<endpoint ns index>:<source the endpoint saw>", "refused" or "timeout".
std::string TcpProbe(const Netns& from, const std::vector<const Netns*>& endpoints,
                     const std::vector<std::string>& endpoint_ips, uint16_t target_port,
                     const std::string& vip, uint16_t port) {
  std::vector<std::unique_ptr<Fd>> listeners;
  for (size_t i = 0; i < endpoints.size(); ++i) {
    Netns::Scope scope(*endpoints[i]);
    auto l = std::make_unique<Fd>(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    int one = 1;
    setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a = Addr(endpoint_ips[i], target_port);
    if (bind(l->fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(l->fd, 8) != 0) {
      throw std::runtime_error("listen " + endpoint_ips[i]);
    }
    listeners.push_back(std::move(l));
  }
  std::unique_ptr<Fd> c;
  {
    Netns::Scope scope(from);
    c = std::make_unique<Fd>(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  }
  timeval tv{1, 0};
  setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in target = Addr(vip, port);
  if (connect(c->fd, reinterpret_cast<sockaddr*>(&target), sizeof target) != 0) {
    return errno == ECONNREFUSED ? "refused" : "timeout";
  }
  std::vector<pollfd> fds;
  for (auto& l : listeners) fds.push_back(pollfd{l->fd, POLLIN, 0});
  if (poll(fds.data(), fds.size(), 1000) <= 0) return "timeout";
  for (size_t i = 0; i < fds.size(); ++i) {
    if (!(fds[i].revents & POLLIN)) continue;
    sockaddr_in peer{};
    socklen_t len = sizeof peer;
    Fd accepted(accept4(listeners[i]->fd, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_CLOEXEC));
    char text[INET_ADDRSTRLEN] = {};
    inet_ntop(AF_INET, &peer.sin_addr, text, sizeof text);
    return std::to_string(i) + ":" + text;
  }
  return "timeout";
}

std::string Nft(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"nft"};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv);
}

TEST(NftablesBackendKernel, ClusterIpSpreadsKeepsPodSourcesAndMasqueradesOthers) {
  SLUICE_IN_FRESH_NETNS([] {
    Topology t;
    NftablesBackend b(Options());
    state::NodeState st;
    st.services["default/web"] =
        Service("web", "10.96.0.10", 80, {Ep("10.244.1.2", 8080), Ep("10.244.1.6", 8080)});
    FullSync(b, st);
    EXPECT_GT(b.last_sync().messages, 0u);

    std::set<std::string> seen;
    for (int i = 0; i < 40 && seen.size() < 2; ++i) {
      std::string r = TcpProbe(t.client, {&t.ep1, &t.ep2}, {"10.244.1.2", "10.244.1.6"}, 8080,
                               "10.96.0.10", 80);
      ASSERT_TRUE(r == "0:10.244.9.2" || r == "1:10.244.9.2") << r;  // pod source kept
      seen.insert(r);
    }
    EXPECT_EQ(seen.size(), 2u) << "both endpoints answer";
    // From outside the cluster CIDR: masqueraded to the node's address on the endpoint's link.
    std::string r = TcpProbe(t.outside, {&t.ep1, &t.ep2}, {"10.244.1.2", "10.244.1.6"}, 8080,
                             "10.96.0.10", 80);
    EXPECT_TRUE(r == "0:10.244.1.1" || r == "1:10.244.1.5") << r;
    // A ClusterIP port without a service is rejected, not left to time out.
    EXPECT_EQ(TcpProbe(t.client, {&t.ep1}, {"10.244.1.2"}, 8080, "10.96.0.10", 81), "refused");

    // The same state again: nothing to send.
    FullSync(b, st);
    EXPECT_EQ(b.last_sync().messages, 0u);
  });
}

TEST(NftablesBackendKernel, ServiceWithoutEndpointsIsRefusedThenFollowsItsEndpoints) {
  SLUICE_IN_FRESH_NETNS([] {
    Topology t;
    NftablesBackend b(Options());
    state::NodeState st;
    st.services["default/web"] = Service("web", "10.96.0.10", 80, {});
    FullSync(b, st);
    const auto start = std::chrono::steady_clock::now();
    EXPECT_EQ(TcpProbe(t.client, {&t.ep1}, {"10.244.1.2"}, 8080, "10.96.0.10", 80), "refused");
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(900));

    Change(b, st, "default/web", Service("web", "10.96.0.10", 80, {Ep("10.244.1.6", 8080)}));
    EXPECT_EQ(TcpProbe(t.client, {&t.ep1, &t.ep2}, {"10.244.1.2", "10.244.1.6"}, 8080,
                       "10.96.0.10", 80),
              "1:10.244.9.2");
    Change(b, st, "default/web", Service("web", "10.96.0.10", 80, {Ep("10.244.1.2", 8080)}));
    EXPECT_EQ(TcpProbe(t.client, {&t.ep1, &t.ep2}, {"10.244.1.2", "10.244.1.6"}, 8080,
                       "10.96.0.10", 80),
              "0:10.244.9.2");
    Change(b, st, "default/web", nullptr);
    // Gone: nothing of it is left in the table.
    const std::string table = Nft({"list", "table", "inet", "sluice-proxy"});
    EXPECT_EQ(table.find("default/web"), std::string::npos) << table;
    EXPECT_EQ(table.find("10.96.0.10"), std::string::npos) << table;
  });
}

TEST(NftablesBackendKernel, OneEndpointChangeAmongManyServicesIsASmallTransaction) {
  SLUICE_IN_FRESH_NETNS([] {
    NftablesBackend b(Options());
    state::NodeState st;
    for (int i = 0; i < 2000; ++i) {
      const std::string name = "s" + std::to_string(i);
      const std::string ip = "10.96." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1);
      std::vector<Endpoint> eps;
      for (int e = 0; e < 10; ++e) {
        eps.push_back(Ep("10.244." + std::to_string(i / 250) + "." + std::to_string(e + 2), 8080,
                         false));
      }
      st.services["default/" + name] = Service(name, ip, 80, eps);
    }
    FullSync(b, st);
    const size_t full_messages = b.last_sync().messages;
    EXPECT_GT(full_messages, 4000u);

    // One endpoint replaced: one slot of the endpoints map rewritten, no chain touched.
    auto replaced = std::make_shared<ServiceState>(*st.services["default/s1234"]);
    replaced->ports[0].cluster_endpoints[3].ip = IpAddress::MustParse("10.244.99.99");
    Change(b, st, "default/s1234", replaced);
    EXPECT_EQ(b.last_sync().chains_written, 0u);
    EXPECT_EQ(b.last_sync().elements_changed, 2u);  // the slot's delete and add
    EXPECT_LE(b.last_sync().messages, 2u);
    EXPECT_NE(Nft({"list", "table", "inet", "sluice-proxy"}).find("10.244.99.99 . 8080"),
              std::string::npos);

    // One endpoint removed: the rule picks among 9 (same block), the last slot goes.
    auto changed = std::make_shared<ServiceState>(*replaced);
    changed->ports[0].cluster_endpoints.pop_back();
    Change(b, st, "default/s1234", changed);
    EXPECT_LE(b.last_sync().messages, 4u);  // slot delete, flush, the two rules
    EXPECT_EQ(b.last_sync().chains_written, 1u);
    const std::string chain =
        Nft({"list", "chain", "inet", "sluice-proxy", "svc4-default/s1234/tcp/p"});
    EXPECT_TRUE(std::regex_search(
        chain, std::regex("dnat ip to numgen random mod 9 offset [0-9]+ map @endpoints4-[0-9]+")))
        << chain;
    // Grown past its block (16 slots): a new block, the old one freed.
    auto grown = std::make_shared<ServiceState>(*changed);
    for (int e = 0; e < 10; ++e) {
      grown->ports[0].cluster_endpoints.push_back(Ep("10.244.200." + std::to_string(e + 1), 8080));
    }
    Change(b, st, "default/s1234", grown);
    EXPECT_EQ(b.last_sync().chains_written, 1u);
    // And a full resync agrees with what the partial one did.
    FullSync(b, st);
    EXPECT_EQ(b.last_sync().messages, 0u);
  });
}

TEST(NftablesBackendKernel, DriftIsRepairedAndForeignTablesAreLeftAlone) {
  SLUICE_IN_FRESH_NETNS([] {
    Topology t;
    Nft({"add", "table", "inet", "foreign"});
    Nft({"add", "chain", "inet", "foreign", "c"});
    Nft({"add", "rule", "inet", "foreign", "c", "ip", "daddr", "192.0.2.1", "drop"});
    const std::string foreign_before = Nft({"list", "table", "inet", "foreign"});

    NftablesBackend b(Options());
    state::NodeState st;
    st.services["default/web"] = Service("web", "10.96.0.10", 80, {Ep("10.244.1.2", 8080)});
    FullSync(b, st);

    // A rule deleted by hand: the DNAT of the service chain.
    const std::string chain = Nft({"-a", "list", "chain", "inet", "sluice-proxy", "svc4-default/web/tcp/p"});
    std::smatch m;
    ASSERT_TRUE(std::regex_search(chain, m, std::regex("dnat ip to [^#]*# handle ([0-9]+)")))
        << chain;
    Nft({"delete", "rule", "inet", "sluice-proxy", "svc4-default/web/tcp/p", "handle", m[1]});
    // Not DNATed any more: the ClusterIP check rejects it.
    EXPECT_EQ(TcpProbe(t.client, {&t.ep1}, {"10.244.1.2"}, 8080, "10.96.0.10", 80), "refused");
    // An element deleted and a chain added by hand.
    Nft({"delete", "element", "inet", "sluice-proxy", "cluster-ips4", "{", "10.96.0.10", "}"});
    Nft({"add", "chain", "inet", "sluice-proxy", "svc4-stale"});

    FullSync(b, st);
    EXPECT_GT(b.last_sync().messages, 0u);
    EXPECT_EQ(b.last_sync().chains_written, 1u);
    EXPECT_EQ(b.last_sync().chains_deleted, 1u);
    EXPECT_EQ(TcpProbe(t.client, {&t.ep1}, {"10.244.1.2"}, 8080, "10.96.0.10", 80),
              "0:10.244.9.2");
    EXPECT_NE(Nft({"list", "set", "inet", "sluice-proxy", "cluster-ips4"}).find("10.96.0.10"),
              std::string::npos);
    FullSync(b, st);
    EXPECT_EQ(b.last_sync().messages, 0u);

    EXPECT_EQ(Nft({"list", "table", "inet", "foreign"}), foreign_before);
    b.Cleanup();
    EXPECT_EQ(Nft({"list", "tables"}), "table inet foreign\n");
  });
}

TEST(NftablesBackendKernel, ANewInstanceAdoptsTheTableWithoutRewritingIt) {
  SLUICE_IN_FRESH_NETNS([] {
    state::NodeState st;
    st.services["default/web"] =
        Service("web", "10.96.0.10", 80, {Ep("10.244.1.2", 8080), Ep("10.244.1.6", 8080)});
    auto aff = std::make_shared<ServiceState>(
        *Service("aff", "10.96.0.11", 80, {Ep("10.244.1.2", 8080), Ep("10.244.1.6", 8080)}));
    aff->ports[0].affinity_timeout_seconds = 60;
    st.services["default/aff"] = aff;
    {
      NftablesBackend first(Options());
      FullSync(first, st);
    }
    const std::string before = Nft({"-a", "list", "table", "inet", "sluice-proxy"});
    NftablesBackend second(Options());
    FullSync(second, st);
    EXPECT_EQ(second.last_sync().messages, 0u);
    EXPECT_EQ(Nft({"-a", "list", "table", "inet", "sluice-proxy"}), before);
    // nft prints the endpoints map with its real keys, and the table loads back with nft -f.
    EXPECT_TRUE(std::regex_search(before, std::regex("[0-9]+ : 10.244.1.2 . 8080, [0-9]+ : "
                                                     "10.244.1.6 . 8080")))
        << before;
    const std::string listing = Nft({"list", "table", "inet", "sluice-proxy"});
    Nft({"delete", "table", "inet", "sluice-proxy"});
    {
      FILE* f = std::fopen("/tmp/sluice-nft-roundtrip.nft", "w");
      ASSERT_NE(f, nullptr);
      std::fputs(listing.c_str(), f);
      std::fclose(f);
    }
    Nft({"-f", "/tmp/sluice-nft-roundtrip.nft"});
    std::remove("/tmp/sluice-nft-roundtrip.nft");
    EXPECT_EQ(Nft({"list", "table", "inet", "sluice-proxy"}), listing);
    // Loaded by nft, the rules lack our fingerprints: a full sync rewrites the chains (once).
    FullSync(second, st);
    EXPECT_GT(second.last_sync().chains_written, 0u);
    FullSync(second, st);
    EXPECT_EQ(second.last_sync().messages, 0u);
    // The affinity timeout changes: sets are replaced, chains that use them rewritten.
    auto longer = std::make_shared<ServiceState>(*aff);
    longer->ports[0].affinity_timeout_seconds = 120;
    st.services["default/aff"] = longer;
    FullSync(second, st);
    EXPECT_GT(second.last_sync().messages, 0u);
    FullSync(second, st);
    EXPECT_EQ(second.last_sync().messages, 0u);
  });
}

// One TCP segment with `flags` from 10.244.9.2:40000 to 10.244.1.2:8080, through the node;
// returns whether a raw socket in the endpoint namespace saw it.
bool ForwardedTcpSegment(const Topology& t, uint8_t flags) {
  std::unique_ptr<Fd> rx;
  {
    Netns::Scope scope(t.ep1);
    rx = std::make_unique<Fd>(socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_TCP));
  }
  std::unique_ptr<Fd> tx;
  {
    Netns::Scope scope(t.client);
    tx = std::make_unique<Fd>(socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_TCP));
  }
  if (rx->fd < 0 || tx->fd < 0) throw std::runtime_error("raw sockets");
  // A bare TCP header; the kernel adds the IP header. Checksum over the pseudo-header.
  uint8_t tcp[20] = {};
  tcp[0] = 40000 >> 8, tcp[1] = 40000 & 0xff, tcp[2] = 8080 >> 8, tcp[3] = 8080 & 0xff;
  tcp[7] = 1;  // sequence number 1
  tcp[12] = 5 << 4;
  tcp[13] = flags;
  tcp[14] = 0xff, tcp[15] = 0xff;  // window
  const uint8_t pseudo[12] = {10, 244, 9, 2, 10, 244, 1, 2, 0, IPPROTO_TCP, 0, 20};
  uint32_t sum = 0;
  for (int i = 0; i < 12; i += 2) sum += (pseudo[i] << 8) | pseudo[i + 1];
  for (int i = 0; i < 20; i += 2) sum += (tcp[i] << 8) | tcp[i + 1];
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  const uint16_t check = static_cast<uint16_t>(~sum);
  tcp[16] = check >> 8, tcp[17] = check & 0xff;
  sockaddr_in to = Addr("10.244.1.2", 8080);
  if (sendto(tx->fd, tcp, sizeof tcp, 0, reinterpret_cast<sockaddr*>(&to), sizeof to) < 0) {
    throw std::runtime_error("sendto raw");
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(800);
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{rx->fd, POLLIN, 0};
    if (poll(&p, 1, 100) != 1) continue;
    uint8_t buf[128];
    const ssize_t n = recv(rx->fd, buf, sizeof buf, 0);
    if (n < 40) continue;
    const size_t ihl = (buf[0] & 0x0f) * 4u;
    if (static_cast<size_t>(n) >= ihl + 20 && buf[ihl] == tcp[0] && buf[ihl + 1] == tcp[1] &&
        buf[ihl + 13] == flags) {
      return true;
    }
  }
  return false;
}

TEST(NftablesBackendKernel, ConntrackInvalidPacketsAreDroppedInForward) {
  SLUICE_IN_FRESH_NETNS([] {
    Topology t;
    constexpr uint8_t kSyn = 0x02, kFin = 0x01;
    // Without our table a SYN+FIN is forwarded like any segment.
    EXPECT_TRUE(ForwardedTcpSegment(t, kSyn | kFin));
    NftablesBackend b(Options());
    state::NodeState st;
    FullSync(b, st);
    EXPECT_FALSE(ForwardedTcpSegment(t, kSyn | kFin)) << "conntrack marks SYN+FIN invalid";
    EXPECT_TRUE(ForwardedTcpSegment(t, kSyn)) << "a plain SYN still passes";
    // And it is that rule that drops it: without it, the invalid segment passes again.
    const std::string chain = Nft({"-a", "list", "chain", "inet", "sluice-proxy", "filter-forward"});
    std::smatch m;
    ASSERT_TRUE(std::regex_search(chain, m, std::regex("ct state invalid drop # handle ([0-9]+)")))
        << chain;
    Nft({"delete", "rule", "inet", "sluice-proxy", "filter-forward", "handle", m[1]});
    EXPECT_TRUE(ForwardedTcpSegment(t, kSyn | kFin));
  });
}

TEST(NftablesBackendKernel, AFailedTransactionLeavesThePreviousRulesInForce) {
  SLUICE_IN_FRESH_NETNS([] {
    Topology t;
    NftablesBackend b(Options());
    state::NodeState st;
    st.services["default/web"] = Service("web", "10.96.0.10", 80, {Ep("10.244.1.2", 8080)});
    FullSync(b, st);
    const std::string before = Nft({"list", "table", "inet", "sluice-proxy"});
    // A partial sync whose "before" does not match the kernel (an element it would delete is
    // gone): the kernel refuses the whole transaction.
    Nft({"delete", "element", "inet", "sluice-proxy", "cluster-ips4", "{", "10.96.0.10", "}"});
    const std::string damaged = Nft({"list", "table", "inet", "sluice-proxy"});
    EXPECT_THROW(Change(b, st, "default/web", nullptr), std::exception);
    EXPECT_EQ(Nft({"list", "table", "inet", "sluice-proxy"}), damaged);
    EXPECT_EQ(TcpProbe(t.client, {&t.ep1}, {"10.244.1.2"}, 8080, "10.96.0.10", 80),
              "0:10.244.9.2");
    (void)before;
  });
}

}  // namespace
}  // namespace sluice::proxy::nftables
