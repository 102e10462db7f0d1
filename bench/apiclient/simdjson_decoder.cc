#include "bench/apiclient/simdjson_decoder.h"

#include <stdexcept>

#include "controlplane/api/field_reader.h"

namespace sluice::bench {
namespace {

namespace od = simdjson::ondemand;
using od::json_type;

[[noreturn]] void Bad(std::string_view what) {
  throw std::runtime_error("simdjson path: bad " + std::string(what));
}

bool IsNull(od::value& v) { return v.type() == json_type::null; }
std::string Str(od::value v) { return std::string(std::string_view(v.get_string())); }

IpAddress Ip(std::string_view s) {
  auto ip = api::ParseApiIp(s);
  if (!ip) Bad("IP address");
  return *ip;
}

uint16_t Port(od::value v, int64_t min) {
  int64_t n = v.get_int64();
  if (n < min || n > 65535) Bad("port");
  return static_cast<uint16_t>(n);
}

api::Protocol ProtocolOf(std::string_view s) {
  if (s == "TCP" || s.empty()) return api::Protocol::kTcp;
  if (s == "UDP") return api::Protocol::kUdp;
  if (s == "SCTP") return api::Protocol::kSctp;
  Bad("protocol");
}

api::TrafficPolicy PolicyOf(std::string_view s) {
  if (s == "Cluster" || s.empty()) return api::TrafficPolicy::kCluster;
  if (s == "Local") return api::TrafficPolicy::kLocal;
  Bad("traffic policy");
}

api::StringMap Map(od::value v) {
  api::StringMap m;
  for (auto f : v.get_object()) {
    std::string key(std::string_view(f.unescaped_key()));
    od::value x = f.value();
    m.emplace_hint(m.end(), std::move(key), IsNull(x) ? std::string() : Str(x));
  }
  return m;
}

std::vector<std::string> Strings(od::value v) {
  std::vector<std::string> out;
  for (auto x : v.get_array()) out.emplace_back(std::string_view(x.get_string()));
  return out;
}

void CheckTypeMeta(std::string_view key, od::value& v, std::string_view kind,
                   std::string_view api_version) {
  if (key == "kind" && std::string_view(v.get_string()) != kind) Bad("kind");
  if (key == "apiVersion" && std::string_view(v.get_string()) != api_version) Bad("apiVersion");
}

api::ObjectMeta Meta(od::value v) {
  api::ObjectMeta m;
  for (auto f : v.get_object()) {
    std::string_view k = f.unescaped_key();
    od::value x = f.value();
    if (IsNull(x)) continue;
    if (k == "name") {
      m.name = Str(x);
    } else if (k == "namespace") {
      m.namespace_name = Str(x);
    } else if (k == "uid") {
      m.uid = Str(x);
    } else if (k == "resourceVersion") {
      m.resource_version = Str(x);
    } else if (k == "generation") {
      m.generation = x.get_int64();
    } else if (k == "labels") {
      m.labels = Map(x);
    } else if (k == "annotations") {
      m.annotations = Map(x);
    } else if (k == "creationTimestamp" || k == "deletionTimestamp") {
      auto t = api::ParseTimestamp(std::string_view(x.get_string()));
      if (!t) Bad("timestamp");
      (k == "creationTimestamp" ? m.creation_timestamp : m.deletion_timestamp) = t;
    }
  }
  return m;
}

api::ServicePort ServicePortOf(od::value v) {
  api::ServicePort p;
  std::optional<api::TargetPort> target;
  for (auto f : v.get_object()) {
    std::string_view k = f.unescaped_key();
    od::value x = f.value();
    if (IsNull(x)) continue;
    if (k == "name") {
      p.name = Str(x);
    } else if (k == "protocol") {
      p.protocol = ProtocolOf(x.get_string());
    } else if (k == "port") {
      p.port = Port(x, 1);
    } else if (k == "targetPort") {
      if (x.type() == json_type::string) {
        std::string name = Str(x);
        if (!name.empty()) target = std::move(name);
      } else if (uint16_t n = Port(x, 0); n != 0) {
        target = n;
      }
    } else if (k == "nodePort") {
      p.node_port = Port(x, 0);
    } else if (k == "appProtocol") {
      p.app_protocol = Str(x);
    }
  }
  if (p.port == 0) Bad("port: required");
  p.target_port = target ? *target : api::TargetPort(p.port);
  return p;
}

void SpecOf(od::value v, api::ServiceSpec& s) {
  std::string cluster_ip;
  std::vector<std::string> cluster_ips;
  bool have_families = false, have_policy = false;
  std::optional<int64_t> timeout;
  for (auto f : v.get_object()) {
    std::string_view k = f.unescaped_key();
    od::value x = f.value();
    if (IsNull(x)) continue;
    if (k == "type") {
      std::string_view t = x.get_string();
      s.type = t == "NodePort"                 ? api::ServiceType::kNodePort
               : t == "LoadBalancer"           ? api::ServiceType::kLoadBalancer
               : t == "ExternalName"           ? api::ServiceType::kExternalName
               : t == "ClusterIP" || t.empty() ? api::ServiceType::kClusterIp
                                               : (Bad("type"), api::ServiceType::kClusterIp);
    } else if (k == "clusterIP") {
      cluster_ip = Str(x);
    } else if (k == "clusterIPs") {
      cluster_ips = Strings(x);
    } else if (k == "ipFamilies") {
      have_families = true;
      for (auto fam : x.get_array()) {
        std::string_view name = fam.get_string();
        if (name != "IPv4" && name != "IPv6") Bad("ipFamilies");
        s.ip_families.push_back(name == "IPv4" ? IpFamily::kV4 : IpFamily::kV6);
      }
    } else if (k == "ipFamilyPolicy") {
      std::string_view p = x.get_string();
      if (p.empty()) continue;
      have_policy = true;
      s.ip_family_policy = p == "SingleStack"       ? api::IpFamilyPolicy::kSingleStack
                           : p == "PreferDualStack" ? api::IpFamilyPolicy::kPreferDualStack
                           : p == "RequireDualStack"
                               ? api::IpFamilyPolicy::kRequireDualStack
                               : (Bad("ipFamilyPolicy"), api::IpFamilyPolicy::kSingleStack);
    } else if (k == "ports") {
      for (auto p : x.get_array()) s.ports.push_back(ServicePortOf(p.value()));
    } else if (k == "selector") {
      s.selector = Map(x);
    } else if (k == "sessionAffinity") {
      std::string_view a = x.get_string();
      if (a == "ClientIP") {
        s.session_affinity = api::SessionAffinity::kClientIp;
      } else if (a != "None" && !a.empty()) {
        Bad("sessionAffinity");
      }
    } else if (k == "sessionAffinityConfig") {
      for (auto c : x.get_object()) {
        if (std::string_view(c.unescaped_key()) != "clientIP") continue;
        for (auto t : c.value().get_object()) {
          if (std::string_view(t.unescaped_key()) == "timeoutSeconds")
            timeout = t.value().get_int64();
        }
      }
    } else if (k == "externalIPs") {
      for (auto ip : x.get_array()) s.external_ips.push_back(Ip(ip.get_string()));
    } else if (k == "loadBalancerIP") {
      std::string_view ip = x.get_string();
      if (!ip.empty()) s.load_balancer_ip = Ip(ip);
    } else if (k == "loadBalancerSourceRanges") {
      for (auto r : x.get_array()) {
        auto p = api::ParseApiCidr(std::string_view(r.get_string()));
        if (!p) Bad("loadBalancerSourceRanges");
        s.load_balancer_source_ranges.push_back(p->Network());
      }
    } else if (k == "loadBalancerClass") {
      s.load_balancer_class = Str(x);
    } else if (k == "externalTrafficPolicy") {
      s.external_traffic_policy = PolicyOf(x.get_string());
    } else if (k == "internalTrafficPolicy") {
      s.internal_traffic_policy = PolicyOf(x.get_string());
    } else if (k == "healthCheckNodePort") {
      s.health_check_node_port = Port(x, 0);
    } else if (k == "publishNotReadyAddresses") {
      s.publish_not_ready_addresses = x.get_bool();
    } else if (k == "trafficDistribution") {
      std::string_view t = x.get_string();
      if (!t.empty()) {
        s.traffic_distribution = t == "PreferSameZone" || t == "PreferClose"
                                     ? api::TrafficDistribution::kPreferSameZone
                                 : t == "PreferSameNode" ? api::TrafficDistribution::kPreferSameNode
                                                         : api::TrafficDistribution::kUnrecognized;
      }
    } else if (k == "allocateLoadBalancerNodePorts") {
      s.allocate_load_balancer_node_ports = x.get_bool();
    } else if (k == "externalName") {
      s.external_name = Str(x);
    }
  }
  // The defaults, as the api parser applies them.
  if (!cluster_ips.empty() && cluster_ips[0] == "None") {
    s.headless = true;
  } else {
    for (const auto& ip : cluster_ips) s.cluster_ips.push_back(Ip(ip));
  }
  if (cluster_ip == "None") {
    s.headless = true;
  } else if (!cluster_ip.empty()) {
    IpAddress ip = Ip(cluster_ip);
    if (cluster_ips.empty()) s.cluster_ips.push_back(ip);
    if (s.headless || s.cluster_ips[0] != ip) Bad("clusterIP");
  }
  if (!have_families) {
    for (const auto& ip : s.cluster_ips) s.ip_families.push_back(ip.family());
  }
  if (!have_policy && s.type != api::ServiceType::kExternalName) {
    s.ip_family_policy = s.headless && s.selector.empty() ? api::IpFamilyPolicy::kRequireDualStack
                                                          : api::IpFamilyPolicy::kSingleStack;
  }
  if (s.session_affinity == api::SessionAffinity::kClientIp) {
    if (timeout && (*timeout < 1 || *timeout > 86400)) Bad("timeoutSeconds");
    s.session_affinity_timeout_seconds = timeout ? static_cast<int32_t>(*timeout) : 10800;
  }
  if (!s.allocate_load_balancer_node_ports && s.type == api::ServiceType::kLoadBalancer) {
    s.allocate_load_balancer_node_ports = true;
  }
}

void StatusOf(od::value v, api::ServiceStatus& st) {
  for (auto f : v.get_object()) {
    if (std::string_view(f.unescaped_key()) != "loadBalancer") continue;
    for (auto lb : f.value().get_object()) {
      if (std::string_view(lb.unescaped_key()) != "ingress") continue;
      for (auto in : lb.value().get_array()) {
        api::LoadBalancerIngress ing;
        for (auto g : in.get_object()) {
          std::string_view k = g.unescaped_key();
          od::value x = g.value();
          if (IsNull(x)) continue;
          if (k == "ip") {
            std::string_view ip = x.get_string();
            if (!ip.empty()) ing.ip = Ip(ip);
          } else if (k == "hostname") {
            ing.hostname = Str(x);
          } else if (k == "ipMode") {
            std::string_view m = x.get_string();
            if (m == "VIP") {
              ing.ip_mode = api::LoadBalancerIpMode::kVip;
            } else if (m == "Proxy") {
              ing.ip_mode = api::LoadBalancerIpMode::kProxy;
            } else if (!m.empty()) {
              Bad("ipMode");
            }
          } else if (k == "ports") {
            for (auto p : x.get_array()) {
              api::PortStatus ps;
              for (auto h : p.get_object()) {
                std::string_view pk = h.unescaped_key();
                od::value y = h.value();
                if (IsNull(y)) continue;
                if (pk == "port") ps.port = Port(y, 1);
                if (pk == "protocol") ps.protocol = ProtocolOf(y.get_string());
                if (pk == "error") ps.error = Str(y);
              }
              ing.ports.push_back(std::move(ps));
            }
          }
        }
        if (!ing.ip_mode && ing.ip) ing.ip_mode = api::LoadBalancerIpMode::kVip;
        st.load_balancer_ingress.push_back(std::move(ing));
      }
    }
  }
}

api::Service ServiceOf(od::value v) {
  api::Service s;
  bool have_spec = false;
  for (auto f : v.get_object()) {
    std::string_view k = f.unescaped_key();
    od::value x = f.value();
    if (IsNull(x)) continue;
    if (k == "kind" || k == "apiVersion") {
      CheckTypeMeta(k, x, "Service", "v1");
    } else if (k == "metadata") {
      s.metadata = Meta(x);
    } else if (k == "spec") {
      SpecOf(x, s.spec);
      have_spec = true;
    } else if (k == "status") {
      StatusOf(x, s.status);
    }
  }
  if (!have_spec) s.spec.ip_family_policy = api::IpFamilyPolicy::kSingleStack;
  return s;
}

api::Endpoint EndpointOf(od::value v, std::vector<std::string>& raw_addresses) {
  api::Endpoint e;
  for (auto f : v.get_object()) {
    std::string_view k = f.unescaped_key();
    od::value x = f.value();
    if (IsNull(x)) continue;
    if (k == "addresses") {
      raw_addresses = Strings(x);
    } else if (k == "conditions") {
      for (auto c : x.get_object()) {
        std::string_view ck = c.unescaped_key();
        od::value y = c.value();
        if (IsNull(y)) continue;
        bool b = y.get_bool();
        if (ck == "ready") e.conditions.ready = b;
        if (ck == "serving") e.conditions.serving = b;
        if (ck == "terminating") e.conditions.terminating = b;
      }
    } else if (k == "hostname") {
      e.hostname = Str(x);
    } else if (k == "nodeName") {
      e.node_name = Str(x);
    } else if (k == "zone") {
      e.zone = Str(x);
    } else if (k == "hints") {
      e.hints.emplace();
      for (auto h : x.get_object()) {
        std::string_view hk = h.unescaped_key();
        auto* names = hk == "forZones"   ? &e.hints->for_zones
                      : hk == "forNodes" ? &e.hints->for_nodes
                                         : nullptr;
        if (!names) continue;
        od::value list = h.value();
        if (IsNull(list)) continue;
        for (auto item : list.get_array()) {
          std::string name;
          for (auto g : item.get_object()) {
            if (std::string_view(g.unescaped_key()) == "name") name = Str(g.value());
          }
          names->push_back(std::move(name));
        }
      }
    } else if (k == "targetRef") {
      api::ObjectReference ref;
      for (auto g : x.get_object()) {
        std::string_view rk = g.unescaped_key();
        od::value y = g.value();
        if (IsNull(y)) continue;
        if (rk == "kind") ref.kind = Str(y);
        if (rk == "namespace") ref.namespace_name = Str(y);
        if (rk == "name") ref.name = Str(y);
        if (rk == "uid") ref.uid = Str(y);
      }
      e.target_ref = std::move(ref);
    }
  }
  return e;
}

api::EndpointSlice SliceOf(od::value v) {
  api::EndpointSlice s;
  std::vector<std::vector<std::string>> raw;  // addressType may come after the endpoints
  std::optional<api::AddressType> type;
  for (auto f : v.get_object()) {
    std::string_view k = f.unescaped_key();
    od::value x = f.value();
    if (IsNull(x)) continue;
    if (k == "kind" || k == "apiVersion") {
      CheckTypeMeta(k, x, "EndpointSlice", "discovery.k8s.io/v1");
    } else if (k == "metadata") {
      s.metadata = Meta(x);
    } else if (k == "addressType") {
      std::string_view t = x.get_string();
      type = t == "IPv4"   ? api::AddressType::kIpv4
             : t == "IPv6" ? api::AddressType::kIpv6
             : t == "FQDN" ? api::AddressType::kFqdn
                           : (Bad("addressType"), api::AddressType::kIpv4);
    } else if (k == "endpoints") {
      for (auto e : x.get_array()) {
        raw.emplace_back();
        s.endpoints.push_back(EndpointOf(e.value(), raw.back()));
      }
    } else if (k == "ports") {
      for (auto p : x.get_array()) {
        api::EndpointPort port;
        for (auto g : p.get_object()) {
          std::string_view pk = g.unescaped_key();
          od::value y = g.value();
          if (IsNull(y)) continue;
          if (pk == "name") port.name = Str(y);
          if (pk == "protocol") port.protocol = ProtocolOf(y.get_string());
          if (pk == "port") {
            if (uint16_t n = Port(y, 0); n != 0) port.port = n;
          }
          if (pk == "appProtocol") port.app_protocol = Str(y);
        }
        s.ports.push_back(std::move(port));
      }
    }
  }
  if (!type) Bad("addressType: required");
  s.address_type = *type;
  for (size_t i = 0; i < s.endpoints.size(); ++i) {
    if (*type == api::AddressType::kFqdn) {
      s.endpoints[i].fqdn_addresses = std::move(raw[i]);
      continue;
    }
    s.endpoints[i].addresses.reserve(raw[i].size());
    for (const auto& a : raw[i]) s.endpoints[i].addresses.push_back(Ip(a));
  }
  return s;
}

template <typename T>
api::ObjectList<T> ListOf(od::document& doc, T (*item)(od::value)) {
  api::ObjectList<T> list;
  for (auto f : doc.get_object()) {
    std::string_view k = f.unescaped_key();
    od::value x = f.value();
    if (IsNull(x)) continue;
    if (k == "metadata") {
      for (auto m : x.get_object()) {
        std::string_view mk = m.unescaped_key();
        od::value y = m.value();
        if (IsNull(y)) continue;
        if (mk == "resourceVersion") list.resource_version = Str(y);
        if (mk == "continue") list.continue_token = Str(y);
        if (mk == "remainingItemCount") list.remaining_item_count = y.get_int64();
      }
    } else if (k == "items") {
      for (auto i : x.get_array()) list.items.push_back(item(i.value()));
    }
  }
  return list;
}

}  // namespace

api::ServiceList SimdjsonDecoder::ServiceList(simdjson::padded_string_view text) {
  od::document doc = parser_.iterate(text);
  return ListOf<api::Service>(doc, &ServiceOf);
}

api::EndpointSliceList SimdjsonDecoder::EndpointSliceList(simdjson::padded_string_view text) {
  od::document doc = parser_.iterate(text);
  return ListOf<api::EndpointSlice>(doc, &SliceOf);
}

api::WatchEvent SimdjsonDecoder::WatchEvent(simdjson::padded_string_view text, api::Kind kind) {
  od::document doc = parser_.iterate(text);
  api::WatchEvent ev;
  std::string_view type;
  for (auto f : doc.get_object()) {
    std::string_view k = f.unescaped_key();
    if (k == "type") {
      type = f.value().get_string();
      ev.type = type == "ADDED"      ? api::WatchEventType::kAdded
                : type == "MODIFIED" ? api::WatchEventType::kModified
                : type == "DELETED"  ? api::WatchEventType::kDeleted
                : type == "BOOKMARK" ? api::WatchEventType::kBookmark
                : type == "ERROR"    ? api::WatchEventType::kError
                                     : (Bad("type"), api::WatchEventType::kError);
      continue;
    }
    if (k != "object") continue;
    if (type.empty()) Bad("event: object before type");
    od::value x = f.value();
    if (ev.type == api::WatchEventType::kBookmark) {
      api::Bookmark b;
      for (auto g : x.get_object()) {
        if (std::string_view(g.unescaped_key()) != "metadata") continue;
        api::ObjectMeta m = Meta(g.value());
        b.resource_version = m.resource_version;
        b.initial_events_end = m.Annotation(api::kInitialEventsEndAnnotation) == "true";
      }
      if (b.resource_version.empty()) Bad("bookmark");
      ev.payload = std::move(b);
    } else if (ev.type == api::WatchEventType::kError) {
      api::Status st;
      for (auto g : x.get_object()) {
        std::string_view sk = g.unescaped_key();
        od::value y = g.value();
        if (IsNull(y)) continue;
        if (sk == "code") st.code = static_cast<int>(int64_t(y.get_int64()));
        if (sk == "reason") st.reason = Str(y);
        if (sk == "message") st.message = Str(y);
        if (sk == "status") st.success = std::string_view(y.get_string()) == "Success";
      }
      ev.payload = std::move(st);
    } else if (kind == api::Kind::kService) {
      ev.payload = api::Object(ServiceOf(x));
    } else if (kind == api::Kind::kEndpointSlice) {
      ev.payload = api::Object(SliceOf(x));
    } else {
      Bad("kind: the bench decodes Services and EndpointSlices");
    }
  }
  return ev;
}

}  // namespace sluice::bench
