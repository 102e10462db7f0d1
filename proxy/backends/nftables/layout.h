// The nftables backend's ruleset as data: a pure function from NodeState to the chains, sets and
// map elements of one `inet` table. No kernel here: encode.h turns this into libnftnl objects, and
// RuleText prints it as nft syntax (the golden tests, the `nft -f` comparison of the benchmark,
// and what an operator sees with `nft list table inet sluice-proxy`).
//
// Layout (docs/nftables-backend.md draws it): base chains hook prerouting/output/postrouting
// (nat) and prerouting/input/forward/output (filter); every service destination is one element
// of a verdict map keyed `daddr . l4proto . dport` (NodePorts: `l4proto . dport`) leading to the
// service port's chain, whose one rule picks an endpoint with
// `dnat to numgen random mod N offset K map @endpoints4-S`: the endpoints of every service port
// live in maps from slot number to `addr . port`, each port owning a block of slots
// [K, K + capacity). So a Service costs one map element per destination and per endpoint and one
// or two chains, and a change to one Service touches only its own objects: a one-endpoint change
// rewrites slots only. (A map per rule would make the kernel look each one up by name in a
// list of all sets: loading 10,000 of them takes 20 s.)
// Per-endpoint chains exist only for ClientIP session affinity (a timeout set per endpoint).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/ip_address.h"
#include "controlplane/api/service.h"
#include "controlplane/state/node_state.h"

namespace sluice::proxy::nftables {

inline constexpr std::string_view kTable = "sluice-proxy";
inline constexpr uint32_t kMasqueradeMark = 0x4000;

// Static chains every layout has.
inline constexpr std::string_view kServicesChain = "services";
inline constexpr std::string_view kMarkChain = "mark-for-masquerade";
inline constexpr std::string_view kMasqueradingChain = "masquerading";
inline constexpr std::string_view kRejectChain = "reject-chain";
inline constexpr std::string_view kFirewallCheckChain = "firewall-check";
inline constexpr std::string_view kEndpointsCheckChain = "service-endpoints-check";
inline constexpr std::string_view kNodePortEndpointsCheckChain = "nodeport-endpoints-check";
inline constexpr std::string_view kClusterIpsCheckChain = "cluster-ips-check";

struct LayoutOptions {
  // Traffic from outside these (one per family at most) to a ClusterIP is masqueraded; pods'
  // own traffic keeps its source. Empty: no local-traffic detection (as kube-proxy without
  // --cluster-cidr).
  std::vector<IpPrefix> cluster_cidrs;
  bool masquerade_all = false;
  // NodePorts answer on every local address (`fib daddr type local`, loopback excluded) or only
  // on the addresses in the nodeport-ips sets.
  bool nodeports_on_all_local_addresses = true;
  bool operator==(const LayoutOptions&) const = default;
};

// The verdict maps and sets of the table, per family.
enum class MapId : uint8_t {
  kServiceIps,           // daddr . l4proto . dport : goto svc/ext chain
  kNodePorts,            // l4proto . dport : goto ext chain
  kNoEndpointServices,   // daddr . l4proto . dport : goto reject-chain | drop
  kNoEndpointNodePorts,  // l4proto . dport : goto reject-chain | drop
  kFirewallIps,          // daddr . l4proto . dport : goto fw chain
};
inline constexpr MapId kAllMaps[] = {MapId::kServiceIps, MapId::kNodePorts,
                                     MapId::kNoEndpointServices, MapId::kNoEndpointNodePorts,
                                     MapId::kFirewallIps};
std::string MapName(MapId map, IpFamily family);  // "service-ips4", "no-endpoint-nodeports6"
bool MapHasAddress(MapId map);

// Plain sets of the table, per family.
enum class SetId : uint8_t {
  kClusterIps,   // ipv4_addr: every ClusterIP (traffic to an unknown port is rejected)
  kHairpin,      // ipv4_addr . ipv4_addr: (ep, ep) for local endpoints, masqueraded on hairpin
  kNodePortIps,  // ipv4_addr: where NodePorts answer (when not on every local address)
};
std::string SetName(SetId set, IpFamily family);  // "cluster-ips4", "hairpin6", ...

struct DnatTarget {
  IpAddress ip;
  uint16_t port = 0;
  auto operator<=>(const DnatTarget&) const = default;
};

// One statement of a rule. Matches first, then at most one terminal statement, as nft prints.
struct Stmt {
  enum class Op : uint8_t {
    // matches
    kSaddrPrefix,      // ip saddr [!=] prefix            (family, prefix, flag = negate)
    kFibSaddrLocal,    // fib saddr type local
    kFibDaddrLocal,    // fib daddr type local
    kDaddrNotLoopback,  // ip daddr != 127.0.0.0/8 | ip6 daddr != ::1   (family)
    kL4proto,          // meta l4proto tcp                (proto)
    kCtStateNew,       // ct state new
    kCtStateInvalid,   // ct state invalid
    kCtStatusDnat,     // ct status dnat
    kMarkUnset,        // meta mark & 0x4000 == 0
    kSaddrInSet,       // ip saddr @name                 (family, name)
    kDaddrInSet,       // ip daddr @name                 (family, name)
    kSaddrDaddrInSet,  // ip saddr . ip daddr @name      (family, name)
    // terminal lookups
    kVmapDaddrProtoPort,  // ip daddr . meta l4proto . th dport vmap @name   (family, name)
    kVmapProtoPort,       // meta l4proto . th dport vmap @name              (name)
    kNumgenVmap,          // numgen random mod N vmap { i : goto chain_i }   (chains)
    // statements
    kUpdateSaddrSet,   // update @name { ip saddr }      (family, name)
    kSetMark,          // meta mark set meta mark or 0x4000
    kClearMark,        // meta mark set meta mark xor 0x4000
    kJump,             // jump name
    kGoto,             // goto name
    kReturn,
    kDrop,
    kRejectTcpReset,   // reject with tcp reset
    kRejectIcmpx,      // reject with icmpx port-unreachable
    kMasquerade,       // masquerade [fully-random]      (flag = fully random)
    kDnat,             // dnat ip to a:p | numgen random mod N map { i : a . p }  (family, targets)
    // kDnat with several targets as the backend writes it, once its block of slots is known:
    // dnat ip to numgen random mod N offset K map @endpoints4     (family, count, offset)
    kDnatMap,
  };
  Op op;
  IpFamily family = IpFamily::kV4;
  bool flag = false;
  api::Protocol proto = api::Protocol::kTcp;
  IpPrefix prefix;
  std::string name;
  std::vector<DnatTarget> targets;
  std::vector<std::string> chains;
  // kDnat with several targets: which endpoint list of its chain it picks from (a chain may pick
  // from two: all endpoints and local ones). kDnatMap: the block's first slot and the count.
  uint8_t block = 0;
  uint32_t offset = 0;
  uint32_t count = 0;
  uint32_t capacity = 0;  // kDnatMap: the block's size (kept in the rule's user data, not printed)

  bool operator==(const Stmt&) const = default;
};
using Rule = std::vector<Stmt>;

struct Chain {
  std::string name;
  std::vector<Rule> rules;
  // Base chains only: "nat"/"filter", the NF_INET_* hook and the priority.
  std::string type;
  uint32_t hook = 0;
  int32_t priority = 0;
  bool base() const { return !type.empty(); }
  bool operator==(const Chain&) const = default;
};

// A ClientIP affinity set: source addresses seen recently for one endpoint of one service port.
struct AffinitySet {
  std::string name;
  IpFamily family = IpFamily::kV4;
  uint32_t timeout_seconds = 0;
  bool operator==(const AffinitySet&) const = default;
};

// Where a map element sends matching packets.
struct ElementVerdict {
  bool drop = false;  // else: goto `chain`
  std::string chain;
  bool operator==(const ElementVerdict&) const = default;
};

struct ElementKey {
  MapId map;
  IpFamily family = IpFamily::kV4;
  IpAddress ip;  // unset for the NodePort maps
  api::Protocol proto = api::Protocol::kTcp;
  uint16_t port = 0;
  auto operator<=>(const ElementKey&) const = default;
};

struct Element {
  ElementKey key;
  ElementVerdict verdict;
  bool operator==(const Element&) const = default;
};

// One slot of the endpoints map (`endpoints4`: slot -> addr . port).
struct EndpointSlot {
  IpFamily family = IpFamily::kV4;
  uint32_t slot = 0;
  DnatTarget target;
  auto operator<=>(const EndpointSlot&) const = default;
};
// The endpoints maps are sharded by slot: map N holds slots [N * kSlotsPerMap, (N+1) *
// kSlotsPerMap) (a block larger than that has its shards to itself). The kernel walks every
// rule bound to a map for each element added to it, and every element for each rule bound: one
// map for all Services would cost elements x rules (15 s at 10,000 Services); shards keep both
// small, while few enough maps keep the kernel's by-name set lookups short.
inline constexpr uint32_t kSlotsPerMap = 1024;
inline uint32_t SlotShard(uint32_t slot) { return slot / kSlotsPerMap; }
std::string EndpointsMapName(IpFamily family, uint32_t shard);  // "endpoints4-0", ...
// The shard of an endpoints map name, or nullopt for any other name.
std::optional<std::pair<IpFamily, uint32_t>> ParseEndpointsMapName(std::string_view name);

// A block of endpoint slots a multi-endpoint kDnat needs: named "<chain>#<block>".
struct BlockNeed {
  IpFamily family = IpFamily::kV4;
  std::string key;
  uint32_t count = 0;
};

// Everything one Service owns in the table.
struct ServiceObjects {
  std::vector<Chain> chains;
  std::vector<AffinitySet> affinity_sets;
  std::vector<Element> elements;
  // Members of the shared sets (counted across Services by the backend).
  std::vector<IpAddress> cluster_ips;
  std::vector<IpAddress> hairpin_ips;  // local endpoints: element (ip . ip) of the hairpin set
  // Filled by BindEndpointBlocks: the slots the bound kDnatMap statements read.
  std::vector<EndpointSlot> slots;
};

// The blocks RenderService's multi-endpoint kDnat statements need.
std::vector<BlockNeed> EndpointBlockNeeds(const ServiceObjects& objects);
// Rewrites each multi-endpoint kDnat into kDnatMap in the block `block_of(family, key)` gives
// (a pair: first slot, capacity), and fills `objects.slots`.
template <typename BlockOf>
void BindEndpointBlocks(ServiceObjects& objects, BlockOf&& block_of) {
  for (auto& chain : objects.chains) {
    for (auto& rule : chain.rules) {
      for (auto& s : rule) {
        if (s.op != Stmt::Op::kDnat || s.targets.size() < 2) continue;
        const auto [offset, capacity] =
            block_of(s.family, chain.name + "#" + std::to_string(s.block));
        for (uint32_t i = 0; i < s.targets.size(); ++i) {
          objects.slots.push_back(EndpointSlot{s.family, offset + i, s.targets[i]});
        }
        s.op = Stmt::Op::kDnatMap;
        s.offset = offset;
        s.capacity = capacity;
        s.count = static_cast<uint32_t>(s.targets.size());
        s.targets.clear();
      }
    }
  }
}

ServiceObjects RenderService(const state::ServiceState& service, const LayoutOptions& options);

// The static part: base and helper chains with their rules (sets and maps are implied by the
// families: every MapId and SetId exists for both).
std::vector<Chain> RenderBaseChains(const LayoutOptions& options);

// Names: "svc4-<ns>/<name>/<proto>/<port>" (ClusterIP path), "ext4-..." (external path),
// "fw4-..." (loadBalancerSourceRanges), "ep4-...__<ip>/<port>" and
// "aff4-...__<ip>/<port>__<timeout>s" (affinity). <port> is the port's name, or its number when unnamed; IPv6 colons print as '.'.
std::string ServicePortTag(const state::ServicePortState& port);
bool IsServiceChain(std::string_view chain);  // one of the per-service prefixes above
bool IsAffinitySet(std::string_view set);

// nft syntax.
std::string RuleText(const Rule& rule);
std::string ElementText(const Element& element);
// The whole table as `nft -f` input ("table inet sluice-proxy { ... }").
std::string TableText(const std::vector<Chain>& base_chains,
                      const std::vector<ServiceObjects>& services, const LayoutOptions& options);

}  // namespace sluice::proxy::nftables
