// The iptables backend: kube-proxy's layout (layout.h) written with `iptables-restore --noflush`
// fed on a pipe, per family (iptables / ip6tables), in the iptables variant the node uses
// (legacy or nft, chosen as kube-proxy's iptables-wrapper does when not forced).
//
// A full sync (the first, the periodic one, the one after a failure) declares and fills every
// chain of ours, deletes service chains nothing wants any more (read back with iptables-save)
// and inserts the jumps from the built-in chains that are missing, all in one restore; it reads
// the tables first with iptables-save (three tool runs per family). A partial sync writes
// the shared dispatch chains and only the changed Services' chains. Chains of others are never
// read or touched. Each restore is one transaction of the tool: refused input leaves the
// previous rules in force (the error names the tool, the family and the kernel's reason), and
// the agent's next sync is full.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/ip_address.h"
#include "proxy/backend.h"
#include "proxy/backends/iptables/layout.h"

namespace sluice::proxy::iptables {

enum class Variant : uint8_t { kLegacy, kNft };
std::string_view ToString(Variant v);  // "legacy", "nft"

struct IptablesOptions {
  std::vector<IpPrefix> cluster_cidrs;
  bool masquerade_all = false;
  // --nodeport-addresses: empty = every local address (kube-proxy's iptables default);
  // `nodeport_primary` = the node's own IPs; CIDRs = the local addresses inside them (a /0
  // selects every local address).
  std::vector<IpPrefix> nodeport_cidrs;
  bool nodeport_primary = false;
  // kube-proxy's --iptables-localhost-nodeports: IPv4 NodePorts also answer on 127.0.0.0/8 where
  // they answer on loopback (every local address, or a CIDR taking in 127.0.0.1). The backend
  // sets net.ipv4.conf.all.route_localnet=1 for it (of the network namespace it runs in; never
  // set back, as kube-proxy); if it cannot, localhost NodePorts stay off and it says so.
  bool localhost_nodeports = false;
  // nullopt: detect (see DetectVariant).
  std::optional<Variant> variant;
  std::set<IpFamily> families = {IpFamily::kV4, IpFamily::kV6};
};

// kube-proxy's iptables-wrapper: the variant the node already uses. The kubelet's hint chains
// in the nft mangle table (KUBE-IPTABLES-HINT, KUBE-KUBELET-CANARY) decide; else the variant
// holding more rules; nft when neither has any. `why` receives the reason. Throws when neither
// variant's tools are installed.
Variant DetectVariant(std::string* why = nullptr);

// The tool names: Tool(kNft, kV6, "restore") = "ip6tables-nft-restore"; "" = iptables itself.
std::string Tool(Variant variant, IpFamily family, std::string_view suffix);

// What the last Sync did, for logs and the benchmark.
struct IptablesSyncStats {
  bool full = false;
  size_t bytes = 0;       // restore input, all families
  size_t tool_runs = 0;   // processes started
};

class IptablesBackend : public Backend {
 public:
  // Detects the variant when not forced, and checks that its tools run. Throws (naming the
  // tool) when they cannot.
  explicit IptablesBackend(IptablesOptions options);

  std::string_view name() const override { return "iptables"; }
  void Sync(const state::NodeState& desired, const state::NodeStateChange& change) override;
  // Both variants: the jumps from built-in chains and every chain of ours, in both families;
  // other chains stay.
  void Cleanup() override;

  Variant variant() const { return variant_; }
  const IptablesSyncStats& last_sync() const { return stats_; }

 private:
  LayoutOptions Layout(const state::NodeState& desired, IpFamily family) const;
  // Runs the restore tool of `family` on what `write` hands its sink; `write` updates the shared
  // chains' state to what the text leaves (forgotten when the restore fails).
  // `start_first`: start the tool before the text is rendered (when it will not be empty).
  void Restore(IpFamily family, bool start_first,
               const std::function<void(const RestoreSink&, SharedChainState*)>& write);
  void RunRestore(IpFamily family, bool start_first,
                  const std::function<void(const RestoreSink&)>& write);
  std::string Save(IpFamily family, std::string_view table);
  // `iptables -C`: when the tables cannot be read whole.
  bool JumpInstalled(IpFamily family, const JumpRule& rule);
  // net.ipv4.conf.all.route_localnet=1, once; false (said once) when it cannot be set.
  bool RouteLocalnet();

  IptablesOptions options_;
  Variant variant_;
  IptablesSyncStats stats_;
  bool large_cluster_ = false;
  // Per family, the shared chains' rules the last restore left, Service by Service (a partial
  // sync renders only the changed Services and rewrites only the shared chains that change).
  // Our shared chains changed by someone else are repaired by the next full sync (the periodic
  // one at the latest).
  std::map<IpFamily, SharedChainState> shared_in_kernel_;
  bool route_localnet_ = false;         // set by us, or found set
  bool route_localnet_warned_ = false;
};

// The chains declared in iptables-save output.
std::vector<std::string> ChainNames(std::string_view save_output);

// The restore text removing every chain of ours found in `save_output` (iptables-save of the
// table), for --cleanup: declared (flushed) first, then deleted, so references among them go.
std::string CleanupRestoreText(std::string_view table, std::string_view save_output);

}  // namespace sluice::proxy::iptables
