#include "agent/agent_config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <cxxopts.hpp>
#include <iostream>
#include <set>

namespace sluice::agent {

namespace {

constexpr char kDescription[] =
    "sluice-agent: a Kubernetes service proxy (kube-proxy replacement).\n"
    "It watches Services, EndpointSlices and its own Node (from the API server, or from a\n"
    "manifest directory) and programs service load balancing on this node.\n"
    "Values: defaults < --config file < flags given on the command line.";

cxxopts::Options BuildOptions() {
  cxxopts::Options o("sluice-agent", kDescription);
  auto str = [](const char* dflt) { return cxxopts::value<std::string>()->default_value(dflt); };
  auto flag = [] { return cxxopts::value<bool>()->default_value("false")->implicit_value("true"); };
  o.add_options("Sources")(
      "kubeconfig",
      "Path to a kubeconfig file with the API server and credentials. Neither this "
      "nor --master nor --manifests: in-cluster service account.",
      str(""),
      "PATH")("master", "The API server's address; overrides the kubeconfig's.", str(""), "URL")(
      "manifests",
      "Standalone mode: read Services, EndpointSlices and Nodes from YAML/JSON files "
      "in DIR (watched; changes apply as files are written, changed and removed) instead of an "
      "API server.",
      str(""),
      "DIR")("config",
             "KubeProxyConfiguration file (kubeproxy.config.k8s.io v1alpha1 or v1alpha2, "
             "YAML or JSON); fields that do not apply to this agent are logged and ignored.",
             str(""), "PATH");
  o.add_options("Proxy")("hostname-override",
                         "The name of this node, as in its Node object (default: the host "
                         "name, lower-cased).",
                         str(""), "NAME")(
      "proxy-mode", "Backend: nftables, iptables, ebpf or userspace.", str("nftables"), "MODE")(
      "iptables-mode",
      "With --proxy-mode=iptables: legacy, nft, or auto (the variant holding the node's "
      "rules, as kube-proxy's iptables-wrapper chooses).",
      str("auto"), "MODE")(
      "iptables-localhost-nodeports",
      "With --proxy-mode=iptables: IPv4 NodePorts also answer on 127.0.0.0/8 when "
      "--nodeport-addresses takes in loopback (as by default); sets "
      "net.ipv4.conf.all.route_localnet=1. =false turns it off.",
      cxxopts::value<bool>()->default_value("true")->implicit_value("true"))(
      "cluster-cidr",
      "The cluster's pod CIDR(s), comma-separated, one per family: traffic from "
      "outside it to a ClusterIP is masqueraded.",
      str(""), "CIDRS")("masquerade-all", "SNAT all traffic sent through service IPs.", flag())(
      "nodeport-addresses",
      "Local addresses NodePorts answer on: comma-separated CIDRs, or "
      "\"primary\" for the node's own IPs (default: the mode's kube-proxy default).",
      str(""), "CIDRS")("min-sync-period",
                        "Shortest time between two syncs (changes arriving faster are "
                        "batched); 0 syncs at once.",
                        str("1s"), "DURATION")(
      "sync-period", "Longest time between two syncs: a full resync runs at least this often.",
      str("30s"), "DURATION")("ip-families", "Families to proxy: ipv4, ipv6 or ipv4,ipv6.",
                              str("ipv4,ipv6"), "LIST")(
      "dry-run",
      "Compute everything and print, per sync, the service ports and endpoints that "
      "would be programmed, without touching the kernel.",
      flag())("cleanup",
              "Remove everything the backend of --proxy-mode programmed on this node and "
              "exit.",
              flag());
  o.add_options("Pod network")(
      "pod-network",
      "Also run this node's pod network: write the CNI conflist for the Node's podCIDRs, "
      "route every other node's pod CIDRs via its InternalIP (host-gw) and masquerade pod "
      "traffic leaving the cluster.",
      flag())("cni-conf-dir", "Where --pod-network writes 10-sluice.conflist.",
              str("/etc/cni/net.d"), "DIR")(
      "cni-bin-dir",
      "CNI plugin directories, colon- or comma-separated: portmap is chained when found there.",
      str("/opt/cni/bin"), "DIRS")("cni-ipam-data-dir",
                                   "host-local's dataDir in the conflist (default: the "
                                   "plugin's own, /var/lib/cni/networks).",
                                   str(""), "DIR")(
      "pod-bridge", "The bridge the conflist's bridge plugin attaches pods to.", str("cni0"),
      "NAME");
  o.add_options("Serving")("healthz-bind-address",
                           "IP:port of the /healthz and /livez server; empty disables it.",
                           str("0.0.0.0:10256"), "ADDR")(
      "metrics-bind-address", "IP:port of the /metrics server; empty disables it.",
      str("127.0.0.1:10249"), "ADDR");
  o.add_options("Other")("verbosity", "Log verbosity (also --v=N).",
                         cxxopts::value<int>()->default_value("0"), "N")(
      "h,help", "Print this help and exit.")("version", "Print the version and exit.");
  return o;
}

std::vector<std::string> SplitList(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string::npos) comma = text.size();
    std::string item = text.substr(start, comma - start);
    while (!item.empty() && std::isspace(static_cast<unsigned char>(item.back()))) item.pop_back();
    while (!item.empty() && std::isspace(static_cast<unsigned char>(item.front())))
      item.erase(0, 1);
    if (!item.empty()) out.push_back(item);
    start = comma + 1;
  }
  return out;
}

ProxyMode ParseMode(const std::string& text, const std::string& what) {
  if (text == "nftables" || text.empty()) return ProxyMode::kNftables;
  if (text == "iptables") return ProxyMode::kIptables;
  if (text == "ebpf") return ProxyMode::kEbpf;
  if (text == "userspace") return ProxyMode::kUserspace;
  throw ConfigError(what + ": unknown proxy mode \"" + text +
                    "\" (want nftables, iptables, ebpf or userspace)");
}

std::vector<IpPrefix> ParseCidrs(const std::vector<std::string>& items, const std::string& what,
                                 bool one_per_family) {
  std::vector<IpPrefix> out;
  std::set<IpFamily> seen;
  for (const auto& item : items) {
    auto p = IpPrefix::Parse(item);
    if (!p) throw ConfigError(what + ": invalid CIDR \"" + item + "\"");
    if (one_per_family && !seen.insert(p->family()).second) {
      throw ConfigError(what + ": more than one CIDR of the same family (\"" + item + "\")");
    }
    out.push_back(p->Network());
  }
  return out;
}

void ApplyNodePortAddresses(const std::vector<std::string>& items, const std::string& what,
                            AgentConfig& c) {
  c.nodeport_cidrs.clear();
  c.nodeport_primary = false;
  std::vector<std::string> cidrs;
  for (const auto& item : items) {
    if (item == "primary") {
      c.nodeport_primary = true;
    } else {
      cidrs.push_back(item);
    }
  }
  if (c.nodeport_primary && !cidrs.empty()) {
    throw ConfigError(what + ": \"primary\" cannot be combined with CIDRs");
  }
  c.nodeport_cidrs = ParseCidrs(cidrs, what, false);
}

void ApplyFamilies(const std::string& text, const std::string& what, AgentConfig& c) {
  c.ipv4 = c.ipv6 = false;
  for (const auto& f : SplitList(text)) {
    if (f == "ipv4" || f == "IPv4") {
      c.ipv4 = true;
    } else if (f == "ipv6" || f == "IPv6") {
      c.ipv6 = true;
    } else {
      throw ConfigError(what + ": unknown IP family \"" + f + "\" (want ipv4, ipv6)");
    }
  }
  if (!c.ipv4 && !c.ipv6) throw ConfigError(what + ": no IP family");
}

void CheckBindAddress(const std::string& addr, const std::string& what) {
  if (addr.empty()) return;
  size_t colon = addr.rfind(':');
  if (colon == std::string::npos) throw ConfigError(what + ": \"" + addr + "\" is not IP:port");
  std::string host = addr.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  // ":10256": every address of both families, as Go reads it.
  if (!host.empty() && !IpAddress::Parse(host))
    throw ConfigError(what + ": \"" + host + "\" is not an IP address");
  std::string port = addr.substr(colon + 1);
  if (port.empty() || port.size() > 5 ||
      port.find_first_not_of("0123456789") != std::string::npos || std::stoi(port) > 65535) {
    throw ConfigError(what + ": \"" + port + "\" is not a port number");
  }
}

// ---- The config file ----

class FileReader {
 public:
  FileReader(std::string path, AgentConfig& c) : path_(std::move(path)), c_(c) {}

  [[noreturn]] void Fail(const std::string& field, const std::string& reason) const {
    throw ConfigError("config " + path_ + ": " + field + ": " + reason);
  }
  std::string Where(const std::string& field) const { return "config " + path_ + ": " + field; }

  std::string Str(const YAML::Node& n, const std::string& field) const {
    if (!n.IsScalar()) Fail(field, "must be a string");
    return n.Scalar();
  }
  bool Bool(const YAML::Node& n, const std::string& field) const {
    if (!n.IsScalar()) Fail(field, "must be true or false");
    const std::string& s = n.Scalar();
    if (s == "true") return true;
    if (s == "false") return false;
    Fail(field, "must be true or false, not \"" + s + "\"");
  }
  std::vector<std::string> StrList(const YAML::Node& n, const std::string& field) const {
    std::vector<std::string> out;
    if (n.IsNull()) return out;
    if (!n.IsSequence()) Fail(field, "must be a list");
    for (size_t i = 0; i < n.size(); ++i)
      out.push_back(Str(n[i], field + "[" + std::to_string(i) + "]"));
    return out;
  }

  // v1alpha2's bind address lists (CIDRs) plus port: the wildcard when it covers everything of a
  // family, the loopback address when it is the loopback network, a single host otherwise.
  std::string BindFromCidrs(const std::vector<std::string>& cidrs, int port,
                            const std::string& field) const {
    if (cidrs.empty()) return "";
    std::string any, loop, host;
    for (const auto& text : cidrs) {
      auto p = IpPrefix::Parse(text);
      if (!p) Fail(field, "invalid CIDR \"" + text + "\"");
      if (p->length() == 0) {
        // Both families whole: every address of both (Go's ":port").
        std::string mine = p->family() == IpFamily::kV6 ? "[::]" : "0.0.0.0";
        any = any.empty() || any == mine ? mine : "";
        if (any.empty()) return ":" + std::to_string(port);
      } else if (p->Contains(*IpAddress::Parse("127.0.0.1")) || p->ToString() == "::1/128") {
        if (loop.empty()) loop = p->family() == IpFamily::kV6 ? "[::1]" : "127.0.0.1";
      } else if (p->length() == p->address().bits()) {
        if (host.empty()) {
          host = p->family() == IpFamily::kV6 ? "[" + p->address().ToString() + "]"
                                              : p->address().ToString();
        }
      } else {
        Fail(field, "\"" + text +
                        "\": only a whole family (0.0.0.0/0, ::/0), loopback or a "
                        "single address (/32, /128) is supported");
      }
    }
    std::string ip = !any.empty() ? any : !loop.empty() ? loop : host;
    return ip + ":" + std::to_string(port);
  }

  void Apply(const YAML::Node& root) {
    if (!root.IsMap()) Fail("(document)", "must be a mapping");
    std::string api_version = root["apiVersion"] ? Str(root["apiVersion"], "apiVersion") : "";
    std::string kind = root["kind"] ? Str(root["kind"], "kind") : "";
    if (kind != "KubeProxyConfiguration") {
      Fail("kind", "want KubeProxyConfiguration, got \"" + kind + "\"");
    }
    if (api_version != "kubeproxy.config.k8s.io/v1alpha1" &&
        api_version != "kubeproxy.config.k8s.io/v1alpha2") {
      Fail("apiVersion",
           "want kubeproxy.config.k8s.io/v1alpha1 or v1alpha2, got \"" + api_version + "\"");
    }
    const bool v2 = api_version.ends_with("v1alpha2");
    std::optional<std::string> mode;
    std::vector<std::string> healthz_cidrs, metrics_cidrs;
    int healthz_port = 10256, metrics_port = 10249;
    bool healthz_list = false, metrics_list = false;
    // Per-mode sections (v1alpha1): the one for the selected mode applies.
    YAML::Node iptables, nftables;

    for (const auto& kv : root) {
      const std::string key = kv.first.Scalar();
      const YAML::Node& v = kv.second;
      if (key == "apiVersion" || key == "kind") continue;
      if (v.IsNull()) continue;
      if (key == "clientConnection") {
        for (const auto& c : v) {
          std::string sub = c.first.Scalar();
          if (sub == "kubeconfig") {
            c_.kubeconfig = Str(c.second, "clientConnection.kubeconfig");
          } else {
            c_.ignored_fields.push_back("clientConnection." + sub);
          }
        }
      } else if (key == "hostnameOverride") {
        c_.hostname_override = Str(v, key);
      } else if (key == "mode") {
        mode = Str(v, key);
      } else if (key == "clusterCIDR") {
        c_.cluster_cidrs = ParseCidrs(SplitList(Str(v, key)), Where(key), true);
      } else if (key == "nodePortAddresses") {
        ApplyNodePortAddresses(StrList(v, key), Where(key), c_);
      } else if (key == "healthzBindAddress" && !v2) {
        c_.healthz_bind_address = Str(v, key);
        CheckBindAddress(c_.healthz_bind_address, Where(key));
      } else if (key == "metricsBindAddress" && !v2) {
        c_.metrics_bind_address = Str(v, key);
        CheckBindAddress(c_.metrics_bind_address, Where(key));
      } else if (key == "healthzBindAddresses" && v2) {
        healthz_cidrs = StrList(v, key);
        healthz_list = true;
      } else if (key == "metricsBindAddresses" && v2) {
        metrics_cidrs = StrList(v, key);
        metrics_list = true;
      } else if (key == "healthzBindPort" && v2) {
        healthz_port = Port(v, key);
        healthz_list = true;
      } else if (key == "metricsBindPort" && v2) {
        metrics_port = Port(v, key);
        metrics_list = true;
      } else if (key == "syncPeriod" && v2) {
        c_.sync_period = ParseDuration(Str(v, key), Where(key));
      } else if (key == "minSyncPeriod" && v2) {
        c_.min_sync_period = ParseDuration(Str(v, key), Where(key));
      } else if (key == "linux" && v2) {
        for (const auto& l : v) {
          std::string sub = l.first.Scalar();
          if (sub == "masqueradeAll") {
            c_.masquerade_all = Bool(l.second, "linux.masqueradeAll");
          } else {
            c_.ignored_fields.push_back("linux." + sub);
          }
        }
      } else if (key == "iptables") {
        iptables = v;
      } else if (key == "nftables") {
        nftables = v;
      } else {
        c_.ignored_fields.push_back(key);
      }
    }
    if (mode) c_.proxy_mode = ParseMode(*mode, Where("mode"));
    if (healthz_list) {
      c_.healthz_bind_address = BindFromCidrs(
          healthz_cidrs.empty() ? std::vector<std::string>{"0.0.0.0/0"} : healthz_cidrs,
          healthz_port, "healthzBindAddresses");
    }
    if (metrics_list) {
      c_.metrics_bind_address = BindFromCidrs(
          metrics_cidrs.empty() ? std::vector<std::string>{"127.0.0.0/8"} : metrics_cidrs,
          metrics_port, "metricsBindAddresses");
    }
    // The section of the selected mode carries the sync periods and masqueradeAll (v1alpha1).
    const bool nft = c_.proxy_mode == ProxyMode::kNftables;
    ApplyModeSection(nft ? nftables : iptables, nft ? "nftables" : "iptables", v2);
    ApplyModeSection(nft ? iptables : nftables, nft ? "iptables" : "nftables", v2, true);
  }

  int Port(const YAML::Node& n, const std::string& field) const {
    std::string s = Str(n, field);
    if (s.empty() || s.size() > 5 || s.find_first_not_of("0123456789") != std::string::npos ||
        std::stoi(s) > 65535) {
      Fail(field, "\"" + s + "\" is not a port number");
    }
    return std::stoi(s);
  }

  void ApplyModeSection(const YAML::Node& section, const std::string& name, bool v2,
                        bool other_mode = false) {
    if (!section || section.IsNull()) return;
    if (!section.IsMap()) Fail(name, "must be a mapping");
    for (const auto& kv : section) {
      std::string sub = kv.first.Scalar();
      std::string field = name + "." + sub;
      bool applies = !other_mode && !v2;
      if (name == "iptables" && sub == "localhostNodePorts") {
        c_.iptables_localhost_nodeports = Bool(kv.second, field);
      } else if (applies && sub == "masqueradeAll") {
        c_.masquerade_all = Bool(kv.second, field);
      } else if (applies && sub == "syncPeriod") {
        c_.sync_period = ParseDuration(Str(kv.second, field), Where(field));
      } else if (applies && sub == "minSyncPeriod") {
        c_.min_sync_period = ParseDuration(Str(kv.second, field), Where(field));
      } else {
        c_.ignored_fields.push_back(field);
      }
    }
  }

 private:
  std::string path_;
  AgentConfig& c_;
};

}  // namespace

std::string_view ToString(ProxyMode m) {
  switch (m) {
    case ProxyMode::kNftables:
      return "nftables";
    case ProxyMode::kIptables:
      return "iptables";
    case ProxyMode::kEbpf:
      return "ebpf";
    case ProxyMode::kUserspace:
      return "userspace";
  }
  return "?";
}

std::chrono::milliseconds ParseDuration(const std::string& text, const std::string& what) {
  if (text == "0") return std::chrono::milliseconds(0);
  double total_ms = 0;
  size_t i = 0;
  if (text.empty()) throw ConfigError(what + ": empty duration");
  while (i < text.size()) {
    size_t start = i;
    while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.'))
      ++i;
    if (start == i) throw ConfigError(what + ": invalid duration \"" + text + "\"");
    double value = std::stod(text.substr(start, i - start));
    size_t unit_start = i;
    while (i < text.size() && std::isalpha(static_cast<unsigned char>(text[i]))) ++i;
    std::string unit = text.substr(unit_start, i - unit_start);
    double scale;
    if (unit == "h") {
      scale = 3600e3;
    } else if (unit == "m") {
      scale = 60e3;
    } else if (unit == "s") {
      scale = 1e3;
    } else if (unit == "ms") {
      scale = 1;
    } else if (unit == "us" || unit == "µs") {
      scale = 1e-3;
    } else if (unit == "ns") {
      scale = 1e-6;
    } else {
      throw ConfigError(what + ": invalid duration \"" + text +
                        "\" (units: h, m, s, ms; e.g. 30s, 1m0s)");
    }
    total_ms += value * scale;
  }
  return std::chrono::milliseconds(static_cast<int64_t>(total_ms + 0.5));
}

std::string Usage() { return BuildOptions().help({"Sources", "Proxy", "Pod network", "Serving", "Other"}); }

void ApplyConfigFile(const std::string& path, const std::string& text, AgentConfig& config) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw ConfigError("config " + path + ": invalid YAML: line " + std::to_string(e.mark.line + 1) +
                      ": " + e.msg);
  }
  FileReader(path, config).Apply(root);
}

std::optional<AgentConfig> ParseCommandLine(int argc, const char* const* argv) {
  // kube-proxy's --v=N and -v N: cxxopts long names need two letters.
  std::vector<std::string> args;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--v") a = "--verbosity";
    if (a.rfind("--v=", 0) == 0) a = "--verbosity=" + a.substr(4);
    args.push_back(a);
  }
  std::vector<const char*> ptrs;
  for (const auto& a : args) ptrs.push_back(a.c_str());

  cxxopts::Options options = BuildOptions();
  cxxopts::ParseResult r;
  try {
    r = options.parse(static_cast<int>(ptrs.size()), ptrs.data());
  } catch (const cxxopts::exceptions::exception& e) {
    throw ConfigError(std::string(e.what()) + " (see --help)");
  }
  if (!r.unmatched().empty()) {
    throw ConfigError("unexpected argument \"" + r.unmatched().front() + "\" (see --help)");
  }
  if (r.count("help")) {
    std::cout << Usage() << std::flush;
    return std::nullopt;
  }
  if (r.count("version")) {
    std::cout << "sluice-agent " << SLUICE_VERSION << "\n" << std::flush;
    return std::nullopt;
  }

  AgentConfig c;
  auto given = [&](const char* name) { return r.count(name) > 0; };
  auto s = [&](const char* name) { return r[name].as<std::string>(); };

  c.config_file = s("config");
  if (!c.config_file.empty()) {
    std::string text;
    {
      FILE* f = std::fopen(c.config_file.c_str(), "rb");
      if (!f) {
        throw ConfigError("--config " + c.config_file + ": " + std::strerror(errno));
      }
      char buf[4096];
      size_t n;
      while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
      std::fclose(f);
    }
    ApplyConfigFile(c.config_file, text, c);
  }
  // Defaults for what neither the file nor the flags set are in AgentConfig itself; a flag given
  // on the command line wins over the file.
  if (given("kubeconfig")) c.kubeconfig = s("kubeconfig");
  if (given("master")) c.master = s("master");
  if (given("manifests")) c.manifests_dir = s("manifests");
  if (given("hostname-override")) c.hostname_override = s("hostname-override");
  if (given("proxy-mode")) c.proxy_mode = ParseMode(s("proxy-mode"), "--proxy-mode");
  if (given("iptables-mode")) {
    c.iptables_mode = s("iptables-mode");
    if (c.iptables_mode != "auto" && c.iptables_mode != "legacy" && c.iptables_mode != "nft") {
      throw ConfigError("--iptables-mode: \"" + c.iptables_mode +
                        "\" is not one of auto, legacy, nft");
    }
  }
  if (given("iptables-localhost-nodeports")) {
    c.iptables_localhost_nodeports = r["iptables-localhost-nodeports"].as<bool>();
  }
  if (given("cluster-cidr")) {
    c.cluster_cidrs = ParseCidrs(SplitList(s("cluster-cidr")), "--cluster-cidr", true);
  }
  if (given("masquerade-all")) c.masquerade_all = r["masquerade-all"].as<bool>();
  if (given("nodeport-addresses")) {
    ApplyNodePortAddresses(SplitList(s("nodeport-addresses")), "--nodeport-addresses", c);
  }
  if (given("min-sync-period")) {
    c.min_sync_period = ParseDuration(s("min-sync-period"), "--min-sync-period");
  }
  if (given("sync-period")) c.sync_period = ParseDuration(s("sync-period"), "--sync-period");
  if (given("ip-families")) ApplyFamilies(s("ip-families"), "--ip-families", c);
  if (given("dry-run")) c.dry_run = r["dry-run"].as<bool>();
  if (given("cleanup")) c.cleanup = r["cleanup"].as<bool>();
  if (given("pod-network")) c.pod_network = r["pod-network"].as<bool>();
  if (given("cni-conf-dir")) c.cni_conf_dir = s("cni-conf-dir");
  if (given("cni-bin-dir")) {
    c.cni_bin_dirs.clear();
    std::string dirs = s("cni-bin-dir");
    std::replace(dirs.begin(), dirs.end(), ':', ',');
    c.cni_bin_dirs = SplitList(dirs);
  }
  if (given("cni-ipam-data-dir")) c.cni_ipam_data_dir = s("cni-ipam-data-dir");
  if (given("pod-bridge")) c.pod_bridge = s("pod-bridge");
  if (given("healthz-bind-address")) c.healthz_bind_address = s("healthz-bind-address");
  if (given("metrics-bind-address")) c.metrics_bind_address = s("metrics-bind-address");
  if (given("verbosity")) c.verbosity = r["verbosity"].as<int>();

  CheckBindAddress(c.healthz_bind_address, "--healthz-bind-address");
  CheckBindAddress(c.metrics_bind_address, "--metrics-bind-address");
  if (c.pod_network) {
    if (c.cni_conf_dir.empty()) throw ConfigError("--cni-conf-dir: must not be empty");
    if (c.pod_bridge.empty() || c.pod_bridge.size() > 15) {
      throw ConfigError("--pod-bridge: \"" + c.pod_bridge +
                        "\" is not a link name (1 to 15 characters)");
    }
  }
  if (c.sync_period.count() <= 0) throw ConfigError("--sync-period: must be positive");
  if (c.min_sync_period > c.sync_period) {
    throw ConfigError("--min-sync-period: must not exceed --sync-period");
  }
  if (!c.manifests_dir.empty() && (!c.kubeconfig.empty() || !c.master.empty())) {
    throw ConfigError("--manifests: cannot be combined with --kubeconfig or --master");
  }
  return c;
}

}  // namespace sluice::agent
