// The generated restore texts against the real tools (iptables-legacy and iptables-nft, IPv4 and
// IPv6), each test in a fresh network namespace that dies with it: the full text parses
// (`--test`), a partial text applies on top of a full one and deletes what it should, and the
// jump rules' argv is accepted by `iptables -I/-C`. Skipped where a tool is missing.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "dataplane/nft/netns_testing.h"
#include "proxy/backends/iptables/iptables_backend.h"
#include "proxy/backends/iptables/layout.h"

namespace sluice::proxy::iptables {
namespace {

using nft::testing::RunCommand;
using state::Endpoint;
using state::ServicePortState;
using state::TrafficVerdict;

// The absolute path of `name` in PATH or the sbin directories, "" when absent.
std::string FindTool(const std::string& name) {
  std::string dirs = "/usr/sbin:/sbin:/usr/bin:/bin";
  if (const char* path = getenv("PATH")) dirs = std::string(path) + ":" + dirs;
  std::istringstream in(dirs);
  for (std::string dir; std::getline(in, dir, ':');) {
    const std::string candidate = dir + "/" + name;
    if (!dir.empty() && access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

// A restore text in a file for the tool to read, removed with the object.
class TextFile {
 public:
  explicit TextFile(const std::string& text) {
    char tmpl[] = "/tmp/sluice-iptables-XXXXXX";
    const int fd = mkstemp(tmpl);
    if (fd < 0) throw std::runtime_error("mkstemp failed");
    close(fd);
    path_ = tmpl;
    std::ofstream(path_) << text;
  }
  ~TextFile() { unlink(path_.c_str()); }
  TextFile(const TextFile&) = delete;
  TextFile& operator=(const TextFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

Endpoint Ep(std::string_view ip, uint16_t port, bool local = false) {
  Endpoint e;
  e.ip = IpAddress::MustParse(ip);
  e.port = port;
  e.local = local;
  return e;
}

ServicePortState Port(std::string name, std::string_view cluster_ip, uint16_t port,
                      std::vector<Endpoint> eps) {
  ServicePortState p;
  p.name = {"ns", std::move(name), "p", api::Protocol::kTcp};
  p.cluster_ip = IpAddress::MustParse(cluster_ip);
  p.family = p.cluster_ip.family();
  p.port = port;
  p.cluster_endpoints = std::move(eps);
  p.has_any_endpoints = !p.cluster_endpoints.empty();
  p.internal_verdict = p.has_any_endpoints ? TrafficVerdict::kForward : TrafficVerdict::kReject;
  p.external_verdict = p.internal_verdict;
  return p;
}

state::ServiceStatePtr Svc(ServicePortState p) {
  const std::string key = p.name.ServiceKey();
  return std::make_shared<const state::ServiceState>(state::ServiceState{key, {std::move(p)}});
}

// Every kind of service port of one family, with `a`..`c` addresses of that family.
state::NodeState Everything(IpFamily f) {
  const bool v4 = f == IpFamily::kV4;
  auto ip = [&](std::string_view v4_text, std::string_view v6_text) {
    return std::string(v4 ? v4_text : v6_text);
  };
  state::NodeState st;
  st.node.node_ips = {IpAddress::MustParse(ip("192.168.0.2", "fd00:1::2"))};

  auto web =
      Port("web", ip("172.30.0.41", "fd00:30::41"), 80,
           {Ep(ip("10.180.0.1", "fd00:10::1"), 8080), Ep(ip("10.180.0.2", "fd00:10::2"), 8080),
            Ep(ip("10.180.0.3", "fd00:10::3"), 8080, true)});
  auto local =
      Port("local", ip("172.30.0.42", "fd00:30::42"), 80,
           {Ep(ip("10.180.0.3", "fd00:10::3"), 80, true), Ep(ip("10.180.0.4", "fd00:10::4"), 80)});
  local.node_port = 30042;
  local.external_policy_local = true;
  local.local_endpoints = {local.cluster_endpoints[0]};
  local.health_check_node_port = 30000;
  local.load_balancer_ips = {IpAddress::MustParse(ip("1.2.3.4", "2001:db8::4"))};
  local.load_balancer_source_ranges = {IpPrefix::MustParse(ip("192.168.0.0/24", "fd00:1::/64"))};
  auto remote_only = Port("remote", ip("172.30.0.43", "fd00:30::43"), 80,
                          {Ep(ip("10.180.0.4", "fd00:10::4"), 80)});
  remote_only.node_port = 30043;
  remote_only.external_ips = {IpAddress::MustParse(ip("192.168.99.43", "2001:db8::43"))};
  remote_only.external_policy_local = true;
  remote_only.external_verdict = TrafficVerdict::kDrop;
  auto sticky =
      Port("sticky", ip("172.30.0.44", "fd00:30::44"), 80,
           {Ep(ip("10.180.0.5", "fd00:10::5"), 80), Ep(ip("10.180.0.6", "fd00:10::6"), 80)});
  sticky.affinity_timeout_seconds = 10800;
  sticky.node_port = 30044;
  auto empty = Port("empty", ip("172.30.0.45", "fd00:30::45"), 80, {});
  empty.node_port = 30045;
  empty.external_ips = {IpAddress::MustParse(ip("192.168.99.45", "2001:db8::45"))};
  auto udp =
      Port("dns", ip("172.30.0.10", "fd00:30::10"), 53, {Ep(ip("10.180.0.7", "fd00:10::7"), 53)});
  udp.name.protocol = api::Protocol::kUdp;
  for (auto* p : {&web, &local, &remote_only, &sticky, &empty, &udp}) {
    auto s = Svc(*p);
    st.services[s->key] = s;
  }
  return st;
}

LayoutOptions Opts(bool localhost) {
  LayoutOptions o;
  o.cluster_cidrs = {IpPrefix::MustParse("10.0.0.0/8"), IpPrefix::MustParse("fd00:10::/48")};
  o.localhost_nodeports = localhost;
  return o;
}

struct Tools {
  std::string restore, save, iptables;
};
// "legacy" or "nft" tools of a family; empty strings when missing.
Tools ToolsFor(const std::string& flavour, IpFamily f) {
  const std::string base = f == IpFamily::kV4 ? "iptables" : "ip6tables";
  return {FindTool(base + "-" + flavour + "-restore"), FindTool(base + "-" + flavour + "-save"),
          FindTool(base + "-" + flavour)};
}

class RestoreKernelTest : public ::testing::TestWithParam<std::tuple<std::string, IpFamily>> {
 protected:
  void SetUp() override {
    tools_ = ToolsFor(std::get<0>(GetParam()), std::get<1>(GetParam()));
    if (tools_.restore.empty() || tools_.save.empty() || tools_.iptables.empty()) {
      GTEST_SKIP() << std::get<0>(GetParam()) << " tools not installed";
    }
  }
  IpFamily family() const { return std::get<1>(GetParam()); }
  Tools tools_;
};

TEST_P(RestoreKernelTest, FullTextParses) {
  for (bool localhost : {false, true}) {
    const TextFile full(FullRestoreText(Everything(family()), family(), Opts(localhost)));
    SLUICE_IN_FRESH_NETNS([&] {
      RunCommand({tools_.restore, "-w", "5", "--test", "--noflush", full.path()});
    });
  }
}

// The negative controls: --test does refuse bad options. A jump to a missing chain is refused
// by iptables-legacy's --test, while iptables-nft's --test only parses: there it takes applying
// (which the partial-sync test below does for our texts).
TEST_P(RestoreKernelTest, BrokenTextIsRefused) {
  const TextFile bad_option(
      "*nat\n:KUBE-SERVICES - [0:0]\n-A KUBE-SERVICES -m statistic --mode "
      "random --probability 2.5 -j RETURN\nCOMMIT\n");
  const TextFile missing_chain(
      "*nat\n:KUBE-SERVICES - [0:0]\n-A KUBE-SERVICES -j "
      "KUBE-SVC-NOSUCHCHAIN\nCOMMIT\n");
  const bool legacy = std::get<0>(GetParam()) == "legacy";
  SLUICE_IN_FRESH_NETNS([&] {
    EXPECT_THROW(RunCommand({tools_.restore, "-w", "5", "--test", "--noflush", bad_option.path()}),
                 std::runtime_error);
    if (legacy) {
      EXPECT_THROW(
          RunCommand({tools_.restore, "-w", "5", "--test", "--noflush", missing_chain.path()}),
          std::runtime_error);
    } else {
      EXPECT_THROW(RunCommand({tools_.restore, "-w", "5", "--noflush", missing_chain.path()}),
                   std::runtime_error);
    }
  });
}

// In the throwaway namespace: the full text, then the jump rules, then a partial sync replacing
// one endpoint, which must delete the old endpoint's chain and leave the other Services' alone.
TEST_P(RestoreKernelTest, PartialTextAppliesOverFullText) {
  const auto before = Everything(family());
  auto after = before;
  auto web = *before.services.at("ns/web");
  web.ports[0].cluster_endpoints[1].port = 9090;
  after.services["ns/web"] = std::make_shared<const state::ServiceState>(web);
  const std::vector<state::ServiceDiff> diff = {
      {"ns/web", before.services.at("ns/web"), after.services.at("ns/web")}};
  const TextFile full(FullRestoreText(before, family(), Opts(false)));
  const TextFile partial(PartialRestoreText(after, family(), Opts(false), diff));
  const std::string gone = EndpointChainName(
      web.ports[0].name, before.services.at("ns/web")->ports[0].cluster_endpoints[1]);
  const std::string added = EndpointChainName(web.ports[0].name, web.ports[0].cluster_endpoints[1]);
  const std::string sticky_chain =
      ServicePortChainName(PortChain::kCluster, before.services.at("ns/sticky")->ports[0].name);

  SLUICE_IN_FRESH_NETNS([&] {
    RunCommand({tools_.restore, "-w", "5", "--noflush", full.path()});
    for (const auto& rule : JumpRules(family(), Opts(false))) {
      auto argv = JumpArgv(rule, "-I");
      argv.insert(argv.begin(), tools_.iptables);
      RunCommand(argv);
      argv = JumpArgv(rule, "-C");
      argv.insert(argv.begin(), tools_.iptables);
      RunCommand(argv);
    }
    const std::string nat_before = RunCommand({tools_.save, "-t", "nat"});
    EXPECT_NE(nat_before.find(":" + gone), std::string::npos);
    EXPECT_NE(nat_before.find("-A PREROUTING -m comment --comment \"kubernetes service portals\" "
                              "-j KUBE-SERVICES"),
              std::string::npos)
        << nat_before;

    RunCommand({tools_.restore, "-w", "5", "--test", "--noflush", partial.path()});
    RunCommand({tools_.restore, "-w", "5", "--noflush", partial.path()});
    const std::string nat_after = RunCommand({tools_.save, "-t", "nat"});
    EXPECT_EQ(nat_after.find(":" + gone + " "), std::string::npos) << nat_after;
    EXPECT_NE(nat_after.find(":" + added + " "), std::string::npos) << nat_after;
    EXPECT_NE(nat_after.find("-A " + sticky_chain + " "), std::string::npos) << nat_after;
    EXPECT_NE(nat_after.find("-A KUBE-POSTROUTING"), std::string::npos) << nat_after;
  });
}

// The nat table in sections (as the backend writes it for iptables-nft) gives the same rules as
// one section, in a full sync that also deletes a stale chain and inserts the built-in jumps,
// and in a partial sync on top.
TEST_P(RestoreKernelTest, NatInSectionsGivesTheSameRules) {
  const auto before = Everything(family());
  auto after = before;
  auto web = *before.services.at("ns/web");
  web.ports[0].cluster_endpoints[1].port = 9090;
  after.services["ns/web"] = std::make_shared<const state::ServiceState>(web);
  after.services.erase("ns/sticky");
  const std::vector<state::ServiceDiff> diff = {
      {"ns/web", before.services.at("ns/web"), after.services.at("ns/web")},
      {"ns/sticky", before.services.at("ns/sticky"), nullptr}};
  // Stale chains, one pointing at the others: more than a section's worth are flushed in
  // sections of their own before they are deleted.
  const std::string stale = "KUBE-SVC-STALESTALESTALE12";
  std::vector<std::string> existing = {stale};
  for (int i = 0; i < 6; ++i) existing.push_back("KUBE-SEP-STALESTALESTALE" + std::to_string(i));
  auto rules = [&](const LayoutOptions& o) {
    const TextFile full(FullRestoreText(before, family(), o, existing, JumpRules(family(), o)));
    const TextFile partial(PartialRestoreText(after, family(), o, diff));
    const TextFile saved("");  // the namespace lives in a child process: the rules come back here
    SLUICE_IN_FRESH_NETNS([&] {
      for (const auto& c : existing) RunCommand({tools_.iptables, "-t", "nat", "-N", c});
      for (size_t i = 1; i < existing.size(); ++i) {
        RunCommand({tools_.iptables, "-t", "nat", "-A", stale, "-j", existing[i]});
      }
      RunCommand({tools_.restore, "-w", "5", "--noflush", full.path()});
      std::ofstream out(saved.path());
      out << RunCommand({tools_.save, "-t", "nat"}) << RunCommand({tools_.save, "-t", "filter"});
      RunCommand({tools_.restore, "-w", "5", "--noflush", partial.path()});
      out << RunCommand({tools_.save, "-t", "nat"});
    });
    std::string kept;  // without iptables-save's comment lines (they carry the time)
    std::ifstream in(saved.path());
    for (std::string line; std::getline(in, line);) {
      if (!line.starts_with("#")) kept += line + "\n";
    }
    return kept;
  };
  LayoutOptions split = Opts(true);
  split.nat_section_chains = 3;
  ASSERT_NE(FullRestoreText(before, family(), split).find("COMMIT\n*nat\n"), std::string::npos);
  const std::string one = rules(Opts(true));
  EXPECT_EQ(rules(split), one);
  EXPECT_EQ(one.find("STALE"), std::string::npos) << one;
  EXPECT_NE(one.find("-j KUBE-SERVICES"), std::string::npos) << one;
  EXPECT_NE(one.find("-A KUBE-SERVICES"), std::string::npos) << one;
  EXPECT_NE(one.find("-A KUBE-FORWARD"), std::string::npos) << one;
}

INSTANTIATE_TEST_SUITE_P(Tools, RestoreKernelTest,
                         ::testing::Combine(::testing::Values("legacy", "nft"),
                                            ::testing::Values(IpFamily::kV4, IpFamily::kV6)),
                         [](const auto& info) {
                           return std::get<0>(info.param) +
                                  (std::get<1>(info.param) == IpFamily::kV4 ? "_ipv4" : "_ipv6");
                         });

// The backend itself, per variant, in a fresh namespace: full and partial syncs, drift repaired
// by the next full sync, a foreign chain and its jump never touched, cleanup.
class BackendKernelTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    tools_ = ToolsFor(GetParam(), IpFamily::kV4);
    if (tools_.restore.empty() || tools_.save.empty() || tools_.iptables.empty()) {
      GTEST_SKIP() << GetParam() << " tools not installed";
    }
  }
  Variant variant() const { return GetParam() == "legacy" ? Variant::kLegacy : Variant::kNft; }
  std::string Nat() const { return RunCommand({tools_.save, "-t", "nat"}); }
  Tools tools_;
};

bool Has(const std::string& text, const std::string& what) {
  return text.find(what) != std::string::npos;
}

TEST_P(BackendKernelTest, SyncsRepairsDriftLeavesForeignChainsAndCleansUp) {
  SLUICE_IN_FRESH_NETNS([&] {
    RunCommand({tools_.iptables, "-t", "nat", "-N", "FOREIGN"});
    RunCommand({tools_.iptables, "-t", "nat", "-A", "FOREIGN", "-d", "198.51.100.1", "-j",
                "RETURN"});
    RunCommand({tools_.iptables, "-t", "nat", "-A", "PREROUTING", "-j", "FOREIGN"});

    IptablesOptions o;
    o.variant = variant();
    o.families = {IpFamily::kV4};
    o.cluster_cidrs = {IpPrefix::MustParse("10.0.0.0/8")};
    IptablesBackend backend(o);
    EXPECT_EQ(backend.variant(), variant());

    state::NodeState st;
    auto web = Port("web", "172.30.0.41", 80,
                    {Ep("10.180.0.1", 8080), Ep("10.180.0.2", 8080), Ep("10.180.0.3", 8080)});
    auto dns = Port("dns", "172.30.0.10", 53, {Ep("10.180.0.7", 53)});
    for (auto* p : {&web, &dns}) {
      auto s = Svc(*p);
      st.services[s->key] = s;
    }
    state::NodeStateChange full;
    full.full = true;
    backend.Sync(st, full);
    const std::string web_svc = ServicePortChainName(PortChain::kCluster, web.name);
    const std::string dns_svc = ServicePortChainName(PortChain::kCluster, dns.name);
    const std::string gone_sep = EndpointChainName(web.name, web.cluster_endpoints[0]);
    std::string nat = Nat();
    EXPECT_TRUE(Has(nat, ":" + web_svc) && Has(nat, ":" + dns_svc) && Has(nat, ":" + gone_sep))
        << nat;
    EXPECT_TRUE(Has(nat, "-j KUBE-SERVICES")) << nat;  // the jump from PREROUTING/OUTPUT
    EXPECT_TRUE(Has(nat, "-A FOREIGN -d 198.51.100.1/32 -j RETURN")) << nat;
    EXPECT_TRUE(Has(nat, "-A PREROUTING -j FOREIGN")) << nat;

    // One endpoint goes: a partial sync rewrites web's chains and deletes that endpoint's.
    auto before = st.services.at("ns/web");
    auto web2 = web;
    web2.cluster_endpoints.erase(web2.cluster_endpoints.begin());
    auto after = Svc(web2);
    st.services["ns/web"] = after;
    state::NodeStateChange partial;
    partial.services.push_back(state::ServiceDiff{"ns/web", before, after});
    backend.Sync(st, partial);
    EXPECT_FALSE(backend.last_sync().full);
    nat = Nat();
    EXPECT_FALSE(Has(nat, ":" + gone_sep)) << nat;
    EXPECT_TRUE(Has(nat, ":" + dns_svc)) << nat;

    // Drift: the dispatch chain flushed and a jump deleted by hand; the next full sync repairs.
    RunCommand({tools_.iptables, "-t", "nat", "-F", "KUBE-SERVICES"});
    RunCommand({tools_.iptables, "-t", "nat", "-D", "PREROUTING", "-m", "comment", "--comment",
                "kubernetes service portals", "-j", "KUBE-SERVICES"});
    nat = Nat();
    ASSERT_FALSE(Has(nat, "-A PREROUTING -m comment --comment \"kubernetes service portals\""))
        << nat;
    backend.Sync(st, full);
    nat = Nat();
    EXPECT_TRUE(Has(nat, "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j "
                         "KUBE-SERVICES"))
        << nat;
    EXPECT_TRUE(Has(nat, "-A KUBE-SERVICES -d 172.30.0.41/32")) << nat;
    EXPECT_TRUE(Has(nat, "-A FOREIGN -d 198.51.100.1/32 -j RETURN")) << nat;

    backend.Cleanup();
    nat = Nat();
    EXPECT_FALSE(Has(nat, "KUBE-")) << nat;
    EXPECT_TRUE(Has(nat, "-A PREROUTING -j FOREIGN")) << nat;
    EXPECT_TRUE(Has(nat, "-A FOREIGN -d 198.51.100.1/32 -j RETURN")) << nat;
    EXPECT_FALSE(Has(RunCommand({tools_.save, "-t", "filter"}), "KUBE-"));
  });
}

size_t Count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// More chains than one section takes (iptables-nft: LayoutOptions::nat_section_chains): a full
// sync writes them all, and a full sync after half the Services went deletes theirs.
TEST_P(BackendKernelTest, ManyServicesFullSyncs) {
  SLUICE_IN_FRESH_NETNS([&] {
    IptablesOptions o;
    o.variant = variant();
    o.families = {IpFamily::kV4};
    IptablesBackend backend(o);
    state::NodeState st;
    for (int i = 0; i < 300; ++i) {
      const std::string n = std::to_string(i / 250) + "." + std::to_string(i % 250 + 1);
      auto s = Svc(Port("s" + std::to_string(i), "172.30." + n, 80,
                        {Ep("10.180." + n, 80), Ep("10.181." + n, 80), Ep("10.182." + n, 80)}));
      st.services[s->key] = s;
    }
    state::NodeStateChange full;
    full.full = true;
    backend.Sync(st, full);
    std::string nat = Nat();
    EXPECT_EQ(Count(nat, ":KUBE-SVC-"), 300u);
    EXPECT_EQ(Count(nat, ":KUBE-SEP-"), 900u);
    EXPECT_EQ(Count(nat, "-A KUBE-SERVICES "), 301u);  // and the NodePort dispatch
    EXPECT_EQ(Count(nat, "-j KUBE-SERVICES"), 2u);     // PREROUTING, OUTPUT
    for (int i = 0; i < 300; i += 2) st.services.erase("ns/s" + std::to_string(i));
    backend.Sync(st, full);
    nat = Nat();
    EXPECT_EQ(Count(nat, ":KUBE-SVC-"), 150u);
    EXPECT_EQ(Count(nat, ":KUBE-SEP-"), 450u);
    EXPECT_EQ(Count(nat, "-A KUBE-SERVICES "), 151u);
    EXPECT_EQ(Count(nat, "-j KUBE-SERVICES"), 2u);
  });
}

// The KUBE- lines of iptables-save output (nat and filter), sorted: the rules whatever order the
// tool lists the chains in.
std::vector<std::string> KubeLines(const std::string& save_output) {
  std::vector<std::string> out;
  std::istringstream in(save_output);
  for (std::string line; std::getline(in, line);) {
    if (line.find("KUBE-") != std::string::npos) out.push_back(line);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Partial syncs write only the shared chains whose rules change (a one-endpoint change: none)
// and leave the tables as a full sync of the same state does.
TEST_P(BackendKernelTest, PartialSyncsLeaveWhatAFullSyncWould) {
  SLUICE_IN_FRESH_NETNS([&] {
    IptablesOptions o;
    o.variant = variant();
    o.families = {IpFamily::kV4};
    IptablesBackend backend(o);
    auto web = Port("web", "172.30.0.41", 80, {Ep("10.180.0.1", 8080), Ep("10.180.0.2", 8080)});
    auto db = Port("db", "172.30.0.42", 5432, {Ep("10.180.0.9", 5432)});
    state::NodeState st;
    for (auto* p : {&web, &db}) {
      auto s = Svc(*p);
      st.services[s->key] = s;
    }
    state::NodeStateChange full;
    full.full = true;
    backend.Sync(st, full);
    const auto both = [&] {
      return KubeLines(Nat() + RunCommand({tools_.save, "-t", "filter"}));
    };
    auto change = [&](const std::string& key, state::ServiceStatePtr after) {
      state::NodeStateChange partial;
      partial.services.push_back(state::ServiceDiff{
          key, st.services.contains(key) ? st.services.at(key) : nullptr, after});
      if (after) {
        st.services[key] = after;
      } else {
        st.services.erase(key);
      }
      backend.Sync(st, partial);
      EXPECT_FALSE(backend.last_sync().full);
    };

    // One endpoint replaced: web's chains alone, a few hundred bytes.
    web.cluster_endpoints[1] = Ep("10.180.0.3", 8080);
    change("ns/web", Svc(web));
    EXPECT_EQ(backend.last_sync().tool_runs, 1u);
    EXPECT_LT(backend.last_sync().bytes, 1500u);
    const std::vector<std::string> after_endpoint = both();
    EXPECT_TRUE(Has(Nat(), "--to-destination 10.180.0.3:8080")) << Nat();
    // web loses its endpoints (REJECT in filter KUBE-SERVICES), db goes, a NodePort comes.
    change("ns/web", Svc(Port("web", "172.30.0.41", 80, {})));
    change("ns/db", nullptr);
    auto np = Port("np", "172.30.0.50", 80, {Ep("10.180.0.7", 80)});
    np.node_port = 30080;
    change("ns/np", Svc(np));
    const std::vector<std::string> after_partials = both();
    EXPECT_TRUE(Has(RunCommand({tools_.save, "-t", "filter"}), "ns/web:p has no endpoints"));
    EXPECT_TRUE(Has(Nat(), "-A KUBE-NODEPORTS")) << Nat();
    EXPECT_FALSE(Has(Nat(), "ns/db")) << Nat();
    backend.Sync(st, full);
    EXPECT_EQ(after_partials, both());
    EXPECT_NE(after_endpoint, after_partials);
  });
}

// `times` full syncs of a new IPv4 backend of `variant` to one Service, web (172.30.0.41:80 ->
// 10.180.0.1:8080); returns the name of the Service's cluster chain.
std::string FullSyncsOfOneService(Variant variant, int times) {
  IptablesOptions o;
  o.variant = variant;
  o.families = {IpFamily::kV4};
  IptablesBackend backend(o);
  const auto web = Port("web", "172.30.0.41", 80, {Ep("10.180.0.1", 8080)});
  state::NodeState st;
  auto s = Svc(web);
  st.services[s->key] = s;
  state::NodeStateChange full;
  full.full = true;
  for (int i = 0; i < times; ++i) backend.Sync(st, full);
  return ServicePortChainName(PortChain::kCluster, web.name);
}

// iptables-nft-save 1.8.9 overflows its stack on many chains created in name order (a
// restore of iptables-save's text makes them so): the backend gives its tools a larger stack.
// Here the stack is made small enough for 20,000 chains to crash the tool, which is checked
// first. The full sync that reads them then deletes them all (stale service chains), more than
// a section's worth with iptables-nft.
TEST_P(BackendKernelTest, FullSyncReadsAndDeletesManyChainsCreatedInNameOrder) {
  SLUICE_IN_FRESH_NETNS([&] {
    std::string text = "*nat\n";
    std::vector<std::string> chains;
    for (int i = 0; i < 20000; ++i) {
      chains.push_back("KUBE-SEP-ORDERED" + std::to_string(100000 + i));
    }
    for (const auto& c : chains) text += ":" + c + " - [0:0]\n";
    text += "COMMIT\n";
    const TextFile ordered(text);
    RunCommand({tools_.restore, "-w", "5", "--noflush", ordered.path()});
    rlimit small{rlim_t{1} << 20, RLIM_INFINITY};
    rlimit r{};
    ASSERT_EQ(getrlimit(RLIMIT_STACK, &r), 0);
    small.rlim_max = r.rlim_max;
    ASSERT_EQ(setrlimit(RLIMIT_STACK, &small), 0);
    if (variant() == Variant::kNft) {
      EXPECT_THROW(Nat(), std::runtime_error);  // the crash this is about
    }
    const std::string web = FullSyncsOfOneService(variant(), 1);
    const std::string nat = Nat();
    EXPECT_FALSE(Has(nat, "ORDERED")) << nat.substr(0, 2000);
    EXPECT_TRUE(Has(nat, ":" + web)) << nat;
  });
}

// iptables-nft-save 1.8.9 crashes on very large tables: a full sync then goes on without the
// read (jumps checked with -C) instead of failing forever.
TEST_P(BackendKernelTest, FullSyncWithoutASaveTool) {
  SLUICE_IN_FRESH_NETNS([&] {
    char tmpl[] = "/tmp/sluice-iptables-fakesave-XXXXXX";
    const std::string dir = mkdtemp(tmpl);
    const std::string fake = dir + "/" + (GetParam() == "legacy" ? "iptables-legacy-save"
                                                                 : "iptables-nft-save");
    std::ofstream(fake) << "#!/bin/sh\nkill -SEGV $$\n";
    chmod(fake.c_str(), 0755);
    const std::string path = dir + ":" + (getenv("PATH") ? getenv("PATH") : "/usr/sbin:/usr/bin");
    setenv("PATH", path.c_str(), 1);

    // The first sync inserts the jumps after -C said they were missing, the second finds them.
    const std::string web = FullSyncsOfOneService(variant(), 2);
    unlink(fake.c_str());
    rmdir(dir.c_str());
    const std::string nat = Nat();
    EXPECT_TRUE(Has(nat, ":" + web)) << nat;
    size_t jumps = 0;
    for (size_t at = nat.find("-A PREROUTING -m comment --comment \"kubernetes service portals\"");
         at != std::string::npos;
         at = nat.find("-A PREROUTING -m comment --comment \"kubernetes service portals\"",
                       at + 1)) {
      ++jumps;
    }
    EXPECT_EQ(jumps, 1u) << nat;
  });
}

std::string RouteLocalnet() {
  std::ifstream in("/proc/sys/net/ipv4/conf/all/route_localnet");
  std::string v;
  in >> v;
  return v;
}

// kube-proxy's localhost NodePorts: on, the backend sets route_localnet in its namespace, the
// NodePort dispatch takes in 127.0.0.0/8 and KUBE-FIREWALL guards it; off, none of that.
TEST_P(BackendKernelTest, LocalhostNodePortsSetRouteLocalnetAndTheGuard) {
  for (bool localhost : {false, true}) {
    SLUICE_IN_FRESH_NETNS([&] {
      ASSERT_EQ(RouteLocalnet(), "0");  // a fresh namespace's default
      IptablesOptions o;
      o.variant = variant();
      o.families = {IpFamily::kV4};
      o.localhost_nodeports = localhost;
      IptablesBackend backend(o);
      state::NodeState st;
      auto web = Port("web", "172.30.0.41", 80, {Ep("10.180.0.1", 8080)});
      web.node_port = 30080;
      auto s = Svc(web);
      st.services[s->key] = s;
      state::NodeStateChange full;
      full.full = true;
      backend.Sync(st, full);
      const std::string nat = Nat();
      const std::string filter = RunCommand({tools_.save, "-t", "filter"});
      EXPECT_EQ(RouteLocalnet(), localhost ? "1" : "0");
      // Off, the NodePort dispatch leaves out 127.0.0.0/8 (iptables-save prints the negation
      // first); on, it takes it in.
      EXPECT_EQ(Has(nat, "-A KUBE-SERVICES ! -d 127.0.0.0/8 -m comment --comment \"kubernetes "
                         "service nodeports;"),
                !localhost)
          << nat;
      EXPECT_TRUE(Has(nat, "--comment \"kubernetes service nodeports;")) << nat;
      EXPECT_EQ(Has(filter, "-A KUBE-FIREWALL ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment "
                            "--comment \"block incoming localnet connections\" -m conntrack ! "
                            "--ctstate RELATED,ESTABLISHED,DNAT -j DROP"),
                localhost)
          << filter;
      EXPECT_EQ(Has(filter, "-A INPUT -j KUBE-FIREWALL"), localhost) << filter;
      EXPECT_EQ(Has(filter, "-A OUTPUT -j KUBE-FIREWALL"), localhost) << filter;
    });
  }
}

INSTANTIATE_TEST_SUITE_P(Variants, BackendKernelTest, ::testing::Values("legacy", "nft"));

TEST(DetectVariantKernel, FollowsWhereTheRulesAre) {
  if (ToolsFor("legacy", IpFamily::kV4).iptables.empty() ||
      ToolsFor("nft", IpFamily::kV4).iptables.empty()) {
    GTEST_SKIP() << "needs both iptables variants";
  }
  SLUICE_IN_FRESH_NETNS([] {
    std::string why;
    EXPECT_EQ(DetectVariant(&why), Variant::kNft) << why;  // nothing anywhere: nft
    RunCommand({"iptables-legacy", "-t", "filter", "-A", "INPUT", "-s", "192.0.2.1", "-j",
                "ACCEPT"});
    EXPECT_EQ(DetectVariant(&why), Variant::kLegacy) << why;
    RunCommand({"iptables-nft", "-t", "mangle", "-N", "KUBE-IPTABLES-HINT"});
    EXPECT_EQ(DetectVariant(&why), Variant::kNft) << why;  // the kubelet's hint wins
  });
}

}  // namespace
}  // namespace sluice::proxy::iptables
