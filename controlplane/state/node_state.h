// NodeState: what one node must do for Services, as a pure function of ClusterState and the node's
// identity. It holds, per Service and IP family, every service port this node serves (ClusterIP,
// NodePort, ExternalIPs, LoadBalancer ingress IPs) with its endpoints already categorised the way
// kube-proxy's CategorizeEndpoints does (readiness, serving/terminating fallback, topology hints,
// Local traffic policies), and the verdict for traffic that has no usable endpoint (REJECT when
// the Service has none anywhere, DROP when only a Local policy leaves this node without one).
// No kernel knowledge here: backends turn it into rules.
#pragma once

#include <compare>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "common/ip_address.h"
#include "controlplane/api/endpoint_slice.h"
#include "controlplane/api/node.h"
#include "controlplane/api/service.h"

namespace sluice::state {

// kube-proxy's ServicePortName: a Service port identified by namespace/name, port name and
// protocol. Printed "namespace/name:port" ("namespace/name" for an unnamed port).
struct ServicePortName {
  std::string namespace_name;
  std::string name;
  std::string port;  // spec.ports[].name, "" for a single unnamed port
  api::Protocol protocol = api::Protocol::kTcp;

  std::string ServiceKey() const { return namespace_name + "/" + name; }
  std::string ToString() const;
  auto operator<=>(const ServicePortName&) const = default;
};

// One backend address of a service port, with the conditions that decided whether it is used.
struct Endpoint {
  IpAddress ip;
  uint16_t port = 0;
  bool local = false;  // on this node (endpoint nodeName == this node's name)
  bool ready = true;
  bool serving = true;
  bool terminating = false;

  std::string ToString() const;  // "10.0.0.1:80", "[fd00::1]:80"
  bool operator==(const Endpoint&) const = default;
};

// What happens to traffic for a destination when the policy's endpoint list is empty.
enum class TrafficVerdict : uint8_t {
  kForward,  // there are endpoints: load-balance over them
  kReject,   // the Service has no usable endpoint anywhere: TCP RST / ICMP unreachable
  kDrop,     // endpoints exist, but none this node may use under a Local policy
};
std::string_view ToString(TrafficVerdict v);

struct ServicePortState {
  ServicePortName name;
  IpFamily family = IpFamily::kV4;
  IpAddress cluster_ip;
  uint16_t port = 0;
  uint16_t node_port = 0;  // 0: none
  // Of this family only; the other family's addresses go to the other family's port.
  std::vector<IpAddress> external_ips;
  // status.loadBalancer.ingress[].ip whose ipMode is VIP (or unset): the node captures them.
  std::vector<IpAddress> load_balancer_ips;
  std::vector<IpPrefix> load_balancer_source_ranges;
  // ClientIP session affinity timeout; 0 when affinity is None.
  uint32_t affinity_timeout_seconds = 0;
  // Local traffic policies in effect (externalTrafficPolicy only counts for NodePort and
  // LoadBalancer Services, as kube-proxy reads it).
  bool external_policy_local = false;
  bool internal_policy_local = false;
  // LoadBalancer + externalTrafficPolicy Local: where the health check server listens.
  uint16_t health_check_node_port = 0;

  // Usable endpoints for Cluster policy (nullopt-like empty when the port never uses them), and
  // for Local policy; both sorted by address and port.
  std::vector<Endpoint> cluster_endpoints;
  std::vector<Endpoint> local_endpoints;
  // Ready (or serving-terminating) endpoints exist somewhere in the cluster.
  bool has_any_endpoints = false;
  // Local endpoints that are ready: what the health check node port reports.
  uint32_t local_ready_endpoints = 0;
  TrafficVerdict internal_verdict = TrafficVerdict::kReject;  // ClusterIP traffic
  TrafficVerdict external_verdict = TrafficVerdict::kReject;  // NodePort, ExternalIP, LB traffic

  bool externally_accessible() const {
    return node_port != 0 || !external_ips.empty() || !load_balancer_ips.empty();
  }
  // The endpoints ClusterIP traffic goes to, and the ones external traffic goes to.
  const std::vector<Endpoint>& internal_endpoints() const {
    return internal_policy_local ? local_endpoints : cluster_endpoints;
  }
  const std::vector<Endpoint>& external_endpoints() const {
    return external_policy_local ? local_endpoints : cluster_endpoints;
  }
  // Every endpoint some destination of this port may use (sorted, no duplicates).
  std::vector<Endpoint> AllReachableEndpoints() const;

  std::string ToString() const;  // one line: name, family, destinations, endpoints, verdicts
  bool operator==(const ServicePortState&) const = default;
};

// All ports of one Service, both families: IPv4 ports first, then IPv6, each in spec order.
struct ServiceState {
  std::string key;  // "namespace/name"
  std::vector<ServicePortState> ports;

  bool operator==(const ServiceState&) const = default;
};
using ServiceStatePtr = std::shared_ptr<const ServiceState>;

// The node as NodeState needs it: identity, topology, addresses.
struct NodeInfo {
  std::string name;
  std::string zone;  // topology.kubernetes.io/zone, "" when unlabelled
  std::vector<IpAddress> node_ips;
  std::vector<IpPrefix> pod_cidrs;
  bool known = false;          // the Node object has been seen
  bool being_deleted = false;  // deletionTimestamp set: /healthz reports the node not eligible
  std::vector<std::string> taint_keys;  // ToBeDeletedByClusterAutoscaler: not eligible either

  bool operator==(const NodeInfo&) const = default;
};

struct NodeStateOptions {
  std::string node_name;
  // The families this node proxies (kube-proxy runs one proxier per family the node supports).
  std::set<IpFamily> families = {IpFamily::kV4, IpFamily::kV6};
};

struct NodeState {
  NodeInfo node;
  std::map<std::string, ServiceStatePtr, std::less<>> services;  // by "namespace/name"

  size_t ServicePortCount() const;
  bool operator==(const NodeState& other) const;  // deep: compares the states, not pointers
};

NodeInfo ComputeNodeInfo(const std::string& node_name, const api::Node* node);

// The pure function at the heart of it: one Service and its EndpointSlices seen from one node.
// nullopt for Services the proxy ignores (headless, ExternalName, no cluster IP of an enabled
// family).
std::optional<ServiceState> ComputeServiceState(
    const api::Service& service, std::span<const std::shared_ptr<const api::EndpointSlice>> slices,
    const NodeInfo& node, const NodeStateOptions& options);

}  // namespace sluice::state
