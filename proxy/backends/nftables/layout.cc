#include "proxy/backends/nftables/layout.h"

#include <linux/netfilter.h>

#include <algorithm>
#include <map>
#include <set>
#include <sstream>

namespace sluice::proxy::nftables {
namespace {

using Op = Stmt::Op;

std::string_view FamilySuffix(IpFamily f) { return f == IpFamily::kV4 ? "4" : "6"; }
std::string_view IpKeyword(IpFamily f) { return f == IpFamily::kV4 ? "ip" : "ip6"; }

std::string ProtoName(api::Protocol p) {
  switch (p) {
    case api::Protocol::kTcp: return "tcp";
    case api::Protocol::kUdp: return "udp";
    case api::Protocol::kSctp: return "sctp";
  }
  return "tcp";
}

Stmt Make(Op op) { return Stmt{.op = op}; }
Stmt Named(Op op, IpFamily f, std::string name) {
  Stmt s{.op = op, .family = f};
  s.name = std::move(name);
  return s;
}
Stmt Jump(std::string_view chain) { return Named(Op::kJump, IpFamily::kV4, std::string(chain)); }
Stmt Goto(std::string_view chain) { return Named(Op::kGoto, IpFamily::kV4, std::string(chain)); }
Stmt SaddrPrefix(const IpPrefix& p, bool negate) {
  Stmt s{.op = Op::kSaddrPrefix, .family = p.family(), .flag = negate};
  s.prefix = p;
  return s;
}
Stmt L4proto(api::Protocol p) { return Stmt{.op = Op::kL4proto, .proto = p}; }

// An address as it may appear inside a chain or set name.
std::string NameSafe(const IpAddress& ip) {
  std::string s = ip.ToString();
  std::replace(s.begin(), s.end(), ':', '.');
  return s;
}

const IpPrefix* CidrFor(const LayoutOptions& o, IpFamily f) {
  for (const auto& c : o.cluster_cidrs) {
    if (c.family() == f) return &c;
  }
  return nullptr;
}

std::vector<Stmt> NodePortMatch(const LayoutOptions& o, IpFamily f) {
  if (o.nodeports_on_all_local_addresses) {
    return {Make(Op::kFibDaddrLocal), Stmt{.op = Op::kDaddrNotLoopback, .family = f}};
  }
  return {Named(Op::kDaddrInSet, f, SetName(SetId::kNodePortIps, f))};
}

// Builds one service port's chains and elements.
class PortRenderer {
 public:
  PortRenderer(const state::ServicePortState& p, const LayoutOptions& o, ServiceObjects& out,
               std::map<std::string, size_t>& chain_index)
      : p_(p), o_(o), out_(out), chain_index_(chain_index), tag_(ServicePortTag(p)) {}

  void Render() {
    const IpFamily f = p_.family;
    const std::string fs(FamilySuffix(f));
    out_.cluster_ips.push_back(p_.cluster_ip);

    // ClusterIP path.
    if (p_.internal_verdict == state::TrafficVerdict::kForward) {
      const std::string svc = "svc" + fs + "-" + tag_;
      AddChain(svc);
      if (o_.masquerade_all) {
        Rules(svc).push_back({Jump(kMarkChain)});
      } else if (const IpPrefix* cidr = CidrFor(o_, f)) {
        Rules(svc).push_back({SaddrPrefix(*cidr, true), Jump(kMarkChain)});
      }
      Select(svc, {}, p_.internal_endpoints());
      AddElement(MapId::kServiceIps, p_.cluster_ip, p_.port, Forward(svc));
    } else {
      AddElement(MapId::kNoEndpointServices, p_.cluster_ip, p_.port, Blocked(p_.internal_verdict));
    }

    if (!p_.externally_accessible()) return;
    ElementVerdict external;
    bool ext_to_service_map = true;
    if (p_.external_verdict == state::TrafficVerdict::kForward) {
      const std::string ext = "ext" + fs + "-" + tag_;
      AddChain(ext);
      if (!p_.external_policy_local) {
        Rules(ext).push_back({Jump(kMarkChain)});
        Select(ext, {}, p_.cluster_endpoints);
      } else {
        // Local policy: outside clients keep their source and reach local endpoints only; pods
        // and the node itself (which kube-proxy short-circuits) may use any endpoint.
        if (!p_.cluster_endpoints.empty()) {
          if (const IpPrefix* cidr = CidrFor(o_, f)) {
            Select(ext, {SaddrPrefix(*cidr, false)}, p_.cluster_endpoints);
          }
          Rules(ext).push_back({Make(Op::kFibSaddrLocal), Jump(kMarkChain)});
          Select(ext, {Make(Op::kFibSaddrLocal)}, p_.cluster_endpoints);
        }
        Select(ext, {}, p_.local_endpoints);
      }
      external = Forward(ext);
    } else {
      external = Blocked(p_.external_verdict);
      ext_to_service_map = false;
    }
    const MapId dest_map = ext_to_service_map ? MapId::kServiceIps : MapId::kNoEndpointServices;
    for (const IpAddress& ip : p_.external_ips) AddElement(dest_map, ip, p_.port, external);
    std::vector<IpPrefix> ranges;
    for (const auto& r : p_.load_balancer_source_ranges) {
      if (r.family() == f) ranges.push_back(r);
    }
    for (const IpAddress& ip : p_.load_balancer_ips) {
      AddElement(dest_map, ip, p_.port, external);
      if (!ranges.empty()) {
        const std::string fw = "fw" + fs + "-" + tag_;
        if (!chain_index_.contains(fw)) {
          AddChain(fw);
          for (const auto& r : ranges) {
            Rules(fw).push_back({SaddrPrefix(r, false), Make(Op::kReturn)});
          }
          Rules(fw).push_back({Make(Op::kDrop)});
        }
        AddElement(MapId::kFirewallIps, ip, p_.port, Forward(fw));
      }
    }
    if (p_.node_port != 0) {
      AddElement(ext_to_service_map ? MapId::kNodePorts : MapId::kNoEndpointNodePorts, IpAddress(),
                 p_.node_port, external);
    }
  }

 private:
  // Which endpoint list of `chain` `targets` is (equal lists share a block of slots).
  uint8_t BlockIndex(const std::string& chain, const std::vector<DnatTarget>& targets) {
    auto& lists = block_lists_[chain];
    for (size_t i = 0; i < lists.size(); ++i) {
      if (lists[i] == targets) return static_cast<uint8_t>(i);
    }
    lists.push_back(targets);
    return static_cast<uint8_t>(lists.size() - 1);
  }

  // Chains are addressed by name: adding one may move the others.
  void AddChain(const std::string& name) {
    auto [it, inserted] = chain_index_.emplace(name, out_.chains.size());
    if (inserted) out_.chains.push_back(Chain{.name = name});
  }
  std::vector<Rule>& Rules(const std::string& chain) {
    return out_.chains[chain_index_.at(chain)].rules;
  }

  static ElementVerdict Forward(const std::string& chain) { return ElementVerdict{false, chain}; }
  static ElementVerdict Blocked(state::TrafficVerdict v) {
    return v == state::TrafficVerdict::kDrop ? ElementVerdict{true, ""}
                                             : ElementVerdict{false, std::string(kRejectChain)};
  }

  void AddElement(MapId map, const IpAddress& ip, uint16_t port, ElementVerdict verdict) {
    ElementKey key{.map = map, .family = p_.family, .ip = ip, .proto = p_.name.protocol,
                   .port = port};
    if (!MapHasAddress(map)) key.ip = IpAddress();
    for (const Element& e : out_.elements) {
      if (e.key == key) return;  // the same address listed twice (say, as external IP and LB IP)
    }
    out_.elements.push_back(Element{key, std::move(verdict)});
  }

  // Rules in `chain` that send the packet to one of `endpoints` (uniformly at random, or to the
  // endpoint the client's address is remembered with), each rule starting with `prefix`.
  void Select(const std::string& chain, const std::vector<Stmt>& prefix,
              const std::vector<state::Endpoint>& endpoints) {
    if (endpoints.empty()) return;
    if (p_.affinity_timeout_seconds == 0) {
      Rule rule = prefix;
      rule.push_back(L4proto(p_.name.protocol));
      Stmt dnat{.op = Op::kDnat, .family = p_.family};
      for (const auto& e : endpoints) dnat.targets.push_back(DnatTarget{e.ip, e.port});
      dnat.block = BlockIndex(chain, dnat.targets);
      rule.push_back(std::move(dnat));
      Rules(chain).push_back(std::move(rule));
      return;
    }
    std::vector<std::string> endpoint_chains;
    for (const auto& e : endpoints) {
      const std::string suffix = tag_ + "__" + NameSafe(e.ip) + "/" + std::to_string(e.port);
      const std::string fs(FamilySuffix(p_.family));
      // The timeout is part of the name: a changed timeout is a new set (a set's timeout cannot
      // change in place), and the rules naming it change with it.
      const std::string set = "aff" + fs + "-" + suffix + "__" +
                              std::to_string(p_.affinity_timeout_seconds) + "s";
      const std::string ep = "ep" + fs + "-" + suffix;
      if (!chain_index_.contains(ep)) {
        AddChain(ep);
        Rules(ep).push_back({Named(Op::kUpdateSaddrSet, p_.family, set)});
        Stmt dnat{.op = Op::kDnat, .family = p_.family};
        dnat.targets.push_back(DnatTarget{e.ip, e.port});
        Rules(ep).push_back({L4proto(p_.name.protocol), std::move(dnat)});
        out_.affinity_sets.push_back(AffinitySet{set, p_.family, p_.affinity_timeout_seconds});
      }
      Rule rule = prefix;
      rule.push_back(Named(Op::kSaddrInSet, p_.family, set));
      rule.push_back(Goto(ep));
      endpoint_chains.push_back(ep);
      Rules(chain).push_back(std::move(rule));
    }
    Rule rule = prefix;
    if (endpoint_chains.size() == 1) {
      rule.push_back(Goto(endpoint_chains.front()));
    } else {
      Stmt vmap{.op = Op::kNumgenVmap};
      vmap.chains = std::move(endpoint_chains);
      rule.push_back(std::move(vmap));
    }
    Rules(chain).push_back(std::move(rule));
  }

  const state::ServicePortState& p_;
  const LayoutOptions& o_;
  ServiceObjects& out_;
  std::map<std::string, size_t>& chain_index_;
  std::string tag_;
  std::map<std::string, std::vector<std::vector<DnatTarget>>> block_lists_;
};

std::string PrefixText(const IpPrefix& p) {
  return p.length() == p.address().bits() ? p.address().ToString() : p.Network().ToString();
}

std::string TargetText(IpFamily f, const DnatTarget& t) {
  return f == IpFamily::kV4 ? t.ip.ToString() + ":" + std::to_string(t.port)
                            : "[" + t.ip.ToString() + "]:" + std::to_string(t.port);
}

}  // namespace

std::string MapName(MapId map, IpFamily family) {
  std::string base;
  switch (map) {
    case MapId::kServiceIps: base = "service-ips"; break;
    case MapId::kNodePorts: base = "service-nodeports"; break;
    case MapId::kNoEndpointServices: base = "no-endpoint-services"; break;
    case MapId::kNoEndpointNodePorts: base = "no-endpoint-nodeports"; break;
    case MapId::kFirewallIps: base = "firewall-ips"; break;
  }
  return base + std::string(FamilySuffix(family));
}

bool MapHasAddress(MapId map) {
  return map != MapId::kNodePorts && map != MapId::kNoEndpointNodePorts;
}

std::string SetName(SetId set, IpFamily family) {
  std::string base;
  switch (set) {
    case SetId::kClusterIps: base = "cluster-ips"; break;
    case SetId::kHairpin: base = "hairpin"; break;
    case SetId::kNodePortIps: base = "nodeport-ips"; break;
  }
  return base + std::string(FamilySuffix(family));
}

std::string ServicePortTag(const state::ServicePortState& port) {
  const std::string port_part =
      port.name.port.empty() ? std::to_string(port.port) : port.name.port;
  return port.name.namespace_name + "/" + port.name.name + "/" + ProtoName(port.name.protocol) +
         "/" + port_part;
}

bool IsServiceChain(std::string_view chain) {
  for (std::string_view prefix : {"svc4-", "svc6-", "ext4-", "ext6-", "fw4-", "fw6-", "ep4-",
                                  "ep6-"}) {
    if (chain.starts_with(prefix)) return true;
  }
  return false;
}

bool IsAffinitySet(std::string_view set) {
  return set.starts_with("aff4-") || set.starts_with("aff6-");
}

ServiceObjects RenderService(const state::ServiceState& service, const LayoutOptions& options) {
  ServiceObjects out;
  std::map<std::string, size_t> chain_index;
  for (const auto& port : service.ports) {
    PortRenderer(port, options, out, chain_index).Render();
  }
  std::sort(out.cluster_ips.begin(), out.cluster_ips.end());
  out.cluster_ips.erase(std::unique(out.cluster_ips.begin(), out.cluster_ips.end()),
                        out.cluster_ips.end());
  for (const auto& port : service.ports) {
    for (const auto& e : port.AllReachableEndpoints()) {
      if (e.local) out.hairpin_ips.push_back(e.ip);
    }
  }
  std::sort(out.hairpin_ips.begin(), out.hairpin_ips.end());
  out.hairpin_ips.erase(std::unique(out.hairpin_ips.begin(), out.hairpin_ips.end()),
                        out.hairpin_ips.end());
  return out;
}

std::vector<Chain> RenderBaseChains(const LayoutOptions& options) {
  std::vector<Chain> chains;
  auto base = [&](std::string name, std::string type, uint32_t hook, int32_t priority,
                  std::vector<Rule> rules) {
    chains.push_back(Chain{.name = std::move(name), .rules = std::move(rules),
                           .type = std::move(type), .hook = hook, .priority = priority});
  };
  auto plain = [&](std::string_view name, std::vector<Rule> rules) {
    chains.push_back(Chain{.name = std::string(name), .rules = std::move(rules)});
  };
  const Stmt ct_new = Make(Op::kCtStateNew);
  // nat: DNAT before routing (prerouting for forwarded traffic, output for the node's own),
  // masquerade after it.
  base("nat-prerouting", "nat", NF_INET_PRE_ROUTING, -100, {{Jump(kServicesChain)}});
  base("nat-output", "nat", NF_INET_LOCAL_OUT, -100, {{Jump(kServicesChain)}});
  base("nat-postrouting", "nat", NF_INET_POST_ROUTING, 100, {{Jump(kMasqueradingChain)}});
  // filter before DNAT: loadBalancerSourceRanges; after it: no endpoints, invalid ports.
  base("filter-prerouting", "filter", NF_INET_PRE_ROUTING, -110,
       {{ct_new, Jump(kFirewallCheckChain)}});
  base("filter-output", "filter", NF_INET_LOCAL_OUT, -110, {{ct_new, Jump(kFirewallCheckChain)}});
  base("filter-input", "filter", NF_INET_LOCAL_IN, -1,
       {{ct_new, Jump(kNodePortEndpointsCheckChain)}, {ct_new, Jump(kEndpointsCheckChain)}});
  base("filter-forward", "filter", NF_INET_FORWARD, -1,
       {{Make(Op::kCtStateInvalid), Make(Op::kDrop)},
        {ct_new, Jump(kEndpointsCheckChain)},
        {ct_new, Jump(kClusterIpsCheckChain)}});
  base("filter-output-post-dnat", "filter", NF_INET_LOCAL_OUT, -90,
       {{ct_new, Jump(kEndpointsCheckChain)}, {ct_new, Jump(kClusterIpsCheckChain)}});

  std::vector<Rule> services, firewall, endpoints_check, nodeport_check, cluster_ips, masq;
  for (IpFamily f : {IpFamily::kV4, IpFamily::kV6}) {
    services.push_back({Named(Op::kVmapDaddrProtoPort, f, MapName(MapId::kServiceIps, f))});
    firewall.push_back({Named(Op::kVmapDaddrProtoPort, f, MapName(MapId::kFirewallIps, f))});
    endpoints_check.push_back(
        {Named(Op::kVmapDaddrProtoPort, f, MapName(MapId::kNoEndpointServices, f))});
    cluster_ips.push_back(
        {Named(Op::kDaddrInSet, f, SetName(SetId::kClusterIps, f)), Goto(kRejectChain)});
    masq.push_back({Make(Op::kCtStatusDnat),
                    Named(Op::kSaddrDaddrInSet, f, SetName(SetId::kHairpin, f)),
                    Stmt{.op = Op::kMasquerade, .flag = true}});
  }
  for (IpFamily f : {IpFamily::kV4, IpFamily::kV6}) {
    Rule r = NodePortMatch(options, f);
    r.push_back(Named(Op::kVmapProtoPort, f, MapName(MapId::kNodePorts, f)));
    services.push_back(std::move(r));
    Rule c = NodePortMatch(options, f);
    c.push_back(Named(Op::kVmapProtoPort, f, MapName(MapId::kNoEndpointNodePorts, f)));
    nodeport_check.push_back(std::move(c));
  }
  masq.push_back({Make(Op::kMarkUnset), Make(Op::kReturn)});
  masq.push_back({Make(Op::kClearMark)});
  masq.push_back({Stmt{.op = Op::kMasquerade, .flag = true}});

  plain(kServicesChain, std::move(services));
  plain(kFirewallCheckChain, std::move(firewall));
  plain(kEndpointsCheckChain, std::move(endpoints_check));
  plain(kNodePortEndpointsCheckChain, std::move(nodeport_check));
  plain(kClusterIpsCheckChain, std::move(cluster_ips));
  plain(kRejectChain, {{L4proto(api::Protocol::kTcp), Make(Op::kRejectTcpReset)},
                       {Make(Op::kRejectIcmpx)}});
  plain(kMarkChain, {{Make(Op::kSetMark)}});
  plain(kMasqueradingChain, std::move(masq));
  return chains;
}

std::string RuleText(const Rule& rule) {
  std::string out;
  auto add = [&](const std::string& s) {
    if (!out.empty()) out += ' ';
    out += s;
  };
  for (const Stmt& s : rule) {
    const std::string ip(IpKeyword(s.family));
    switch (s.op) {
      case Op::kSaddrPrefix:
        add(ip + " saddr " + (s.flag ? "!= " : "") + PrefixText(s.prefix));
        break;
      case Op::kFibSaddrLocal: add("fib saddr type local"); break;
      case Op::kFibDaddrLocal: add("fib daddr type local"); break;
      case Op::kDaddrNotLoopback:
        add(s.family == IpFamily::kV4 ? "ip daddr != 127.0.0.0/8" : "ip6 daddr != ::1");
        break;
      case Op::kL4proto: add("meta l4proto " + ProtoName(s.proto)); break;
      case Op::kCtStateNew: add("ct state new"); break;
      case Op::kCtStateInvalid: add("ct state invalid"); break;
      case Op::kCtStatusDnat: add("ct status dnat"); break;
      case Op::kMarkUnset: add("meta mark & 0x00004000 == 0x00000000"); break;
      case Op::kSaddrInSet: add(ip + " saddr @" + s.name); break;
      case Op::kDaddrInSet: add(ip + " daddr @" + s.name); break;
      case Op::kSaddrDaddrInSet: add(ip + " saddr . " + ip + " daddr @" + s.name); break;
      case Op::kVmapDaddrProtoPort:
        add(ip + " daddr . meta l4proto . th dport vmap @" + s.name);
        break;
      case Op::kVmapProtoPort:
        // The map holds one family's chains: the family match keeps the other one out.
        add("meta nfproto " + std::string(s.family == IpFamily::kV4 ? "ipv4" : "ipv6") +
            " meta l4proto . th dport vmap @" + s.name);
        break;
      case Op::kNumgenVmap: {
        std::string m = "numgen random mod " + std::to_string(s.chains.size()) + " vmap { ";
        for (size_t i = 0; i < s.chains.size(); ++i) {
          if (i) m += ", ";
          m += std::to_string(i) + " : goto " + s.chains[i];
        }
        add(m + " }");
        break;
      }
      case Op::kUpdateSaddrSet: add("update @" + s.name + " { " + ip + " saddr }"); break;
      case Op::kSetMark: add("meta mark set meta mark | 0x00004000"); break;
      case Op::kClearMark: add("meta mark set meta mark ^ 0x00004000"); break;
      case Op::kJump: add("jump " + s.name); break;
      case Op::kGoto: add("goto " + s.name); break;
      case Op::kReturn: add("return"); break;
      case Op::kDrop: add("drop"); break;
      case Op::kRejectTcpReset: add("reject with tcp reset"); break;
      case Op::kRejectIcmpx: add("reject with icmpx port-unreachable"); break;
      case Op::kMasquerade: add(s.flag ? "masquerade fully-random" : "masquerade"); break;
      case Op::kDnat:
        if (s.targets.size() == 1) {
          add("dnat " + ip + " to " + TargetText(s.family, s.targets.front()));
        } else {
          std::string m = "dnat " + ip + " to numgen random mod " +
                          std::to_string(s.targets.size()) + " map { ";
          for (size_t i = 0; i < s.targets.size(); ++i) {
            if (i) m += ", ";
            m += std::to_string(i) + " : " + s.targets[i].ip.ToString() + " . " +
                 std::to_string(s.targets[i].port);
          }
          add(m + " }");
        }
        break;
      case Op::kDnatMap:
        add("dnat " + ip + " to numgen random mod " + std::to_string(s.count) +
            (s.offset != 0 ? " offset " + std::to_string(s.offset) : std::string()) + " map @" +
            EndpointsMapName(s.family, SlotShard(s.offset)));
        break;
    }
  }
  return out;
}

std::string EndpointsMapName(IpFamily family, uint32_t shard) {
  return std::string("endpoints") + std::string(FamilySuffix(family)) + "-" +
         std::to_string(shard);
}

std::optional<std::pair<IpFamily, uint32_t>> ParseEndpointsMapName(std::string_view name) {
  IpFamily f;
  if (name.starts_with("endpoints4-")) {
    f = IpFamily::kV4;
  } else if (name.starts_with("endpoints6-")) {
    f = IpFamily::kV6;
  } else {
    return std::nullopt;
  }
  name.remove_prefix(11);
  if (name.empty() || name.size() > 9) return std::nullopt;
  uint32_t shard = 0;
  for (char c : name) {
    if (c < '0' || c > '9') return std::nullopt;
    shard = shard * 10 + static_cast<uint32_t>(c - '0');
  }
  return std::make_pair(f, shard);
}

std::vector<BlockNeed> EndpointBlockNeeds(const ServiceObjects& objects) {
  std::vector<BlockNeed> out;
  for (const auto& chain : objects.chains) {
    for (const auto& rule : chain.rules) {
      for (const auto& s : rule) {
        if (s.op != Stmt::Op::kDnat || s.targets.size() < 2) continue;
        std::string key = chain.name + "#" + std::to_string(s.block);
        if (std::none_of(out.begin(), out.end(), [&](const BlockNeed& b) { return b.key == key; })) {
          out.push_back(BlockNeed{s.family, std::move(key), static_cast<uint32_t>(s.targets.size())});
        }
      }
    }
  }
  return out;
}

std::string ElementText(const Element& e) {
  std::string key;
  if (MapHasAddress(e.key.map)) key = e.key.ip.ToString() + " . ";
  key += ProtoName(e.key.proto) + " . " + std::to_string(e.key.port);
  return key + " : " + (e.verdict.drop ? std::string("drop") : "goto " + e.verdict.chain);
}

std::string TableText(const std::vector<Chain>& base_chains,
                      const std::vector<ServiceObjects>& services, const LayoutOptions& options) {
  std::ostringstream out;
  out << "table inet " << kTable << " {\n";
  for (IpFamily f : {IpFamily::kV4, IpFamily::kV6}) {
    const std::string addr = f == IpFamily::kV4 ? "ipv4_addr" : "ipv6_addr";
    for (MapId m : kAllMaps) {
      out << "  map " << MapName(m, f) << " { type "
          << (MapHasAddress(m) ? addr + " . " : std::string()) << "inet_proto . inet_service"
          << " : verdict; }\n";
    }
    out << "  set " << SetName(SetId::kClusterIps, f) << " { type " << addr << "; }\n";
    out << "  set " << SetName(SetId::kHairpin, f) << " { type " << addr << " . " << addr
        << "; }\n";
    if (!options.nodeports_on_all_local_addresses) {
      out << "  set " << SetName(SetId::kNodePortIps, f) << " { type " << addr << "; }\n";
    }
  }
  std::set<std::pair<IpFamily, uint32_t>> shards;
  for (const auto& svc : services) {
    for (const auto& slot : svc.slots) shards.emplace(slot.family, SlotShard(slot.slot));
  }
  for (const auto& [f, shard] : shards) {
    out << "  map " << EndpointsMapName(f, shard) << " { typeof numgen random mod 1 : "
        << (f == IpFamily::kV4 ? "ip" : "ip6") << " daddr . th dport; }\n";
  }
  for (const auto& svc : services) {
    for (const auto& s : svc.affinity_sets) {
      out << "  set " << s.name << " { type "
          << (s.family == IpFamily::kV4 ? "ipv4_addr" : "ipv6_addr")
          << "; flags dynamic,timeout; timeout " << s.timeout_seconds << "s; }\n";
    }
  }
  auto chain_text = [&](const Chain& c) {
    out << "  chain " << c.name << " {\n";
    if (c.base()) {
      static const char* kHooks[] = {"prerouting", "input", "forward", "output", "postrouting"};
      out << "    type " << c.type << " hook " << kHooks[c.hook] << " priority " << c.priority
          << "; policy accept;\n";
    }
    for (const auto& r : c.rules) out << "    " << RuleText(r) << "\n";
    out << "  }\n";
  };
  // Chains are declared before any rule refers to them: helper chains first, base chains last.
  for (const auto& c : base_chains) {
    if (!c.base() && c.name != kServicesChain && c.name != kFirewallCheckChain &&
        c.name != kEndpointsCheckChain && c.name != kNodePortEndpointsCheckChain &&
        c.name != kClusterIpsCheckChain) {
      chain_text(c);
    }
  }
  for (const auto& svc : services) {
    // Endpoint chains before the chains that jump to them.
    for (const auto& c : svc.chains) {
      if (c.name.starts_with("ep")) out << "  chain " << c.name << " {\n  }\n";
    }
    for (const auto& c : svc.chains) chain_text(c);
  }
  for (const auto& c : base_chains) {
    if (!c.base() && (c.name == kServicesChain || c.name == kFirewallCheckChain ||
                      c.name == kEndpointsCheckChain || c.name == kNodePortEndpointsCheckChain ||
                      c.name == kClusterIpsCheckChain)) {
      chain_text(c);
    }
  }
  for (const auto& c : base_chains) {
    if (c.base()) chain_text(c);
  }
  out << "}\n";
  // Elements after the chains they name.
  std::map<std::string, std::vector<std::string>> by_map;
  for (const auto& svc : services) {
    for (const auto& e : svc.elements) {
      std::string key;
      if (MapHasAddress(e.key.map)) key = e.key.ip.ToString() + " . ";
      key += ProtoName(e.key.proto) + " . " + std::to_string(e.key.port);
      by_map[MapName(e.key.map, e.key.family)].push_back(
          key + " : " + (e.verdict.drop ? std::string("drop") : "goto " + e.verdict.chain));
    }
  }
  auto flush_elements = [&](const std::string& name, const std::vector<std::string>& elems) {
    // A few hundred per command keeps each under nft's and the kernel's message limits.
    for (size_t i = 0; i < elems.size(); i += 200) {
      out << "add element inet " << kTable << " " << name << " { ";
      for (size_t j = i; j < std::min(elems.size(), i + 200); ++j) {
        if (j > i) out << ", ";
        out << elems[j];
      }
      out << " }\n";
    }
  };
  for (const auto& svc : services) {
    for (const auto& slot : svc.slots) {
      by_map[EndpointsMapName(slot.family, SlotShard(slot.slot))].push_back(std::to_string(slot.slot) + " : " +
                                                      slot.target.ip.ToString() + " . " +
                                                      std::to_string(slot.target.port));
    }
  }
  for (const auto& [name, elems] : by_map) flush_elements(name, elems);
  std::map<std::string, std::vector<std::string>> members;
  for (const auto& svc : services) {
    for (const auto& ip : svc.cluster_ips) {
      members[SetName(SetId::kClusterIps, ip.family())].push_back(ip.ToString());
    }
    for (const auto& ip : svc.hairpin_ips) {
      members[SetName(SetId::kHairpin, ip.family())].push_back(ip.ToString() + " . " +
                                                               ip.ToString());
    }
  }
  for (auto& [name, elems] : members) {
    std::sort(elems.begin(), elems.end());
    elems.erase(std::unique(elems.begin(), elems.end()), elems.end());
    flush_elements(name, elems);
  }
  return out.str();
}

}  // namespace sluice::proxy::nftables
