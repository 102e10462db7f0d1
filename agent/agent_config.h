// sluice-agent's configuration: kube-proxy's flags and KubeProxyConfiguration file fields where the
// meaning is the same, plus our own (--manifests, --dry-run). Values come from, lowest to highest
// precedence: defaults, the --config file, flags given on the command line.
#pragma once

#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/ip_address.h"

namespace sluice::agent {

// A user's mistake in flags or the config file; the message names the flag or field.
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class ProxyMode { kNftables, kIptables, kEbpf, kUserspace };
std::string_view ToString(ProxyMode m);

struct AgentConfig {
  // Where the cluster state comes from: an API server (kubeconfig, --master, or in-cluster), or a
  // manifest directory.
  std::string kubeconfig;
  std::string master;
  std::string manifests_dir;

  std::string hostname_override;  // the node name; the host name when empty
  ProxyMode proxy_mode = ProxyMode::kNftables;
  std::vector<IpPrefix> cluster_cidrs;  // --cluster-cidr, up to one per family
  bool masquerade_all = false;
  // --nodeport-addresses: CIDRs selecting the local addresses NodePorts answer on, or "primary"
  // (the node's own IPs). Empty: kube-proxy's default for the mode.
  std::vector<IpPrefix> nodeport_cidrs;
  bool nodeport_primary = false;
  // --iptables-mode for --proxy-mode=iptables: "auto" (the variant the node's rules are in, as
  // kube-proxy's iptables-wrapper picks), "legacy" or "nft".
  std::string iptables_mode = "auto";
  // --iptables-localhost-nodeports (kube-proxy's flag and default): in iptables mode, IPv4
  // NodePorts also answer on 127.0.0.0/8 when --nodeport-addresses takes in loopback (the
  // default does); sets net.ipv4.conf.all.route_localnet=1.
  bool iptables_localhost_nodeports = true;
  std::string healthz_bind_address = "0.0.0.0:10256";  // "" disables
  std::string metrics_bind_address = "127.0.0.1:10249";
  std::chrono::milliseconds min_sync_period{1000};
  std::chrono::milliseconds sync_period{30000};
  bool dry_run = false;
  bool cleanup = false;  // --cleanup: remove what the backend programmed, then exit
  bool ipv4 = true;  // families proxied
  bool ipv6 = true;
  // --pod-network: the agent also writes the node's CNI conflist, routes other nodes' pod CIDRs
  // and masquerades pod egress (agent/pod_network.h).
  bool pod_network = false;
  std::string cni_conf_dir = "/etc/cni/net.d";
  std::vector<std::string> cni_bin_dirs = {"/opt/cni/bin"};
  std::string cni_ipam_data_dir;  // host-local's dataDir; "" = the plugin's default
  std::string pod_bridge = "cni0";
  int verbosity = 0;
  std::string config_file;

  // Set by the loader: fields of the config file this agent does not apply (logged as warnings).
  std::vector<std::string> ignored_fields;
};

// Parses argv (kube-proxy's spelling: --flag=value or --flag value; booleans also bare). Throws
// ConfigError. Returns nullopt after printing --help or --version to stdout.
std::optional<AgentConfig> ParseCommandLine(int argc, const char* const* argv);

// Applies a KubeProxyConfiguration (kubeproxy.config.k8s.io/v1alpha1 or v1alpha2, YAML or JSON)
// onto `config`. Throws ConfigError naming the file and field.
void ApplyConfigFile(const std::string& path, const std::string& text, AgentConfig& config);

// Go duration text ("30s", "1m0s", "500ms", "1h30m"); throws ConfigError naming `what`.
std::chrono::milliseconds ParseDuration(const std::string& text, const std::string& what);

// The help text: every flag with its default.
std::string Usage();

}  // namespace sluice::agent
