#include "controlplane/state/node_state.h"

#include <algorithm>
#include <sstream>

namespace sluice::state {

namespace {

bool Has(const std::vector<std::string>& names, const std::string& name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

bool ByAddress(const Endpoint& a, const Endpoint& b) {
  return std::tie(a.ip, a.port) < std::tie(b.ip, b.port);
}

// An endpoint while it is being categorised: its hints are needed to choose, not afterwards, so
// the stored Endpoint does not carry them (200,000 endpoints in a large cluster).
struct Candidate {
  Endpoint ep;
  const api::EndpointHints* hints = nullptr;  // points into the slice, which outlives the call

  bool HintsForZone(const std::string& zone) const { return hints && Has(hints->for_zones, zone); }
  bool HintsForNode(const std::string& node) const { return hints && Has(hints->for_nodes, node); }
  bool HasZoneHints() const { return hints && !hints->for_zones.empty(); }
  bool HasNodeHints() const { return hints && !hints->for_nodes.empty(); }
};

// kube-proxy's topology modes, chosen from the hints the EndpointSlice controller wrote (the
// controller is where spec.trafficDistribution and the topology-mode annotation take effect).
enum class TopologyMode { kNone, kSameNode, kSameZone };

TopologyMode TopologyModeFromHints(const std::vector<Candidate>& endpoints, const NodeInfo& node) {
  bool any_ready = false;
  bool all_node_hints = true, for_this_node = false;
  bool all_zone_hints = true, for_this_zone = false;
  for (const auto& c : endpoints) {
    if (!c.ep.ready) continue;
    any_ready = true;
    if (!c.HasNodeHints()) {
      all_node_hints = false;
    } else if (c.HintsForNode(node.name)) {
      for_this_node = true;
    }
    if (!c.HasZoneHints()) {
      all_zone_hints = false;
    } else if (c.HintsForZone(node.zone)) {
      for_this_zone = true;
    }
  }
  if (!any_ready) return TopologyMode::kNone;
  // Every ready endpoint must carry hints, and at least one must be meant for us; otherwise the
  // hints are ignored (a partial rollout must not black-hole this node).
  if (all_node_hints && for_this_node) return TopologyMode::kSameNode;
  if (all_zone_hints && for_this_zone) return TopologyMode::kSameZone;
  return TopologyMode::kNone;
}

bool AvailableForTopology(const Candidate& c, TopologyMode mode, const NodeInfo& node) {
  switch (mode) {
    case TopologyMode::kNone:
      return true;
    case TopologyMode::kSameNode:
      return c.HintsForNode(node.name);
    case TopologyMode::kSameZone:
      return c.HintsForZone(node.zone);
  }
  return false;
}

template <typename Pred>
std::vector<Endpoint> Filter(const std::vector<Candidate>& in, Pred pred) {
  std::vector<Endpoint> out;
  for (const auto& c : in) {
    if (pred(c)) out.push_back(c.ep);
  }
  return out;
}

// kube-proxy's CategorizeEndpoints, filling the port's cluster/local lists and has_any_endpoints.
void Categorize(const std::vector<Candidate>& all, const NodeInfo& node, ServicePortState& sp) {
  if (all.empty()) return;
  // Cluster endpoints are needed unless both policies are Local: external traffic with a Local
  // policy still uses them when it originates on the node (short-circuit to cluster behaviour).
  const bool uses_cluster = !sp.internal_policy_local || sp.externally_accessible();
  const bool uses_local =
      sp.internal_policy_local || (sp.external_policy_local && sp.externally_accessible());

  if (uses_cluster) {
    TopologyMode mode = TopologyModeFromHints(all, node);
    sp.cluster_endpoints = Filter(
        all, [&](const Candidate& c) { return c.ep.ready && AvailableForTopology(c, mode, node); });
    // No ready endpoint anywhere (topology falls back by itself): use serving-terminating ones so
    // connections still drain to pods being shut down.
    if (sp.cluster_endpoints.empty()) {
      sp.cluster_endpoints =
          Filter(all, [](const Candidate& c) { return c.ep.serving && c.ep.terminating; });
    }
    if (!sp.cluster_endpoints.empty()) sp.has_any_endpoints = true;
  }
  if (!uses_local) return;

  bool local_ready = false, local_serving_terminating = false;
  for (const auto& c : all) {
    if (c.ep.ready) {
      sp.has_any_endpoints = true;
      local_ready |= c.ep.local;
    } else if (c.ep.serving && c.ep.terminating) {
      sp.has_any_endpoints = true;
      local_serving_terminating |= c.ep.local;
    }
  }
  if (local_ready) {
    sp.local_endpoints = Filter(all, [](const Candidate& c) { return c.ep.local && c.ep.ready; });
  } else if (local_serving_terminating) {
    sp.local_endpoints = Filter(
        all, [](const Candidate& c) { return c.ep.local && c.ep.serving && c.ep.terminating; });
  }
}

// The endpoints of one service port and family, merged over the Service's slices as kube-proxy's
// EndpointSliceCache does: the slice port joins the service port by name and protocol, the first
// address of each endpoint is used, duplicates across slices collapse (a local copy wins).
std::vector<Candidate> CollectEndpoints(
    std::span<const std::shared_ptr<const api::EndpointSlice>> slices, const api::ServicePort& port,
    IpFamily family, const NodeInfo& node) {
  const api::AddressType want =
      family == IpFamily::kV4 ? api::AddressType::kIpv4 : api::AddressType::kIpv6;
  std::vector<Candidate> out;
  for (const auto& slice : slices) {
    if (!slice || slice->address_type != want) continue;
    for (const auto& sp : slice->ports) {
      if (!sp.name || *sp.name != port.name || sp.protocol != port.protocol || !sp.port ||
          *sp.port == 0) {
        continue;
      }
      for (const auto& e : slice->endpoints) {
        if (e.addresses.empty() || e.addresses.front().family() != family) continue;
        Candidate c;
        c.ep.ip = e.addresses.front();
        c.ep.port = *sp.port;
        c.ep.local = e.node_name && *e.node_name == node.name && !node.name.empty();
        c.ep.ready = e.conditions.IsReady();
        c.ep.serving = e.conditions.IsServing();
        c.ep.terminating = e.conditions.IsTerminating();
        if (e.hints) c.hints = &*e.hints;
        out.push_back(c);
      }
    }
  }
  // Sort, then collapse duplicates keeping a local copy if there is one (the first of equal
  // addresses after a stable sort that puts local ones first).
  std::stable_sort(out.begin(), out.end(), [](const Candidate& a, const Candidate& b) {
    return std::tie(a.ep.ip, a.ep.port, b.ep.local) < std::tie(b.ep.ip, b.ep.port, a.ep.local);
  });
  out.erase(std::unique(out.begin(), out.end(),
                        [](const Candidate& a, const Candidate& b) {
                          return a.ep.ip == b.ep.ip && a.ep.port == b.ep.port;
                        }),
            out.end());
  return out;
}

template <typename T>
std::vector<T> OfFamily(const std::vector<T>& in, IpFamily family) {
  std::vector<T> out;
  for (const auto& v : in) {
    if (v.family() == family) out.push_back(v);
  }
  return out;
}

}  // namespace

std::string ServicePortName::ToString() const {
  std::string s = namespace_name + "/" + name;
  if (!port.empty()) s += ":" + port;
  return s;
}

std::string Endpoint::ToString() const {
  if (ip.is_v4()) return ip.ToString() + ":" + std::to_string(port);
  return "[" + ip.ToString() + "]:" + std::to_string(port);
}

std::string_view ToString(TrafficVerdict v) {
  switch (v) {
    case TrafficVerdict::kForward:
      return "forward";
    case TrafficVerdict::kReject:
      return "reject";
    case TrafficVerdict::kDrop:
      return "drop";
  }
  return "?";
}

std::vector<Endpoint> ServicePortState::AllReachableEndpoints() const {
  std::vector<Endpoint> out = cluster_endpoints;
  out.insert(out.end(), local_endpoints.begin(), local_endpoints.end());
  std::sort(out.begin(), out.end(), ByAddress);
  out.erase(std::unique(out.begin(), out.end(),
                        [](const Endpoint& a, const Endpoint& b) {
                          return a.ip == b.ip && a.port == b.port;
                        }),
            out.end());
  return out;
}

std::string ServicePortState::ToString() const {
  std::ostringstream o;
  auto addr = [](const IpAddress& ip, uint16_t port) {
    return ip.is_v4() ? ip.ToString() + ":" + std::to_string(port)
                      : "[" + ip.ToString() + "]:" + std::to_string(port);
  };
  o << name.ToString() << " " << api::ToString(name.protocol) << " "
    << (family == IpFamily::kV4 ? "IPv4" : "IPv6") << " clusterIP " << addr(cluster_ip, port);
  if (node_port) o << " nodePort " << node_port;
  for (const auto& ip : external_ips) o << " externalIP " << addr(ip, port);
  for (const auto& ip : load_balancer_ips) o << " loadBalancerIP " << addr(ip, port);
  if (!load_balancer_source_ranges.empty()) {
    o << " sourceRanges";
    for (size_t i = 0; i < load_balancer_source_ranges.size(); ++i) {
      o << (i ? "," : " ") << load_balancer_source_ranges[i].ToString();
    }
  }
  if (affinity_timeout_seconds) o << " affinity ClientIP/" << affinity_timeout_seconds << "s";
  if (internal_policy_local) o << " internalTrafficPolicy Local";
  if (external_policy_local) o << " externalTrafficPolicy Local";
  if (health_check_node_port) o << " healthCheckNodePort " << health_check_node_port;
  auto list = [&](const char* label, const std::vector<Endpoint>& eps) {
    o << " " << label << " [";
    for (size_t i = 0; i < eps.size(); ++i) {
      o << (i ? " " : "") << eps[i].ToString();
      if (eps[i].local) o << "(local)";
      if (!eps[i].ready) o << (eps[i].terminating ? "(terminating)" : "(not-ready)");
    }
    o << "]";
  };
  list("internal", internal_endpoints());
  o << " " << state::ToString(internal_verdict);
  if (externally_accessible()) {
    list("external", external_endpoints());
    o << " " << state::ToString(external_verdict);
  }
  return o.str();
}

size_t NodeState::ServicePortCount() const {
  size_t n = 0;
  for (const auto& [key, s] : services) n += s->ports.size();
  return n;
}

bool NodeState::operator==(const NodeState& other) const {
  if (node != other.node || services.size() != other.services.size()) return false;
  auto a = services.begin();
  auto b = other.services.begin();
  for (; a != services.end(); ++a, ++b) {
    if (a->first != b->first) return false;
    if (a->second != b->second && *a->second != *b->second) return false;
  }
  return true;
}

NodeInfo ComputeNodeInfo(const std::string& node_name, const api::Node* node) {
  NodeInfo info;
  info.name = node_name;
  if (!node) return info;
  info.known = true;
  info.zone = std::string(node->Zone());
  info.node_ips = node->NodeIps();
  info.pod_cidrs = node->pod_cidrs;
  info.being_deleted = node->metadata.being_deleted();
  info.taint_keys = node->taint_keys;
  return info;
}

std::optional<ServiceState> ComputeServiceState(
    const api::Service& service, std::span<const std::shared_ptr<const api::EndpointSlice>> slices,
    const NodeInfo& node, const NodeStateOptions& options) {
  if (api::SkippedByProxy(service)) return std::nullopt;
  const api::ServiceSpec& spec = service.spec;
  ServiceState state;
  state.key = service.metadata.Key();

  std::vector<IpAddress> lb_ips;
  for (const auto& ingress : service.status.load_balancer_ingress) {
    // ipMode Proxy: the load balancer rewrites the destination, so the node must not capture it.
    if (ingress.ip &&
        ingress.ip_mode.value_or(api::LoadBalancerIpMode::kVip) == api::LoadBalancerIpMode::kVip) {
      lb_ips.push_back(*ingress.ip);
    }
  }
  const bool node_port_type =
      spec.type == api::ServiceType::kNodePort || spec.type == api::ServiceType::kLoadBalancer;

  for (IpFamily family : {IpFamily::kV4, IpFamily::kV6}) {
    if (!options.families.contains(family)) continue;
    auto cip = std::find_if(spec.cluster_ips.begin(), spec.cluster_ips.end(),
                            [&](const IpAddress& ip) { return ip.family() == family; });
    if (cip == spec.cluster_ips.end()) continue;
    for (const auto& port : spec.ports) {
      ServicePortState sp;
      sp.name = {service.metadata.namespace_name, service.metadata.name, port.name, port.protocol};
      sp.family = family;
      sp.cluster_ip = *cip;
      sp.port = port.port;
      sp.node_port = port.node_port;
      sp.external_ips = OfFamily(spec.external_ips, family);
      sp.load_balancer_ips = OfFamily(lb_ips, family);
      sp.load_balancer_source_ranges = OfFamily(spec.load_balancer_source_ranges, family);
      if (spec.session_affinity == api::SessionAffinity::kClientIp) {
        sp.affinity_timeout_seconds =
            spec.session_affinity_timeout_seconds > 0
                ? static_cast<uint32_t>(spec.session_affinity_timeout_seconds)
                : 10800;
      }
      sp.internal_policy_local = spec.internal_traffic_policy == api::TrafficPolicy::kLocal;
      sp.external_policy_local = node_port_type && sp.externally_accessible() &&
                                 spec.external_traffic_policy == api::TrafficPolicy::kLocal;
      if (spec.type == api::ServiceType::kLoadBalancer && sp.external_policy_local) {
        sp.health_check_node_port = spec.health_check_node_port;
      }

      std::vector<Candidate> all = CollectEndpoints(slices, port, family, node);
      for (const auto& c : all) sp.local_ready_endpoints += (c.ep.local && c.ep.ready) ? 1 : 0;
      Categorize(all, node, sp);

      if (!sp.has_any_endpoints) {
        sp.internal_verdict = sp.external_verdict = TrafficVerdict::kReject;
      } else {
        sp.internal_verdict =
            sp.internal_endpoints().empty() ? TrafficVerdict::kDrop : TrafficVerdict::kForward;
        sp.external_verdict =
            sp.external_endpoints().empty() ? TrafficVerdict::kDrop : TrafficVerdict::kForward;
      }
      state.ports.push_back(std::move(sp));
    }
  }
  if (state.ports.empty()) return std::nullopt;
  return state;
}

}  // namespace sluice::state
