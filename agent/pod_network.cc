#include "agent/pod_network.h"

#include <fcntl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter_ipv4.h>
#include <linux/rtnetlink.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <stdexcept>

#include "common/log.h"
#include "common/unique_fd.h"
#include "dataplane/netlink/netlink.h"
#include "dataplane/nft/batch.h"
#include "dataplane/nft/nft_socket.h"
#include "dataplane/nft/objects.h"
#include "dataplane/nft/rule_builder.h"

namespace sluice::agent {

namespace {

namespace fs = std::filesystem;

bool IsExecutable(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec) && access(p.c_str(), X_OK) == 0;
}

bool FindPlugin(const std::vector<std::string>& dirs, const std::string& name) {
  return std::any_of(dirs.begin(), dirs.end(),
                     [&](const std::string& d) { return IsExecutable(fs::path(d) / name); });
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// Writes `text` to `path` through a temporary file in the same directory and a rename, so that
// a runtime reading the directory sees the old file or the new one, never a part.
void WriteFileAtomically(const std::string& path, const std::string& text) {
  const fs::path target(path);
  std::error_code ec;
  fs::create_directories(target.parent_path(), ec);
  if (ec) {
    throw std::runtime_error("cannot create " + target.parent_path().string() + ": " +
                             ec.message());
  }
  // A leading dot: runtimes load only *.conf, *.conflist and *.json.
  std::string tmp_name(".");
  tmp_name.append(target.filename().string()).append(".tmp");
  const std::string tmp = (target.parent_path() / tmp_name).string();
  UniqueFd fd(open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd.valid()) throw std::runtime_error("cannot write " + tmp + ": " + std::strerror(errno));
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = write(fd.get(), text.data() + done, text.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      unlink(tmp.c_str());
      throw std::runtime_error("cannot write " + tmp + ": " + std::strerror(err));
    }
    done += static_cast<size_t>(n);
  }
  if (fsync(fd.get()) != 0 || rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    unlink(tmp.c_str());
    throw std::runtime_error("cannot write " + path + ": " + std::strerror(err));
  }
}

std::string RouteKey(const IpPrefix& dst, const std::optional<IpAddress>& via) {
  return dst.Network().ToString() + " via " + (via ? via->ToString() : std::string("-"));
}

IpPrefix Multicast(IpFamily f) {
  return IpPrefix::MustParse(f == IpFamily::kV4 ? "224.0.0.0/4" : "ff00::/8");
}

}  // namespace

std::string RenderConflist(const PodNetworkOptions& options, const state::PodNetworkState& state,
                           bool with_portmap, bool with_loopback) {
  using Json = nlohmann::ordered_json;
  Json ranges = Json::array();
  Json routes = Json::array();
  for (const auto& cidr : state.pod_cidrs) {
    ranges.push_back(Json::array({Json{{"subnet", cidr.ToString()}}}));
    routes.push_back(Json{{"dst", cidr.family() == IpFamily::kV4 ? "0.0.0.0/0" : "::/0"}});
  }
  Json ipam = {{"type", "host-local"}, {"ranges", ranges}, {"routes", routes}};
  if (!options.ipam_data_dir.empty()) ipam["dataDir"] = options.ipam_data_dir;
  Json bridge = {{"type", "bridge"},
                 {"bridge", options.bridge},
                 {"isGateway", true},
                 {"ipMasq", false},
                 {"hairpinMode", true},
                 {"ipam", ipam}};
  Json plugins = Json::array({bridge});
  if (with_loopback) plugins.push_back(Json{{"type", "loopback"}});
  if (with_portmap) {
    plugins.push_back(
        Json{{"type", "portmap"}, {"capabilities", Json{{"portMappings", true}}}});
  }
  // One version, no "cniVersions" list: libcni >= 1.2 would pick the list's highest, which
  // every chained plugin must then support (Debian's portmap stops at 1.0.0).
  Json conf = {{"cniVersion", "1.0.0"},
               {"name", PodNetwork::kNetworkName},
               {"plugins", plugins}};
  return conf.dump(2) + "\n";
}

PodNetwork::PodNetwork(PodNetworkOptions options)
    : options_(std::move(options)),
      route_socket_(std::make_unique<netlink::Socket>()),
      nft_socket_(std::make_unique<nft::NftSocket>()) {}

PodNetwork::~PodNetwork() = default;

std::string PodNetwork::conflist_path() const {
  return (fs::path(options_.conf_dir) / std::string(kConflistName)).string();
}

void PodNetwork::Apply(const state::PodNetworkState& desired, bool full) {
  for (const auto& p : desired.problems) {
    if (std::find(reported_problems_.begin(), reported_problems_.end(), p) ==
        reported_problems_.end()) {
      SLOG_WARN << "pod network: " << p;
    }
  }
  reported_problems_ = desired.problems;
  if (!full && applied_ && *applied_ == desired) return;

  std::vector<std::string> failures;
  auto attempt = [&](const char* what, auto&& fn) {
    try {
      fn();
    } catch (const std::exception& e) {
      failures.push_back(std::string(what) + ": " + e.what());
    }
  };
  // Without this node's Node object (not created yet, or deleted and about to come back) the
  // conflist and the masquerade stay as they are: pods keep working. Routes to the others follow.
  const bool own = desired.node_known;
  const bool cidrs_changed =
      own && (full || !applied_ || applied_->pod_cidrs != desired.pod_cidrs);
  const bool routes_changed = full || !applied_ || applied_->routes != desired.routes;
  const bool masq_changed =
      own && (cidrs_changed || applied_->cluster_cidrs != desired.cluster_cidrs);
  if (cidrs_changed) attempt("conflist", [&] { WriteConflist(desired); });
  if (routes_changed) attempt("routes", [&] { SyncRoutes(desired); });
  if (masq_changed) attempt("egress masquerade", [&] { SyncMasquerade(desired); });
  if (!failures.empty()) {
    applied_.reset();  // the next Apply reads everything back
    std::string msg = "pod network:";
    for (const auto& f : failures) msg += " " + f + ";";
    msg.pop_back();
    throw std::runtime_error(msg);
  }
  applied_ = desired;
}

void PodNetwork::WriteConflist(const state::PodNetworkState& desired) {
  const std::string path = conflist_path();
  if (desired.pod_cidrs.empty()) {
    // Kubelet keeps the node NotReady until a CNI config exists: nothing is written until the
    // Node has a podCIDR. A file written earlier stays (pods already use its ranges).
    SLOG_INFO << "pod network: the Node has no spec.podCIDRs yet; " << path
              << " is written once it has";
    return;
  }
  const bool portmap = FindPlugin(options_.bin_dirs, "portmap");
  const bool loopback = FindPlugin(options_.bin_dirs, "loopback");
  if (!FindPlugin(options_.bin_dirs, "bridge")) {
    std::string dirs;
    for (const auto& d : options_.bin_dirs) {
      if (!dirs.empty()) dirs.push_back(':');
      dirs.append(d);
    }
    SLOG_WARN << "pod network: no bridge plugin in --cni-bin-dir " << dirs
              << "; pods cannot be created with " << path << " until one is installed";
  }
  const std::string text = RenderConflist(options_, desired, portmap, loopback);
  if (ReadFile(path) == text) return;
  WriteFileAtomically(path, text);
  std::string cidrs;
  for (const auto& c : desired.pod_cidrs) {
    if (!cidrs.empty()) cidrs.push_back(',');
    cidrs.append(c.ToString());
  }
  SLOG_INFO << "pod network: wrote " << path << " (pod CIDRs " << cidrs
            << (portmap ? ", portmap chained" : ", no portmap plugin found") << ")";
}

void PodNetwork::SyncRoutes(const state::PodNetworkState& desired) {
  std::map<std::string, const state::PodRoute*> wanted;
  for (const auto& r : desired.routes) wanted.emplace(RouteKey(r.dst, r.via), &r);

  std::vector<std::string> failures;
  std::set<std::string> present;
  for (IpFamily family : {IpFamily::kV4, IpFamily::kV6}) {
    for (const auto& r : netlink::ListRoutes(*route_socket_, family, 0)) {
      if (r.protocol != kRouteProtocol || (r.table != 0 && r.table != RT_TABLE_MAIN)) continue;
      const std::string key = RouteKey(r.dst, r.gw);
      if (wanted.contains(key)) {
        present.insert(key);
        continue;
      }
      try {
        netlink::Route del = r;
        del.index = 0;
        netlink::DeleteRoute(*route_socket_, del);
        SLOG_INFO << "pod network: deleted route " << key;
      } catch (const std::exception& e) {
        failures.push_back(e.what());
      }
    }
  }
  for (const auto& [key, r] : wanted) {
    if (present.contains(key)) continue;
    netlink::Route add;
    add.dst = r->dst;
    add.gw = r->via;
    add.protocol = kRouteProtocol;
    try {
      netlink::AddRoute(*route_socket_, add);
      SLOG_INFO << "pod network: route " << key << " (node " << r->node << ")";
    } catch (const netlink::NetlinkError& e) {
      if (e.exists()) {
        failures.push_back("route to node " + r->node + "'s pod CIDR " + r->dst.ToString() +
                           ": a route to it not installed by sluice exists; left alone");
      } else {
        failures.push_back("node " + r->node + ": " + e.what() +
                           " (is its IP reachable from this node?)");
      }
    }
  }
  if (!failures.empty()) {
    std::string msg;
    for (const auto& f : failures) msg += (msg.empty() ? "" : "; ") + f;
    throw std::runtime_error(msg);
  }
}

void PodNetwork::SyncMasquerade(const state::PodNetworkState& desired) {
  // Replaced whole in one transaction (the table is a few rules): add-then-delete makes the
  // delete valid whether or not the table existed; the new table follows in the same batch, so
  // no packet sees it missing.
  nft::Batch batch;
  auto table = nft::MakeTable(NFPROTO_INET, kTable);
  batch.AddTable(*table);
  batch.DeleteTable(*table);
  if (!desired.pod_cidrs.empty()) {
    batch.AddTable(*table);
    batch.AddChain(*nft::MakeBaseChain(NFPROTO_INET, kTable, "postrouting", "nat",
                                       NF_INET_POST_ROUTING, NF_IP_PRI_NAT_SRC));
    auto rule = [&] { return nft::RuleBuilder(NFPROTO_INET, kTable, "postrouting"); };
    for (const auto& pods : desired.pod_cidrs) {
      const IpFamily f = pods.family();
      for (const auto& cluster : desired.cluster_cidrs) {
        if (cluster.family() != f) continue;
        batch.AppendRule(*rule()
                              .MatchAddress(/*source=*/true, pods)
                              .MatchAddress(/*source=*/false, cluster)
                              .Verdict(NFT_RETURN)
                              .Comment("pod to pod: source kept")
                              .Build());
      }
      batch.AppendRule(*rule()
                            .MatchAddress(/*source=*/true, pods)
                            .MatchAddress(/*source=*/false, Multicast(f))
                            .Verdict(NFT_RETURN)
                            .Build());
      batch.AppendRule(*rule()
                            .MatchAddress(/*source=*/true, pods)
                            .Masquerade()
                            .Comment("pod egress leaving the cluster")
                            .Build());
    }
  }
  batch.Send(*nft_socket_);
}

void PodNetwork::Cleanup() {
  std::vector<std::string> failures;
  state::PodNetworkState none;
  try {
    SyncRoutes(none);
  } catch (const std::exception& e) {
    failures.push_back(std::string("routes: ") + e.what());
  }
  try {
    SyncMasquerade(none);
  } catch (const std::exception& e) {
    failures.push_back(std::string("egress masquerade: ") + e.what());
  }
  const std::string path = conflist_path();
  if (unlink(path.c_str()) != 0 && errno != ENOENT) {
    failures.push_back("cannot remove " + path + ": " + std::strerror(errno));
  }
  applied_.reset();
  if (!failures.empty()) {
    std::string msg = "pod network cleanup:";
    for (const auto& f : failures) msg += " " + f + ";";
    msg.pop_back();
    throw std::runtime_error(msg);
  }
}

}  // namespace sluice::agent
