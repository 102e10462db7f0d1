#include "agent/agent_config.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

namespace sluice::agent {
namespace {

AgentConfig Parse(std::vector<std::string> args) {
  args.insert(args.begin(), "sluice-agent");
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  auto c = ParseCommandLine(static_cast<int>(argv.size()), argv.data());
  EXPECT_TRUE(c);
  return c ? *c : AgentConfig{};
}

std::string ParseError(std::vector<std::string> args) {
  try {
    Parse(std::move(args));
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

std::string WriteTemp(const std::string& text) {
  char path[] = "/tmp/sluice-agent-config-XXXXXX";
  int fd = mkstemp(path);
  EXPECT_GE(fd, 0);
  FILE* f = fdopen(fd, "w");
  std::fputs(text.c_str(), f);
  std::fclose(f);
  return path;
}

TEST(AgentConfig, DefaultsAreKubeProxys) {
  AgentConfig c = Parse({});
  EXPECT_EQ(c.proxy_mode, ProxyMode::kNftables);
  EXPECT_EQ(c.healthz_bind_address, "0.0.0.0:10256");
  EXPECT_EQ(c.metrics_bind_address, "127.0.0.1:10249");
  EXPECT_EQ(c.min_sync_period, std::chrono::seconds(1));
  EXPECT_EQ(c.sync_period, std::chrono::seconds(30));
  EXPECT_FALSE(c.masquerade_all);
  EXPECT_FALSE(c.dry_run);
  EXPECT_TRUE(c.iptables_localhost_nodeports);
}

TEST(AgentConfig, KubeProxyFlagSpellings) {
  AgentConfig c = Parse({"--kubeconfig=/etc/k.conf", "--master", "https://10.0.0.1:6443",
                         "--hostname-override=Node-A", "--proxy-mode=iptables",
                         "--cluster-cidr=10.244.0.0/16,fd00:244::/56", "--masquerade-all",
                         "--nodeport-addresses=192.168.0.0/16,2001:db8::/64",
                         "--healthz-bind-address=[::]:10256", "--metrics-bind-address=0.0.0.0:9100",
                         "--min-sync-period=0", "--sync-period=1m30s", "--dry-run", "--v=3"});
  EXPECT_EQ(c.kubeconfig, "/etc/k.conf");
  EXPECT_EQ(c.master, "https://10.0.0.1:6443");
  EXPECT_EQ(c.hostname_override, "Node-A");
  EXPECT_EQ(c.proxy_mode, ProxyMode::kIptables);
  ASSERT_EQ(c.cluster_cidrs.size(), 2u);
  EXPECT_EQ(c.cluster_cidrs[1].ToString(), "fd00:244::/56");
  EXPECT_TRUE(c.masquerade_all);
  ASSERT_EQ(c.nodeport_cidrs.size(), 2u);
  EXPECT_EQ(c.healthz_bind_address, "[::]:10256");
  EXPECT_EQ(c.min_sync_period, std::chrono::milliseconds(0));
  EXPECT_EQ(c.sync_period, std::chrono::seconds(90));
  EXPECT_TRUE(c.dry_run);
  EXPECT_EQ(c.verbosity, 3);
  EXPECT_TRUE(Parse({"--nodeport-addresses=primary"}).nodeport_primary);
  EXPECT_FALSE(Parse({"--masquerade-all=false"}).masquerade_all);
  EXPECT_FALSE(Parse({"--iptables-localhost-nodeports=false"}).iptables_localhost_nodeports);
  EXPECT_TRUE(Parse({"--iptables-localhost-nodeports"}).iptables_localhost_nodeports);
}

TEST(AgentConfig, BadFlagsNameTheFlag) {
  EXPECT_EQ(ParseError({"--proxy-mode=ipvs"}),
            "--proxy-mode: unknown proxy mode \"ipvs\" (want nftables, iptables, ebpf or "
            "userspace)");
  EXPECT_EQ(ParseError({"--cluster-cidr=10.0.0.0/33"}),
            "--cluster-cidr: invalid CIDR \"10.0.0.0/33\"");
  EXPECT_EQ(ParseError({"--cluster-cidr=10.0.0.0/8,10.1.0.0/16"}),
            "--cluster-cidr: more than one CIDR of the same family (\"10.1.0.0/16\")");
  EXPECT_EQ(ParseError({"--sync-period=soon"}), "--sync-period: invalid duration \"soon\"");
  EXPECT_EQ(ParseError({"--healthz-bind-address=localhost:10256"}),
            "--healthz-bind-address: \"localhost\" is not an IP address");
  EXPECT_EQ(ParseError({"--min-sync-period=1m", "--sync-period=30s"}),
            "--min-sync-period: must not exceed --sync-period");
  EXPECT_EQ(ParseError({"--manifests=/tmp", "--kubeconfig=/k"}),
            "--manifests: cannot be combined with --kubeconfig or --master");
  EXPECT_NE(ParseError({"--no-such-flag"}).find("no-such-flag"), std::string::npos);
  EXPECT_EQ(ParseError({"stray"}), "unexpected argument \"stray\" (see --help)");
  EXPECT_EQ(ParseError({"--nodeport-addresses=primary,10.0.0.0/8"}),
            "--nodeport-addresses: \"primary\" cannot be combined with CIDRs");
}

TEST(AgentConfig, Durations) {
  EXPECT_EQ(ParseDuration("30s", "x"), std::chrono::seconds(30));
  EXPECT_EQ(ParseDuration("1m0s", "x"), std::chrono::seconds(60));
  EXPECT_EQ(ParseDuration("15m0s", "x"), std::chrono::minutes(15));
  EXPECT_EQ(ParseDuration("500ms", "x"), std::chrono::milliseconds(500));
  EXPECT_EQ(ParseDuration("1h30m", "x"), std::chrono::minutes(90));
  EXPECT_EQ(ParseDuration("1.5s", "x"), std::chrono::milliseconds(1500));
  EXPECT_THROW(ParseDuration("10", "x"), ConfigError);
  EXPECT_THROW(ParseDuration("", "x"), ConfigError);
}

TEST(AgentConfig, V1alpha1FileAndFlagsOverIt) {
  std::string path = WriteTemp(R"(apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: /var/lib/kube-proxy/kubeconfig.conf
  qps: 5
hostnameOverride: node-7
mode: nftables
clusterCIDR: 10.244.0.0/16
nodePortAddresses: ["primary"]
healthzBindAddress: 0.0.0.0:10256
metricsBindAddress: 127.0.0.1:10249
nftables:
  masqueradeAll: true
  minSyncPeriod: 2s
  syncPeriod: 1m0s
iptables:
  syncPeriod: 5m0s
  localhostNodePorts: false
conntrack:
  maxPerCore: 32768
)");
  AgentConfig c = Parse({"--config=" + path});
  EXPECT_EQ(c.kubeconfig, "/var/lib/kube-proxy/kubeconfig.conf");
  EXPECT_EQ(c.hostname_override, "node-7");
  EXPECT_EQ(c.cluster_cidrs[0].ToString(), "10.244.0.0/16");
  EXPECT_TRUE(c.nodeport_primary);
  EXPECT_TRUE(c.masquerade_all);
  EXPECT_EQ(c.min_sync_period, std::chrono::seconds(2));
  EXPECT_EQ(c.sync_period, std::chrono::seconds(60));  // the nftables section: mode nftables
  EXPECT_FALSE(c.iptables_localhost_nodeports);
  EXPECT_EQ(c.ignored_fields,
            (std::vector<std::string>{"clientConnection.qps", "conntrack", "iptables.syncPeriod"}));

  AgentConfig o = Parse({"--config", path, "--hostname-override=node-8", "--sync-period=45s"});
  EXPECT_EQ(o.hostname_override, "node-8");
  EXPECT_EQ(o.sync_period, std::chrono::seconds(45));
  EXPECT_TRUE(Parse({"--config", path, "--iptables-localhost-nodeports"})
                  .iptables_localhost_nodeports);  // the flag wins
  std::remove(path.c_str());
}

TEST(AgentConfig, V1alpha2File) {
  std::string path = WriteTemp(R"(apiVersion: kubeproxy.config.k8s.io/v1alpha2
kind: KubeProxyConfiguration
healthzBindAddresses: ["0.0.0.0/0", "::/0"]
healthzBindPort: 10256
metricsBindAddresses: ["127.0.0.0/8", "::1/128"]
metricsBindPort: 10249
syncPeriod: 20s
minSyncPeriod: 0s
linux:
  masqueradeAll: true
  oomScoreAdj: -999
)");
  AgentConfig c = Parse({"--config=" + path});
  EXPECT_EQ(c.healthz_bind_address, ":10256");  // both families
  EXPECT_EQ(c.metrics_bind_address, "127.0.0.1:10249");
  EXPECT_EQ(c.sync_period, std::chrono::seconds(20));
  EXPECT_EQ(c.min_sync_period, std::chrono::seconds(0));
  EXPECT_TRUE(c.masquerade_all);
  std::remove(path.c_str());
}

TEST(AgentConfig, BadFilesNameTheFileAndField) {
  std::string p = WriteTemp("apiVersion: v1\nkind: ConfigMap\n");
  EXPECT_EQ(ParseError({"--config=" + p}),
            "config " + p + ": kind: want KubeProxyConfiguration, got \"ConfigMap\"");
  std::remove(p.c_str());
  p = WriteTemp(
      "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: ipvs\n");
  EXPECT_EQ(ParseError({"--config=" + p}),
            "config " + p +
                ": mode: unknown proxy mode \"ipvs\" (want nftables, iptables, ebpf or userspace)");
  std::remove(p.c_str());
  p = WriteTemp("kind: [unclosed\n");
  EXPECT_NE(ParseError({"--config=" + p}).find("invalid YAML: line"), std::string::npos);
  std::remove(p.c_str());
  EXPECT_EQ(ParseError({"--config=/nonexistent/kp.yaml"}),
            "--config /nonexistent/kp.yaml: No such file or directory");
}

TEST(AgentConfig, HelpListsEveryFlag) {
  std::string help = Usage();
  for (const char* flag : {"--kubeconfig", "--master", "--hostname-override", "--proxy-mode",
                           "--cluster-cidr", "--masquerade-all", "--nodeport-addresses",
                           "--healthz-bind-address", "--metrics-bind-address", "--config",
                           "--manifests", "--dry-run", "--min-sync-period", "--sync-period",
                           "--iptables-mode", "--iptables-localhost-nodeports"}) {
    EXPECT_NE(help.find(flag), std::string::npos) << flag;
  }
}

}  // namespace
}  // namespace sluice::agent

namespace sluice::agent {
namespace {

TEST(AgentConfig, PodNetworkFlags) {
  AgentConfig d = Parse({});
  EXPECT_FALSE(d.pod_network);
  EXPECT_EQ(d.cni_conf_dir, "/etc/cni/net.d");
  EXPECT_EQ(d.cni_bin_dirs, std::vector<std::string>{"/opt/cni/bin"});
  EXPECT_EQ(d.pod_bridge, "cni0");
  AgentConfig c = Parse({"--pod-network", "--cni-conf-dir=/x/net.d", "--cni-bin-dir",
                         "/a/bin:/b/bin,/c", "--cni-ipam-data-dir=/x/ipam", "--pod-bridge=br9"});
  EXPECT_TRUE(c.pod_network);
  EXPECT_EQ(c.cni_conf_dir, "/x/net.d");
  EXPECT_EQ(c.cni_bin_dirs, (std::vector<std::string>{"/a/bin", "/b/bin", "/c"}));
  EXPECT_EQ(c.cni_ipam_data_dir, "/x/ipam");
  EXPECT_EQ(c.pod_bridge, "br9");
  EXPECT_NE(ParseError({"--pod-network", "--pod-bridge=0123456789abcdef"}).find("--pod-bridge"),
            std::string::npos);
  EXPECT_NE(ParseError({"--pod-network", "--cni-conf-dir="}).find("--cni-conf-dir"),
            std::string::npos);
}

}  // namespace
}  // namespace sluice::agent
