// core/v1 Node as a typed value: the node's identity, pod CIDRs, addresses and readiness.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/ip_address.h"
#include "controlplane/api/json_dom.h"
#include "controlplane/api/object_meta.h"

namespace sluice::api {

// Address types are open-ended (cloud providers add their own): unknown ones are kOther, kept.
enum class NodeAddressType : uint8_t {
  kHostname,
  kInternalIp,
  kExternalIp,
  kInternalDns,
  kExternalDns,
  kOther
};
enum class ConditionStatus : uint8_t { kTrue, kFalse, kUnknown };
std::string_view ToString(NodeAddressType t);
std::string_view ToString(ConditionStatus s);

inline constexpr std::string_view kZoneLabel = "topology.kubernetes.io/zone";

struct NodeAddress {
  NodeAddressType type = NodeAddressType::kOther;
  std::string type_name;        // as sent, for kOther
  std::string address;          // as sent: a name for Hostname/*DNS
  std::optional<IpAddress> ip;  // InternalIP and ExternalIP (required to be an IP there)

  bool operator==(const NodeAddress&) const = default;
};

struct Node {
  ObjectMeta metadata;
  // spec.podCIDRs (spec.podCIDR when the list is absent): at most one per family, primary first.
  std::vector<IpPrefix> pod_cidrs;
  bool unschedulable = false;
  // spec.taints[].key: a proxy only looks at which taints are present (the cluster autoscaler's
  // ToBeDeletedByClusterAutoscaler takes a node out of load balancers).
  std::vector<std::string> taint_keys;
  std::vector<NodeAddress> addresses;
  // status of the "Ready" condition; nullopt when the node reports none yet. Unknown status
  // strings read as kUnknown.
  std::optional<ConditionStatus> ready;

  // labels["topology.kubernetes.io/zone"], "" when absent: the zone for topology hints.
  std::string_view Zone() const;
  // The node IPs a proxy uses: the first InternalIP of each family, else the first ExternalIP.
  std::vector<IpAddress> NodeIps() const;

  bool operator==(const Node&) const = default;
};

// Wire -> value; kind and apiVersion (v1) are checked when present. Throws ParseError.
Node ParseNode(JsonElement object);
Node ParseNode(const nlohmann::json& object);  // the same, re-read
// Semantic checks (README.md). Throws ValidationError.
void Validate(const Node& n);

}  // namespace sluice::api
