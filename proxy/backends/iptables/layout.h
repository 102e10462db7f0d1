// The iptables backend's rules as a pure function of NodeState: kube-proxy's iptables layout,
// chain for chain and hash for hash, as `iptables-restore --noflush` input (one text per IP
// family: iptables for IPv4, ip6tables for IPv6). No I/O here; the backend runs the tools.
//
// Layout (kube-proxy's; an operator who knows it recognises every line):
//   nat    PREROUTING, OUTPUT -> KUBE-SERVICES: one rule per destination (ClusterIP, external IP,
//          LoadBalancer IP) jumping to the service port's KUBE-SVC-/KUBE-SVL-/KUBE-EXT-/KUBE-FW-
//          chain, and last the jump to KUBE-NODEPORTS (NodePort -> KUBE-EXT-).
//          KUBE-SVC-<h>: Cluster-policy endpoints, KUBE-SVL-<h>: Local-policy ones, picked with
//          `-m statistic --mode random --probability 1/n, 1/(n-1), ...` (ClientIP affinity first
//          sends remembered clients back with `-m recent --rcheck`); KUBE-EXT-<h>: external
//          destinations (masquerade under policy Cluster; under Local, pods and the node itself
//          short-circuit to KUBE-SVC-); KUBE-FW-<h>: loadBalancerSourceRanges.
//          KUBE-SEP-<h>: one endpoint: hairpin masquerade, then DNAT.
//          POSTROUTING -> KUBE-POSTROUTING masquerades what KUBE-MARK-MASQ marked.
//   filter INPUT/FORWARD/OUTPUT -> KUBE-SERVICES, KUBE-EXTERNAL-SERVICES, KUBE-NODEPORTS:
//          REJECT (no endpoints) or DROP (Local policy, none here) for destinations without
//          endpoints, health check node ports accepted; KUBE-PROXY-FIREWALL drops LoadBalancer
//          traffic KUBE-FW- did not let through; KUBE-FORWARD drops INVALID, accepts marked.
// <h> is base32(SHA-256("ns/name:port" + "tcp" [+ "10.0.0.1:80"]))[:16], kube-proxy's names,
// so chains are stable across restarts and the same as kube-proxy's on the same cluster.
//
// Syncs: the shared chains (KUBE-SERVICES, KUBE-EXTERNAL-SERVICES, KUBE-NODEPORTS,
// KUBE-PROXY-FIREWALL) hold one or a few rules per service port; a full sync writes them whole.
// A Service's own chains are written only when that Service changed (PartialRestoreText), as
// kube-proxy's partial syncs do. kube-proxy also rewrites every shared chain on every sync; a
// partial sync given what the shared chains now hold (SharedChainState) leaves out those it
// would write unchanged (a one-endpoint change leaves them all: at 30,000 Services nat
// KUBE-SERVICES alone is 4 MB of restore input, which iptables-nft-restore takes seconds over)
// and renders nothing but the changed Services. FullRestoreText is the same text for every
// Service plus the static chains (and the deletion of stale service chains found in the
// kernel).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/ip_address.h"
#include "controlplane/state/node_state.h"
#include "controlplane/state/node_state_tracker.h"

namespace sluice::proxy::iptables {

// kube-proxy's chain names.
inline constexpr std::string_view kServicesChain = "KUBE-SERVICES";  // nat and filter
inline constexpr std::string_view kExternalServicesChain = "KUBE-EXTERNAL-SERVICES";
inline constexpr std::string_view kNodePortsChain = "KUBE-NODEPORTS";  // nat and filter
inline constexpr std::string_view kProxyFirewallChain = "KUBE-PROXY-FIREWALL";
inline constexpr std::string_view kForwardChain = "KUBE-FORWARD";
inline constexpr std::string_view kFirewallChain = "KUBE-FIREWALL";  // localhost NodePorts only
inline constexpr std::string_view kPostroutingChain = "KUBE-POSTROUTING";
inline constexpr std::string_view kMarkMasqChain = "KUBE-MARK-MASQ";

// kube-proxy's largeClusterEndpointsThreshold.
inline constexpr size_t kLargeClusterEndpoints = 1000;

struct LayoutOptions {
  // Traffic from outside these (one per family at most) to a ClusterIP is masqueraded, and pods
  // inside them short-circuit externalTrafficPolicy Local. Empty: no local-traffic detection.
  std::vector<IpPrefix> cluster_cidrs;
  bool masquerade_all = false;
  // NodePorts answer on every local address (`-m addrtype --dst-type LOCAL`) or only on
  // `nodeport_addresses` (of the family being rendered).
  bool nodeports_on_all_local_addresses = true;
  std::vector<IpAddress> nodeport_addresses;
  // kube-proxy's --iptables-localhost-nodeports (IPv4 only): NodePorts also answer on
  // 127.0.0.0/8, which needs net.ipv4.conf.all.route_localnet=1 (the backend's job) and brings
  // KUBE-FIREWALL's guard against martian localnet traffic. Off: loopback is excluded.
  bool localhost_nodeports = false;
  // kube-proxy's large-cluster mode (more than kLargeClusterEndpoints endpoints in all): the
  // rules of KUBE-SEP- chains and the KUBE-SVC-/KUBE-SVL- rules choosing endpoints are written
  // without comments.
  bool large_cluster = false;
  // KUBE-MARK-MASQ sets it, KUBE-POSTROUTING masquerades packets carrying it.
  uint32_t masquerade_mark = 0x4000;
  // Above 0, the nat table is restored in several sections (transactions) of about this many
  // chains, whole Services each, the shared chains last: iptables-nft-restore 1.8.9 takes time
  // quadratic in the chains of one section. 0: one nat section (iptables-legacy-restore rewrites
  // the whole table for each section).
  size_t nat_section_chains = 0;
  bool operator==(const LayoutOptions&) const = default;
};

// Chain names. `service_port_name` is ServicePortName::ToString() ("ns/name:port"), `protocol`
// lower case ("tcp"), `endpoint` Endpoint::ToString() ("10.0.0.1:80", "[fd00::1]:80").
std::string PortProtoHash(std::string_view service_port_name, std::string_view protocol);
enum class PortChain : uint8_t {
  kCluster,   // KUBE-SVC-: Cluster-policy endpoints
  kLocal,     // KUBE-SVL-: Local-policy endpoints
  kExternal,  // KUBE-EXT-: NodePort, external IP and LoadBalancer traffic
  kFirewall,  // KUBE-FW-: loadBalancerSourceRanges
};
std::string ServicePortChainName(PortChain kind, const state::ServicePortName& name);
std::string EndpointChainName(const state::ServicePortName& name, const state::Endpoint& endpoint);
// KUBE-SVC-, KUBE-SVL-, KUBE-EXT-, KUBE-FW- or KUBE-SEP-: chains that belong to one Service.
bool IsServiceChain(std::string_view chain);

// The probability of the statistic match picking the first of `n` remaining endpoints, printed
// as kube-proxy prints it ("0.3333333333").
std::string Probability(size_t n);

// The shared chains a Service writes rules into.
enum class SharedChain : uint8_t {
  kFilterServices,          // filter KUBE-SERVICES: ClusterIPs without endpoints
  kFilterExternalServices,  // filter KUBE-EXTERNAL-SERVICES: external destinations without
  kFilterNodePorts,         // filter KUBE-NODEPORTS: health check node ports
  kFilterProxyFirewall,     // filter KUBE-PROXY-FIREWALL: LoadBalancer IPs behind source ranges
  kNatServices,             // nat KUBE-SERVICES: destinations -> service port chains
  kNatNodePorts,            // nat KUBE-NODEPORTS: NodePorts -> KUBE-EXT-
};
inline constexpr size_t kSharedChainCount = 6;

// Rules for each shared chain (by SharedChain).
using SharedChainRules = std::array<std::vector<std::string>, kSharedChainCount>;

// A chain with its rules, each a complete restore line ("-A KUBE-SVC-... -j KUBE-SEP-...").
struct Chain {
  std::string name;
  std::vector<std::string> rules;
  bool operator==(const Chain&) const = default;
};

// What one Service contributes to one family's ruleset.
struct ServiceRules {
  SharedChainRules shared;    // its rules in the shared chains
  std::vector<Chain> chains;  // its own nat chains, in the order they are written
  bool operator==(const ServiceRules&) const = default;
};

// What the shared chains hold after a restore text, Service by Service (each one's
// ServiceRules::shared), and what they were rendered under. Given it, a partial text renders
// the changed Services only and takes the others' shared rules from here: they are what the
// kernel holds as long as the options (but for nat_section_chains), the node and the family are
// the same (otherwise every Service is rendered again).
struct SharedChainState {
  bool known = false;  // false: never filled, or what the kernel holds is unknown
  IpFamily family = IpFamily::kV4;
  LayoutOptions options;
  state::NodeInfo node;
  // By Service key; a Service without rules in the shared chains has no entry.
  std::map<std::string, SharedChainRules, std::less<>> services;
  bool operator==(const SharedChainState&) const = default;
};

// The ports of `service` in `family`; `node` gives the node's addresses (a LoadBalancer source
// range containing one lets the node reach the LoadBalancer IP, as kube-proxy allows).
ServiceRules RenderService(const state::ServiceState& service, IpFamily family,
                           const LayoutOptions& options, const state::NodeInfo& node);

// A rule in a built-in chain jumping to ours, kube-proxy's list in its order (JumpRules). A full
// sync inserts the missing ones (HasJump) at the top of their chains: the last ends up first,
// as with kube-proxy's -C / -I.
struct JumpRule {
  std::string table;              // "filter", "nat"
  std::string chain;              // "INPUT", "PREROUTING", ...
  std::vector<std::string> spec;  // "-m", "conntrack", ..., "-j", "KUBE-SERVICES"
  bool operator==(const JumpRule&) const = default;
};

// Receives restore text piece by piece, whole lines, about a megabyte at a time.
using RestoreSink = std::function<void(std::string_view)>;

// Input for `iptables-restore --noflush` (`ip6tables-restore` for IPv6) programming everything:
// every chain of ours declared (which flushes it) and filled; nat chains are declared and filled
// in name order, as iptables-save prints them (the tools restore that order fastest). Service
// chains listed in `existing_nat_chains` (the nat table's chains now, from iptables-save) that
// no Service wants any more are deleted. `missing_jumps` are inserted by the same transaction
// ("-I" lines at the end of their table's section), so installing them costs no extra tool run.
// WriteFullRestore hands the text to `sink` as it is written (the backend streams it into the
// tool) and, given `shared`, sets it to what the shared chains hold after the text;
// FullRestoreText returns the text whole.
void WriteFullRestore(const state::NodeState& state, IpFamily family,
                      const LayoutOptions& options,
                      std::span<const std::string> existing_nat_chains,
                      std::span<const JumpRule> missing_jumps, const RestoreSink& sink,
                      SharedChainState* shared = nullptr);
std::string FullRestoreText(const state::NodeState& state, IpFamily family,
                            const LayoutOptions& options,
                            std::span<const std::string> existing_nat_chains = {},
                            std::span<const JumpRule> missing_jumps = {});

// Input for a partial sync after `changed` (the tracker's diffs; `desired` already holds every
// `after`): the shared chains rewritten, the changed Services' chains rewritten, and their chains
// nothing wants any more (removed ports, endpoints, policies) deleted. Other Services' chains
// are left as they are: a one-endpoint change writes one Service's chains. Given `shared` known
// (what the shared chains hold: what the last text left, for the same options, node and family),
// only the changed Services are rendered, only the shared chains whose rules differ are
// rewritten, and a table with nothing to write is left out; `shared` is then updated to what
// the chains hold after this text (the caller drops it if the text is not applied).
std::string PartialRestoreText(const state::NodeState& desired, IpFamily family,
                               const LayoutOptions& options,
                               std::span<const state::ServiceDiff> changed,
                               const SharedChainState* in_kernel = nullptr);
void WritePartialRestore(const state::NodeState& desired, IpFamily family,
                         const LayoutOptions& options, std::span<const state::ServiceDiff> changed,
                         const RestoreSink& sink, SharedChainState* shared = nullptr);

std::vector<JumpRule> JumpRules(IpFamily family, const LayoutOptions& options);
// The iptables/ip6tables arguments for `rule` with `op` ("-C", "-I", "-D"), waiting up to 5 s
// for the xtables lock: {"-w", "5", "-t", table, op, chain, spec...}.
std::vector<std::string> JumpArgv(const JumpRule& rule, std::string_view op);
// Whether `save_output` (iptables-save of the rule's table) holds the jump: a rule in its chain
// with its target and its comment (the comments tell kube-proxy's jumps apart), however the
// tool prints the matches.
bool HasJump(std::string_view save_output, const JumpRule& rule);

}  // namespace sluice::proxy::iptables
