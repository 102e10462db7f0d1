// PodNetworkState: what one node must do for the pod network, as a pure function of the cluster's
// Nodes and the node's name (no kernel knowledge; agent/pod_network applies it):
//  - its own pod CIDRs (spec.podCIDRs), which the CNI conflist hands to host-local;
//  - a route to every other node's pod CIDR via that node's IP of the same family (host-gw);
//  - the cluster's pod address space, which pod traffic may reach with its source kept; traffic
//    from this node's pods to anywhere else is masqueraded.
#pragma once

#include <memory>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/ip_address.h"
#include "controlplane/api/node.h"

namespace sluice::state {

struct PodRoute {
  IpPrefix dst;      // another node's pod CIDR (network form)
  IpAddress via;     // that node's IP of the same family
  std::string node;  // whose CIDR it is

  auto operator<=>(const PodRoute&) const = default;
};

struct PodNetworkState {
  bool node_known = false;          // this node's Node object has been seen
  std::vector<IpPrefix> pod_cidrs;  // this node's, primary family first
  std::vector<PodRoute> routes;     // sorted by dst
  // Destinations pod traffic reaches unmasqueraded: the --cluster-cidr ranges, and every node's
  // pod CIDR not inside one of them; sorted, none inside another.
  std::vector<IpPrefix> cluster_cidrs;
  // Nodes whose pod CIDRs cannot be routed, each with the reason (logged by the agent).
  std::vector<std::string> problems;

  bool operator==(const PodNetworkState&) const = default;
};

// `nodes` in any order; `cluster_cidrs` from --cluster-cidr (may be empty); only `families` count.
PodNetworkState ComputePodNetwork(std::span<const std::shared_ptr<const api::Node>> nodes,
                                  std::string_view node_name,
                                  std::span<const IpPrefix> cluster_cidrs,
                                  const std::set<IpFamily>& families);

}  // namespace sluice::state
