#include "controlplane/state/pod_network.h"

#include <algorithm>

namespace sluice::state {

namespace {

// Sorted, without prefixes inside another one.
std::vector<IpPrefix> Minimal(std::vector<IpPrefix> prefixes) {
  std::sort(prefixes.begin(), prefixes.end(), [](const IpPrefix& a, const IpPrefix& b) {
    if (a.family() != b.family()) return a.family() < b.family();
    if (a.length() != b.length()) return a.length() < b.length();
    return a < b;
  });
  std::vector<IpPrefix> out;
  for (const auto& p : prefixes) {
    bool covered = false;
    for (const auto& o : out) {
      covered |= o.family() == p.family() && o.length() <= p.length() &&
                 o.Contains(p.NetworkAddress());
    }
    if (!covered) out.push_back(p);
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

PodNetworkState ComputePodNetwork(std::span<const std::shared_ptr<const api::Node>> nodes,
                                  std::string_view node_name,
                                  std::span<const IpPrefix> cluster_cidrs,
                                  const std::set<IpFamily>& families) {
  PodNetworkState out;
  std::vector<const api::Node*> sorted;
  for (const auto& n : nodes) {
    if (n) sorted.push_back(n.get());
  }
  std::sort(sorted.begin(), sorted.end(), [](const api::Node* a, const api::Node* b) {
    return a->metadata.name < b->metadata.name;
  });

  // This node's CIDRs first: another node claiming an overlapping range loses.
  std::vector<IpPrefix> claimed;
  for (const api::Node* n : sorted) {
    if (n->metadata.name != node_name) continue;
    out.node_known = true;
    for (const auto& c : n->pod_cidrs) {
      if (!families.contains(c.family())) continue;
      out.pod_cidrs.push_back(c.Network());
      claimed.push_back(c.Network());
    }
  }

  std::vector<IpPrefix> all = claimed;
  for (const api::Node* n : sorted) {
    if (n->metadata.name == node_name) continue;
    const std::vector<IpAddress> ips = n->NodeIps();
    for (const auto& c : n->pod_cidrs) {
      if (!families.contains(c.family())) continue;
      const IpPrefix cidr = c.Network();
      const std::string what = "node " + n->metadata.name + ": pod CIDR " + cidr.ToString();
      auto overlap = std::find_if(claimed.begin(), claimed.end(),
                                  [&](const IpPrefix& o) { return o.Overlaps(cidr); });
      if (overlap != claimed.end()) {
        out.problems.push_back(what + " overlaps " + overlap->ToString() +
                               ", claimed earlier; not routed");
        continue;
      }
      auto via = std::find_if(ips.begin(), ips.end(),
                              [&](const IpAddress& ip) { return ip.family() == cidr.family(); });
      if (via == ips.end()) {
        out.problems.push_back(what + " has no node IP of its family (status.addresses); "
                                      "not routed");
        continue;
      }
      claimed.push_back(cidr);
      all.push_back(cidr);
      out.routes.push_back(PodRoute{cidr, *via, n->metadata.name});
    }
  }
  std::sort(out.routes.begin(), out.routes.end());

  for (const auto& c : cluster_cidrs) {
    if (families.contains(c.family())) all.push_back(c.Network());
  }
  out.cluster_cidrs = Minimal(std::move(all));
  return out;
}

}  // namespace sluice::state
