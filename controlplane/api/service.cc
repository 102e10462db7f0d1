#include "controlplane/api/service.h"

#include <limits>
#include <set>

#include "controlplane/api/field_reader.h"

namespace sluice::api {
namespace {

constexpr EnumName<Protocol> kProtocols[] = {
    {"TCP", Protocol::kTcp}, {"UDP", Protocol::kUdp}, {"SCTP", Protocol::kSctp}};
constexpr EnumName<ServiceType> kServiceTypes[] = {{"ClusterIP", ServiceType::kClusterIp},
                                                   {"NodePort", ServiceType::kNodePort},
                                                   {"LoadBalancer", ServiceType::kLoadBalancer},
                                                   {"ExternalName", ServiceType::kExternalName}};
constexpr EnumName<IpFamilyPolicy> kIpFamilyPolicies[] = {
    {"SingleStack", IpFamilyPolicy::kSingleStack},
    {"PreferDualStack", IpFamilyPolicy::kPreferDualStack},
    {"RequireDualStack", IpFamilyPolicy::kRequireDualStack}};
constexpr EnumName<SessionAffinity> kSessionAffinities[] = {
    {"None", SessionAffinity::kNone}, {"ClientIP", SessionAffinity::kClientIp}};
constexpr EnumName<TrafficPolicy> kTrafficPolicies[] = {{"Cluster", TrafficPolicy::kCluster},
                                                        {"Local", TrafficPolicy::kLocal}};
constexpr EnumName<LoadBalancerIpMode> kIpModes[] = {{"VIP", LoadBalancerIpMode::kVip},
                                                     {"Proxy", LoadBalancerIpMode::kProxy}};

template <typename E, size_t N>
std::string_view NameOf(const EnumName<E> (&names)[N], E value) {
  for (const auto& n : names) {
    if (n.value == value) return n.text;
  }
  return "?";
}

constexpr int32_t kDefaultAffinityTimeout = 10800;  // 3 hours, the API server's default
constexpr int32_t kMaxAffinityTimeout = 86400;
constexpr std::string_view kSourceRangesAnnotation =
    "service.beta.kubernetes.io/load-balancer-source-ranges";

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

void ReadClusterIps(FieldReader& r, JsonObject spec, ServiceSpec& s) {
  auto single = r.String(spec, "clusterIP");
  std::vector<std::string> list = r.StringList(spec, "clusterIPs");
  if (!list.empty()) {
    auto scope = r.Enter("clusterIPs");
    if (list[0] == "None") {
      if (list.size() > 1) r.FailAt(1, "\"None\" must be the only entry");
      s.headless = true;
    } else {
      for (size_t i = 0; i < list.size(); ++i) {
        auto ip = ParseApiIp(list[i]);
        if (!ip) r.FailAt(i, "invalid IP address " + FieldReader::Quote(list[i]));
        s.cluster_ips.push_back(*ip);
      }
    }
  }
  if (!single || single->empty()) return;
  if (*single == "None") {
    if (!list.empty() && !s.headless) {
      r.Fail("clusterIP", "\"None\" but spec.clusterIPs[0] is " + FieldReader::Quote(list[0]));
    }
    s.headless = true;
    return;
  }
  IpAddress ip = r.Ip(*single, "clusterIP");
  if (list.empty()) {
    s.cluster_ips.push_back(ip);
  } else if (s.headless || s.cluster_ips[0] != ip) {
    // The typed value has one list; a disagreement between the two fields cannot be kept.
    r.Fail("clusterIP", FieldReader::Quote(*single) + " differs from spec.clusterIPs[0] " +
                            FieldReader::Quote(list[0]));
  }
}

TargetPort ReadTargetPort(FieldReader& r, JsonObject port, uint16_t default_port) {
  auto v = FieldReader::Find(port, "targetPort");
  if (!v) return default_port;
  if (v->is_string()) {
    std::string_view name = v->get_string().value_unsafe();
    if (name.empty()) return default_port;
    return std::string(name);
  }
  if (!v->is_int64() && !v->is_uint64()) {
    r.Fail("targetPort", "expected an integer or a string, got " + FieldReader::Describe(*v));
  }
  auto n = r.Int(port, "targetPort", 0, 65535);
  return *n == 0 ? default_port : static_cast<uint16_t>(*n);
}

ServicePort ReadServicePort(FieldReader& r, JsonObject p) {
  ServicePort sp;
  if (auto v = r.String(p, "name")) sp.name = *v;
  sp.protocol = ReadProtocol(r, p);
  auto port = r.Int(p, "port", 1, 65535);
  if (!port) r.Fail("port", "required");
  sp.port = static_cast<uint16_t>(*port);
  sp.target_port = ReadTargetPort(r, p, sp.port);
  sp.node_port = static_cast<uint16_t>(r.Int(p, "nodePort", 0, 65535).value_or(0));
  if (auto v = r.String(p, "appProtocol")) sp.app_protocol = *v;
  return sp;
}

void ReadSourceRanges(FieldReader& r, JsonObject spec, const ObjectMeta& meta, ServiceSpec& s) {
  std::vector<std::string> ranges = r.StringList(spec, "loadBalancerSourceRanges");
  if (!ranges.empty()) {
    auto scope = r.Enter("loadBalancerSourceRanges");
    for (size_t i = 0; i < ranges.size(); ++i) {
      auto p = ParseApiCidr(Trim(ranges[i]));
      if (!p) r.FailAt(i, "invalid CIDR " + FieldReader::Quote(ranges[i]));
      s.load_balancer_source_ranges.push_back(p->Network());
    }
    return;
  }
  // The annotation predates the field; the proxy honours it when the field is empty.
  auto annotation = meta.Annotation(kSourceRangesAnnotation);
  if (!annotation) return;
  std::string_view rest = *annotation;
  while (!rest.empty()) {
    auto comma = rest.find(',');
    auto item = Trim(rest.substr(0, comma));
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    if (item.empty()) continue;
    auto p = ParseApiCidr(item);
    if (!p) {
      // Reported from the object root, wherever the reader stands.
      throw ParseError("Service", meta.Key(),
                       "metadata.annotations[" + std::string(kSourceRangesAnnotation) + "]",
                       "invalid CIDR " + FieldReader::Quote(item));
    }
    s.load_balancer_source_ranges.push_back(p->Network());
  }
}

void ReadSpec(FieldReader& r, JsonObject spec, const ObjectMeta& meta, ServiceSpec& s) {
  s.type = r.Enum<ServiceType>(spec, "type", kServiceTypes).value_or(ServiceType::kClusterIp);
  ReadClusterIps(r, spec, s);
  if (auto families = r.Array(spec, "ipFamilies")) {
    auto scope = r.Enter("ipFamilies");
    size_t i = 0;
    for (JsonElement f : *families) s.ip_families.push_back(ReadIpFamily(r, f, i++));
  } else {
    for (const auto& ip : s.cluster_ips) s.ip_families.push_back(ip.family());
  }
  s.selector = r.Map(spec, "selector");
  s.ip_family_policy = r.Enum<IpFamilyPolicy>(spec, "ipFamilyPolicy", kIpFamilyPolicies);
  if (!s.ip_family_policy && s.type != ServiceType::kExternalName) {
    // A headless Service without selector gets its endpoints from outside, in any family.
    s.ip_family_policy = s.headless && s.selector.empty() ? IpFamilyPolicy::kRequireDualStack
                                                          : IpFamilyPolicy::kSingleStack;
  }
  if (auto ports = r.Array(spec, "ports")) {
    auto scope = r.Enter("ports");
    s.ports.reserve(ports->size());
    size_t i = 0;
    for (JsonElement p : *ports) {
      if (!p.is_object()) r.FailAt(i, "expected an object, got " + FieldReader::Describe(p));
      auto item = r.Enter(i++);
      s.ports.push_back(ReadServicePort(r, p.get_object().value_unsafe()));
    }
  }
  s.session_affinity = r.Enum<SessionAffinity>(spec, "sessionAffinity", kSessionAffinities)
                           .value_or(SessionAffinity::kNone);
  std::optional<int64_t> timeout;
  if (auto config = r.Object(spec, "sessionAffinityConfig")) {
    auto scope = r.Enter("sessionAffinityConfig");
    if (auto client_ip = r.Object(*config, "clientIP")) {
      auto inner = r.Enter("clientIP");
      timeout = r.Int(*client_ip, "timeoutSeconds", std::numeric_limits<int32_t>::min(),
                      std::numeric_limits<int32_t>::max());
      // Range only matters when affinity is on; the server drops the config otherwise.
      if (timeout && s.session_affinity == SessionAffinity::kClientIp &&
          (*timeout < 1 || *timeout > kMaxAffinityTimeout)) {
        r.Fail("timeoutSeconds", std::to_string(*timeout) + " out of range 1.." +
                                     std::to_string(kMaxAffinityTimeout));
      }
    }
  }
  if (s.session_affinity == SessionAffinity::kClientIp) {
    s.session_affinity_timeout_seconds =
        timeout ? static_cast<int32_t>(*timeout) : kDefaultAffinityTimeout;
  }
  {
    std::vector<std::string> external = r.StringList(spec, "externalIPs");
    auto scope = r.Enter("externalIPs");
    for (size_t i = 0; i < external.size(); ++i) {
      auto ip = ParseApiIp(external[i]);
      if (!ip) r.FailAt(i, "invalid IP address " + FieldReader::Quote(external[i]));
      s.external_ips.push_back(*ip);
    }
  }
  if (auto v = r.String(spec, "loadBalancerIP"); v && !v->empty()) {
    s.load_balancer_ip = r.Ip(*v, "loadBalancerIP");
  }
  ReadSourceRanges(r, spec, meta, s);
  if (auto v = r.String(spec, "loadBalancerClass")) s.load_balancer_class = *v;
  s.external_traffic_policy = r.Enum<TrafficPolicy>(spec, "externalTrafficPolicy", kTrafficPolicies)
                                  .value_or(TrafficPolicy::kCluster);
  s.internal_traffic_policy = r.Enum<TrafficPolicy>(spec, "internalTrafficPolicy", kTrafficPolicies)
                                  .value_or(TrafficPolicy::kCluster);
  s.health_check_node_port =
      static_cast<uint16_t>(r.Int(spec, "healthCheckNodePort", 0, 65535).value_or(0));
  s.publish_not_ready_addresses = r.Bool(spec, "publishNotReadyAddresses").value_or(false);
  if (auto v = r.String(spec, "trafficDistribution"); v && !v->empty()) {
    if (*v == "PreferSameZone" || *v == "PreferClose") {
      s.traffic_distribution = TrafficDistribution::kPreferSameZone;
    } else if (*v == "PreferSameNode") {
      s.traffic_distribution = TrafficDistribution::kPreferSameNode;
    } else {
      s.traffic_distribution = TrafficDistribution::kUnrecognized;
    }
  }
  s.allocate_load_balancer_node_ports = r.Bool(spec, "allocateLoadBalancerNodePorts");
  if (!s.allocate_load_balancer_node_ports && s.type == ServiceType::kLoadBalancer) {
    s.allocate_load_balancer_node_ports = true;
  }
  if (auto v = r.String(spec, "externalName")) s.external_name = *v;
}

LoadBalancerIngress ReadIngress(FieldReader& r, JsonObject in) {
  LoadBalancerIngress ing;
  if (auto v = r.String(in, "ip"); v && !v->empty()) ing.ip = r.Ip(*v, "ip");
  if (auto v = r.String(in, "hostname")) ing.hostname = *v;
  ing.ip_mode = r.Enum<LoadBalancerIpMode>(in, "ipMode", kIpModes);
  if (!ing.ip_mode && ing.ip) ing.ip_mode = LoadBalancerIpMode::kVip;
  if (auto ports = r.Array(in, "ports")) {
    auto scope = r.Enter("ports");
    size_t i = 0;
    for (JsonElement port_status : *ports) {
      if (!port_status.is_object())
        r.FailAt(i, "expected an object, got " + FieldReader::Describe(port_status));
      auto item = r.Enter(i++);
      JsonObject p = port_status.get_object().value_unsafe();
      PortStatus ps;
      auto port = r.Int(p, "port", 1, 65535);
      if (!port) r.Fail("port", "required");
      ps.port = static_cast<uint16_t>(*port);
      ps.protocol = ReadProtocol(r, p);
      if (auto e = r.String(p, "error")) ps.error = *e;
      ing.ports.push_back(std::move(ps));
    }
  }
  return ing;
}

}  // namespace

std::string_view ToString(Protocol p) { return NameOf(kProtocols, p); }
std::string_view ToString(ServiceType t) { return NameOf(kServiceTypes, t); }
std::string_view ToString(IpFamilyPolicy p) { return NameOf(kIpFamilyPolicies, p); }
std::string_view ToString(SessionAffinity a) { return NameOf(kSessionAffinities, a); }
std::string_view ToString(TrafficPolicy p) { return NameOf(kTrafficPolicies, p); }
std::string_view ToString(LoadBalancerIpMode m) { return NameOf(kIpModes, m); }
std::string_view ToString(IpFamily f) { return f == IpFamily::kV4 ? "IPv4" : "IPv6"; }

Protocol ReadProtocol(FieldReader& r, JsonObject port) {
  return r.Enum<Protocol>(port, "protocol", kProtocols).value_or(Protocol::kTcp);
}

IpFamily ReadIpFamily(FieldReader& r, JsonElement value, size_t index) {
  if (value.is_string()) {
    std::string_view s = value.get_string().value_unsafe();
    if (s == "IPv4") return IpFamily::kV4;
    if (s == "IPv6") return IpFamily::kV6;
    r.FailAt(index, "unknown value " + FieldReader::Quote(s) + " (want IPv4 or IPv6)");
  }
  r.FailAt(index, "expected a string, got " + FieldReader::Describe(value));
}

bool SkippedByProxy(const Service& s) {
  return s.spec.type == ServiceType::kExternalName || s.spec.headless || s.spec.cluster_ips.empty();
}

Service ParseService(JsonElement json) {
  FieldReader r("Service", ObjectIdentity(json));
  JsonObject object = CheckTypeMeta(r, json, "Service", "v1");
  Service s;
  s.metadata = ReadObjectMeta(r, object);
  auto spec = r.Object(object, "spec");
  {
    auto scope = r.Enter("spec");
    ReadSpec(r, spec ? *spec : EmptyJsonObject(), s.metadata, s.spec);
  }
  if (auto status = r.Object(object, "status")) {
    auto scope = r.Enter("status");
    if (auto lb = r.Object(*status, "loadBalancer")) {
      auto lb_scope = r.Enter("loadBalancer");
      if (auto ingress = r.Array(*lb, "ingress")) {
        auto in_scope = r.Enter("ingress");
        size_t i = 0;
        for (JsonElement in : *ingress) {
          if (!in.is_object()) r.FailAt(i, "expected an object, got " + FieldReader::Describe(in));
          auto item = r.Enter(i++);
          s.status.load_balancer_ingress.push_back(ReadIngress(r, in.get_object().value_unsafe()));
        }
      }
    }
  }
  return s;
}

Service ParseService(const nlohmann::json& object) {
  return ParseNlohmann(object, [](JsonElement e) { return ParseService(e); });
}

void Validate(const Service& s) {
  auto fail = [&](std::string field, std::string reason) {
    throw ValidationError("Service", s.metadata.Key(), std::move(field), std::move(reason));
  };
  if (s.metadata.name.empty()) fail("metadata.name", "required");
  if (s.metadata.namespace_name.empty()) fail("metadata.namespace", "required");
  const ServiceSpec& spec = s.spec;
  if (spec.cluster_ips.size() > 2) {
    fail("spec.clusterIPs",
         "at most two addresses, one per family; got " + std::to_string(spec.cluster_ips.size()));
  }
  if (spec.cluster_ips.size() == 2 &&
      spec.cluster_ips[0].family() == spec.cluster_ips[1].family()) {
    fail("spec.clusterIPs[1]", spec.cluster_ips[1].ToString() + " is of the same family as " +
                                   spec.cluster_ips[0].ToString());
  }
  if (spec.ip_families.size() > 2 ||
      (spec.ip_families.size() == 2 && spec.ip_families[0] == spec.ip_families[1])) {
    fail("spec.ipFamilies", "at most one entry per family");
  }
  if (!spec.cluster_ips.empty() && spec.ip_families.size() < spec.cluster_ips.size()) {
    fail("spec.ipFamilies", "lists " + std::to_string(spec.ip_families.size()) + " families for " +
                                std::to_string(spec.cluster_ips.size()) + " cluster IPs");
  }
  for (size_t i = 0; i < spec.cluster_ips.size() && i < spec.ip_families.size(); ++i) {
    if (spec.cluster_ips[i].family() != spec.ip_families[i]) {
      fail("spec.clusterIPs[" + std::to_string(i) + "]",
           spec.cluster_ips[i].ToString() + " is not " +
               std::string(ToString(spec.ip_families[i])) + " as spec.ipFamilies[" +
               std::to_string(i) + "] says");
    }
  }
  if (spec.ip_family_policy == IpFamilyPolicy::kSingleStack &&
      (spec.cluster_ips.size() > 1 || spec.ip_families.size() > 1)) {
    fail("spec.ipFamilyPolicy", "SingleStack with two IP families");
  }
  if (spec.ip_family_policy == IpFamilyPolicy::kRequireDualStack && spec.cluster_ips.size() == 1) {
    fail("spec.ipFamilyPolicy", "RequireDualStack with a single cluster IP");
  }
  std::set<std::string_view> names;
  std::set<std::pair<uint16_t, Protocol>> ports, node_ports;
  for (size_t i = 0; i < spec.ports.size(); ++i) {
    const auto& p = spec.ports[i];
    std::string at = "spec.ports[" + std::to_string(i) + "]";
    // Endpoint ports join service ports by name: a missing or repeated name mixes them up.
    if (p.name.empty() && spec.ports.size() > 1)
      fail(at + ".name", "required when a Service has several ports");
    if (!names.insert(p.name).second) fail(at + ".name", "duplicate " + FieldReader::Quote(p.name));
    if (!ports.insert({p.port, p.protocol}).second) {
      fail(at,
           "duplicate port " + std::to_string(p.port) + "/" + std::string(ToString(p.protocol)));
    }
    if (p.node_port != 0 && !node_ports.insert({p.node_port, p.protocol}).second) {
      fail(at + ".nodePort", "duplicate node port " + std::to_string(p.node_port) + "/" +
                                 std::string(ToString(p.protocol)));
    }
  }
  if (spec.type == ServiceType::kExternalName && spec.external_name.empty()) {
    fail("spec.externalName", "required for type ExternalName");
  }
}

}  // namespace sluice::api
