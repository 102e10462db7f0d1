// discovery.k8s.io/v1 EndpointSlice as a typed value.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/boxed.h"
#include "common/ip_address.h"
#include "controlplane/api/json_dom.h"
#include "controlplane/api/object_meta.h"
#include "controlplane/api/service.h"

namespace sluice::api {

// FQDN slices exist (deprecated) and are ignored by proxies; they parse, with no IP addresses.
enum class AddressType : uint8_t { kIpv4, kIpv6, kFqdn };
std::string_view ToString(AddressType t);

// The label naming the Service a slice belongs to.
inline constexpr std::string_view kServiceNameLabel = "kubernetes.io/service-name";

// The three conditions as sent: nil is not false, and each nil means something different.
struct EndpointConditions {
  std::optional<bool> ready;
  std::optional<bool> serving;
  std::optional<bool> terminating;

  // How kube-proxy reads them: ready and serving default to true, terminating to false.
  bool IsReady() const { return ready.value_or(true); }
  bool IsServing() const { return serving.value_or(true); }
  bool IsTerminating() const { return terminating.value_or(false); }

  bool operator==(const EndpointConditions&) const = default;
};

struct EndpointHints {
  std::vector<std::string> for_zones;  // hints.forZones[].name
  std::vector<std::string> for_nodes;  // hints.forNodes[].name

  bool operator==(const EndpointHints&) const = default;
};

struct ObjectReference {
  std::string kind;
  std::string namespace_name;
  std::string name;
  std::string uid;

  bool operator==(const ObjectReference&) const = default;
};

struct Endpoint {
  // IPv4 or IPv6 slices: 1..100 addresses of the slice's family; proxies use the first only.
  std::vector<IpAddress> addresses;
  // FQDN slices: the names, unparsed.
  std::vector<std::string> fqdn_addresses;
  EndpointConditions conditions;
  // Usually empty, and held for every endpoint of every slice: boxed (a pointer when empty).
  Boxed<std::string> hostname;
  std::optional<std::string> node_name;  // local iff equal to this node's name
  std::optional<std::string> zone;
  Boxed<EndpointHints> hints;
  Boxed<ObjectReference> target_ref;

  bool operator==(const Endpoint&) const = default;
};

struct EndpointPort {
  // nil is not "": "" joins the unnamed service port, nil joins none (kube-proxy skips the port).
  std::optional<std::string> name;
  Protocol protocol = Protocol::kTcp;
  std::optional<uint16_t> port;  // nil (or 0 on the wire): the port is skipped
  std::optional<std::string> app_protocol;

  bool operator==(const EndpointPort&) const = default;
};

struct EndpointSlice {
  ObjectMeta metadata;
  AddressType address_type = AddressType::kIpv4;
  std::vector<Endpoint> endpoints;
  std::vector<EndpointPort> ports;

  // metadata.labels["kubernetes.io/service-name"]; "" when absent (Validate rejects that).
  std::string_view ServiceName() const;

  bool operator==(const EndpointSlice&) const = default;
};

// Drops what a service proxy never reads, for caches that hold every slice of a large cluster
// (client-go's informer transforms do the same): targetRef and hostname of each endpoint, every
// annotation but endpoints.kubernetes.io/last-change-trigger-time, every label but the
// service-name and service-proxy-name/headless ones. About a third of a slice's memory.
void TrimForProxy(EndpointSlice& s);

// Wire -> value; kind and apiVersion (discovery.k8s.io/v1) are checked when present. Throws
// ParseError.
EndpointSlice ParseEndpointSlice(JsonElement object);
EndpointSlice ParseEndpointSlice(const nlohmann::json& object);  // the same, re-read
// Semantic checks (README.md). Throws ValidationError.
void Validate(const EndpointSlice& s);

}  // namespace sluice::api
