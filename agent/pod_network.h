// The node's pod network, applied from PodNetworkState (controlplane/state/pod_network.h) when the
// agent runs with --pod-network:
//  - the CNI conflist `<cni-conf-dir>/10-sluice.conflist`: our bridge (hairpin on, the node's
//    side as the pods' gateway, no ipMasq) with host-local over the Node's podCIDRs, loopback,
//    and portmap when a portmap binary is in --cni-bin-dir. Written atomically (rename), only
//    when it changes; runtimes pick it up as they do any CNI config;
//  - one route per other node's pod CIDR, via that node's IP (host-gw), marked with our route
//    protocol (kRouteProtocol) so that only our routes are ever changed or removed;
//  - the nftables table `inet sluice-pod-egress`: traffic from this node's pod CIDRs to anything
//    outside the cluster's pod address space is masqueraded; pod to pod (any node) never is.
// Everything acts in the calling thread's network namespace.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "controlplane/state/pod_network.h"

namespace sluice::netlink {
class Socket;
}
namespace sluice::nft {
class NftSocket;
}

namespace sluice::agent {

struct PodNetworkOptions {
  std::string conf_dir = "/etc/cni/net.d";
  std::vector<std::string> bin_dirs = {"/opt/cni/bin"};
  std::string ipam_data_dir;  // "" : host-local's default
  std::string bridge = "cni0";
};

// The conflist for `state` (pure). `with_portmap` chains portmap; `with_loopback` chains loopback.
std::string RenderConflist(const PodNetworkOptions& options, const state::PodNetworkState& state,
                           bool with_portmap, bool with_loopback);

class PodNetwork {
 public:
  static constexpr std::string_view kConflistName = "10-sluice.conflist";
  static constexpr std::string_view kNetworkName = "sluice";
  static constexpr std::string_view kTable = "sluice-pod-egress";
  // rtm_protocol of our routes ("ip route" shows "proto 83" unless /etc/iproute2/rt_protos names
  // it); not used by any routing daemon we know of.
  static constexpr uint8_t kRouteProtocol = 83;

  explicit PodNetwork(PodNetworkOptions options);
  ~PodNetwork();
  PodNetwork(const PodNetwork&) = delete;
  PodNetwork& operator=(const PodNetwork&) = delete;

  // Brings the node in line with `desired`. While this node's own Node is unknown only the
  // routes to the other nodes follow; the conflist and the masquerade are kept. With `full` (or after a failure) everything is read
  // back and repaired; otherwise only what differs from the last applied state is touched.
  // Throws std::runtime_error naming what failed (file, route, table); the parts that did apply
  // stay, and the next Apply retries the rest.
  void Apply(const state::PodNetworkState& desired, bool full);
  // --cleanup: removes our routes, the egress table and the conflist we wrote.
  void Cleanup();

  std::string conflist_path() const;

 private:
  void WriteConflist(const state::PodNetworkState& desired);
  void SyncRoutes(const state::PodNetworkState& desired);
  void SyncMasquerade(const state::PodNetworkState& desired);

  PodNetworkOptions options_;
  std::unique_ptr<netlink::Socket> route_socket_;
  std::unique_ptr<nft::NftSocket> nft_socket_;
  std::optional<state::PodNetworkState> applied_;
  std::vector<std::string> reported_problems_;
};

}  // namespace sluice::agent
