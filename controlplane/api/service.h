// core/v1 Service as a typed value: what a service proxy reads of it, defaulted as the API server
// defaults it.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/ip_address.h"
#include "controlplane/api/json_dom.h"
#include "controlplane/api/object_meta.h"

namespace sluice::api {

enum class Protocol : uint8_t { kTcp, kUdp, kSctp };
enum class ServiceType : uint8_t { kClusterIp, kNodePort, kLoadBalancer, kExternalName };
enum class IpFamilyPolicy : uint8_t { kSingleStack, kPreferDualStack, kRequireDualStack };
enum class SessionAffinity : uint8_t { kNone, kClientIp };
// externalTrafficPolicy and internalTrafficPolicy share their values.
enum class TrafficPolicy : uint8_t { kCluster, kLocal };
// How the load balancer delivers traffic: kVip keeps the destination (the proxy captures the LB IP
// on the node), kProxy rewrites it (the proxy must not capture it).
enum class LoadBalancerIpMode : uint8_t { kVip, kProxy };
// spec.trafficDistribution. A hint, so a value this build does not know is kept as kUnrecognized
// and routing falls back to the default, rather than rejecting the Service. "PreferClose" is the
// deprecated spelling of PreferSameZone and reads as kPreferSameZone.
enum class TrafficDistribution : uint8_t { kPreferSameZone, kPreferSameNode, kUnrecognized };

std::string_view ToString(Protocol p);
std::string_view ToString(ServiceType t);
std::string_view ToString(IpFamilyPolicy p);
std::string_view ToString(SessionAffinity a);
std::string_view ToString(TrafficPolicy p);
std::string_view ToString(LoadBalancerIpMode m);
std::string_view ToString(IpFamily f);  // "IPv4" / "IPv6", the API's spelling

// spec.ports[].targetPort: a number, or the name of a container port.
using TargetPort = std::variant<uint16_t, std::string>;

struct ServicePort {
  std::string name;  // "" only when the Service has a single port; the join key with slice ports
  Protocol protocol = Protocol::kTcp;
  uint16_t port = 0;       // 1..65535
  TargetPort target_port;  // defaults to `port`
  uint16_t node_port = 0;  // 0: none allocated
  std::optional<std::string> app_protocol;

  bool operator==(const ServicePort&) const = default;
};

struct PortStatus {
  uint16_t port = 0;
  Protocol protocol = Protocol::kTcp;
  std::optional<std::string> error;

  bool operator==(const PortStatus&) const = default;
};

struct LoadBalancerIngress {
  std::optional<IpAddress> ip;
  std::string hostname;
  std::optional<LoadBalancerIpMode> ip_mode;  // kVip when `ip` is set and the server sent none
  std::vector<PortStatus> ports;

  bool operator==(const LoadBalancerIngress&) const = default;
};

struct ServiceSpec {
  ServiceType type = ServiceType::kClusterIp;
  // clusterIP "None": no virtual IP, DNS only; cluster_ips is then empty.
  bool headless = false;
  // clusterIPs (clusterIP when the list is absent): one per family, primary first. Empty for
  // headless and ExternalName Services, and for manifests that leave allocation to the server.
  std::vector<IpAddress> cluster_ips;
  // Same order as cluster_ips; taken from cluster_ips when absent.
  std::vector<IpFamily> ip_families;
  // SingleStack when unset (RequireDualStack for a headless Service without selector); nullopt
  // for ExternalName, which has no IP families.
  std::optional<IpFamilyPolicy> ip_family_policy;
  std::vector<ServicePort> ports;
  StringMap selector;
  SessionAffinity session_affinity = SessionAffinity::kNone;
  // sessionAffinityConfig.clientIP.timeoutSeconds, 1..86400; 10800 when ClientIP leaves it
  // unset; 0 when affinity is None (the server clears it then).
  int32_t session_affinity_timeout_seconds = 0;
  std::vector<IpAddress> external_ips;
  std::optional<IpAddress> load_balancer_ip;  // deprecated field, still honoured by some LBs
  // spec.loadBalancerSourceRanges, or the older annotation
  // service.beta.kubernetes.io/load-balancer-source-ranges when the field is empty. Networks
  // (host bits cleared), as the proxy matches them.
  std::vector<IpPrefix> load_balancer_source_ranges;
  std::optional<std::string> load_balancer_class;
  // Cluster when unset, which is what the proxy does for Services the server leaves unset.
  TrafficPolicy external_traffic_policy = TrafficPolicy::kCluster;
  TrafficPolicy internal_traffic_policy = TrafficPolicy::kCluster;
  uint16_t health_check_node_port =
      0;  // 0: none; set for LoadBalancer + externalTrafficPolicy Local
  bool publish_not_ready_addresses = false;
  std::optional<TrafficDistribution> traffic_distribution;
  // true by default for LoadBalancer, nullopt for other types.
  std::optional<bool> allocate_load_balancer_node_ports;
  std::string external_name;  // ExternalName Services only

  bool operator==(const ServiceSpec&) const = default;
};

struct ServiceStatus {
  std::vector<LoadBalancerIngress> load_balancer_ingress;

  bool operator==(const ServiceStatus&) const = default;
};

struct Service {
  ObjectMeta metadata;
  ServiceSpec spec;
  ServiceStatus status;

  bool operator==(const Service&) const = default;
};

// Services a proxy programs nothing for: headless, ExternalName, or without a cluster IP yet.
bool SkippedByProxy(const Service& s);

// Drops what a service proxy never reads, for caches of every Service (client-go's informer
// transforms do the same): annotations (the load-balancer-source-ranges one is already folded into
// the spec by the parser), the selector, and every label but the service-proxy-name and headless
// ones.
void TrimForProxy(Service& s);

// Wire -> value. `object` is a Service; kind and apiVersion (v1) are checked when present (items
// of a ServiceList carry neither). Throws ParseError naming namespace/name and the field.
Service ParseService(JsonElement object);
Service ParseService(const nlohmann::json& object);  // the same, re-read
// Semantic checks a proxy relies on (README.md lists them). Throws ValidationError.
void Validate(const Service& s);

}  // namespace sluice::api
