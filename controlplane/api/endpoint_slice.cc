#include "controlplane/api/endpoint_slice.h"

#include <set>

#include "controlplane/api/field_reader.h"

namespace sluice::api {
namespace {

constexpr EnumName<AddressType> kAddressTypes[] = {
    {"IPv4", AddressType::kIpv4}, {"IPv6", AddressType::kIpv6}, {"FQDN", AddressType::kFqdn}};

// Limits of the API (discovery/v1 validation); beyond them the object is not one the server sent.
constexpr size_t kMaxEndpoints = 1000;
constexpr size_t kMaxPorts = 100;
constexpr size_t kMaxAddresses = 100;

std::vector<std::string> ReadNames(FieldReader& r, JsonObject hints, std::string_view key) {
  std::vector<std::string> out;
  auto list = r.Array(hints, key);
  if (!list) return out;
  auto scope = r.Enter(key);
  size_t i = 0;
  for (JsonElement h : *list) {
    if (!h.is_object()) r.FailAt(i, "expected an object, got " + FieldReader::Describe(h));
    auto item = r.Enter(i++);
    auto name = r.String(h.get_object().value_unsafe(), "name");
    out.emplace_back(name.value_or(""));
  }
  return out;
}

Endpoint ReadEndpoint(FieldReader& r, JsonObject e, AddressType type) {
  Endpoint ep;
  std::vector<std::string> addresses = r.StringList(e, "addresses");
  {
    auto scope = r.Enter("addresses");
    if (type == AddressType::kFqdn) {
      ep.fqdn_addresses = std::move(addresses);
    } else {
      ep.addresses.reserve(addresses.size());
      for (size_t i = 0; i < addresses.size(); ++i) {
        auto ip = ParseApiIp(addresses[i]);
        if (!ip) r.FailAt(i, "invalid IP address " + FieldReader::Quote(addresses[i]));
        ep.addresses.push_back(*ip);
      }
    }
  }
  if (auto c = r.Object(e, "conditions")) {
    auto scope = r.Enter("conditions");
    ep.conditions.ready = r.Bool(*c, "ready");
    ep.conditions.serving = r.Bool(*c, "serving");
    ep.conditions.terminating = r.Bool(*c, "terminating");
  }
  if (auto v = r.String(e, "hostname")) ep.hostname = std::string(*v);
  if (auto v = r.String(e, "nodeName")) ep.node_name = *v;
  if (auto v = r.String(e, "zone")) ep.zone = *v;
  if (auto h = r.Object(e, "hints")) {
    auto scope = r.Enter("hints");
    ep.hints.emplace();
    ep.hints->for_zones = ReadNames(r, *h, "forZones");
    ep.hints->for_nodes = ReadNames(r, *h, "forNodes");
  }
  if (auto t = r.Object(e, "targetRef")) {
    auto scope = r.Enter("targetRef");
    ObjectReference ref;
    if (auto v = r.String(*t, "kind")) ref.kind = *v;
    if (auto v = r.String(*t, "namespace")) ref.namespace_name = *v;
    if (auto v = r.String(*t, "name")) ref.name = *v;
    if (auto v = r.String(*t, "uid")) ref.uid = *v;
    ep.target_ref = std::move(ref);
  }
  return ep;
}

EndpointPort ReadPort(FieldReader& r, JsonObject p) {
  EndpointPort port;
  if (auto v = r.String(p, "name")) port.name = *v;
  port.protocol = ReadProtocol(r, p);
  if (auto n = r.Int(p, "port", 0, 65535); n && *n != 0) port.port = static_cast<uint16_t>(*n);
  if (auto v = r.String(p, "appProtocol")) port.app_protocol = *v;
  return port;
}

}  // namespace

std::string_view ToString(AddressType t) {
  for (const auto& n : kAddressTypes) {
    if (n.value == t) return n.text;
  }
  return "?";
}

std::string_view EndpointSlice::ServiceName() const {
  return metadata.Label(kServiceNameLabel).value_or("");
}

EndpointSlice ParseEndpointSlice(JsonElement json) {
  FieldReader r("EndpointSlice", ObjectIdentity(json));
  JsonObject object = CheckTypeMeta(r, json, "EndpointSlice", "discovery.k8s.io/v1");
  EndpointSlice s;
  s.metadata = ReadObjectMeta(r, object);
  auto type = r.Enum<AddressType>(object, "addressType", kAddressTypes);
  if (!type) r.Fail("addressType", "required");
  s.address_type = *type;
  if (auto endpoints = r.Array(object, "endpoints")) {
    auto scope = r.Enter("endpoints");
    s.endpoints.reserve(endpoints->size());
    size_t i = 0;
    for (JsonElement e : *endpoints) {
      if (!e.is_object()) r.FailAt(i, "expected an object, got " + FieldReader::Describe(e));
      auto item = r.Enter(i++);
      s.endpoints.push_back(ReadEndpoint(r, e.get_object().value_unsafe(), s.address_type));
    }
  }
  if (auto ports = r.Array(object, "ports")) {
    auto scope = r.Enter("ports");
    s.ports.reserve(ports->size());
    size_t i = 0;
    for (JsonElement p : *ports) {
      if (!p.is_object()) r.FailAt(i, "expected an object, got " + FieldReader::Describe(p));
      auto item = r.Enter(i++);
      s.ports.push_back(ReadPort(r, p.get_object().value_unsafe()));
    }
  }
  return s;
}

EndpointSlice ParseEndpointSlice(const nlohmann::json& object) {
  return ParseNlohmann(object, [](JsonElement e) { return ParseEndpointSlice(e); });
}

void Validate(const EndpointSlice& s) {
  auto fail = [&](std::string field, std::string reason) {
    throw ValidationError("EndpointSlice", s.metadata.Key(), std::move(field), std::move(reason));
  };
  if (s.metadata.name.empty()) fail("metadata.name", "required");
  if (s.metadata.namespace_name.empty()) fail("metadata.namespace", "required");
  if (s.ServiceName().empty()) {
    fail("metadata.labels[" + std::string(kServiceNameLabel) + "]",
         "required: the slice belongs to no Service");
  }
  if (s.endpoints.size() > kMaxEndpoints) {
    fail("endpoints",
         std::to_string(s.endpoints.size()) + " entries, at most " + std::to_string(kMaxEndpoints));
  }
  if (s.ports.size() > kMaxPorts) {
    fail("ports",
         std::to_string(s.ports.size()) + " entries, at most " + std::to_string(kMaxPorts));
  }
  for (size_t i = 0; i < s.endpoints.size(); ++i) {
    const auto& e = s.endpoints[i];
    std::string at = "endpoints[" + std::to_string(i) + "].addresses";
    size_t n = s.address_type == AddressType::kFqdn ? e.fqdn_addresses.size() : e.addresses.size();
    if (n == 0 || n > kMaxAddresses) {
      fail(at, std::to_string(n) + " addresses, want 1.." + std::to_string(kMaxAddresses));
    }
    if (s.address_type == AddressType::kFqdn) continue;
    IpFamily want = s.address_type == AddressType::kIpv4 ? IpFamily::kV4 : IpFamily::kV6;
    for (size_t j = 0; j < e.addresses.size(); ++j) {
      if (e.addresses[j].family() != want) {
        fail(at + "[" + std::to_string(j) + "]", e.addresses[j].ToString() + " in an " +
                                                     std::string(ToString(s.address_type)) +
                                                     " slice");
      }
    }
  }
  std::set<std::string_view> names;
  for (size_t i = 0; i < s.ports.size(); ++i) {
    if (!s.ports[i].name) continue;
    if (!names.insert(*s.ports[i].name).second) {
      fail("ports[" + std::to_string(i) + "].name",
           "duplicate " + FieldReader::Quote(*s.ports[i].name));
    }
  }
}

}  // namespace sluice::api
