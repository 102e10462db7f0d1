#include "bench/apiclient/workload.h"

#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>

namespace sluice::bench {
namespace {

// Go serializes struct fields in declaration order, not sorted: ordered_json keeps that order.
using ojson = nlohmann::ordered_json;

class Generator {
 public:
  explicit Generator(const WorkloadSize& size) : size_(size), rng_(20240501) {}

  ojson Service(size_t i, bool with_type_meta) {
    ojson s;
    if (with_type_meta) {
      s["kind"] = "Service";
      s["apiVersion"] = "v1";
    }
    const std::string ns = Namespace(i), name = ServiceName(i);
    s["metadata"] = Meta(ns, name, i, "kubectl-client-side-apply");
    s["metadata"]["labels"] = {{"app.kubernetes.io/name", name},
                               {"app.kubernetes.io/part-of", "shop"},
                               {"tier", i % 3 ? "backend" : "frontend"}};
    if (i % 5 == 0) {
      s["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] =
          R"({"apiVersion":"v1","kind":"Service","metadata":{"annotations":{},"name":")" + name +
          R"(","namespace":")" + ns +
          R"("},"spec":{"ports":[{"name":"http","port":80,"targetPort":8080}],"selector":{"app.kubernetes.io/name":")" +
          name + "\"}}}\n";
    }
    const int kind =
        Pick(100);  // 70 ClusterIP, 15 NodePort, 10 LoadBalancer, 3 headless, 2 ExternalName
    const bool dual = Pick(10) == 0;
    ojson spec;
    ojson ports = ojson::array();
    const int nports = 1 + Pick(3);
    static const char* kNames[] = {"http", "https", "metrics"};
    for (int p = 0; p < nports; ++p) {
      ojson port;
      if (nports > 1) port["name"] = kNames[p];
      port["protocol"] = p == 2 && Pick(4) == 0 ? "UDP" : "TCP";
      port["port"] = p == 0 ? 80 : (p == 1 ? 443 : 9090);
      if (Pick(4) == 0) {
        port["targetPort"] = p == 0 ? "http-web" : "tls";
      } else {
        port["targetPort"] = 8080 + p;
      }
      if (kind >= 70 && kind < 95) port["nodePort"] = 30000 + static_cast<int>((i * 3 + p) % 2768);
      ports.push_back(port);
    }
    if (kind >= 98) {
      spec["type"] = "ExternalName";
      spec["externalName"] = name + ".example.com";
      spec["sessionAffinity"] = "None";
      s["spec"] = spec;
      s["status"] = {{"loadBalancer", ojson::object()}};
      return s;
    }
    spec["ports"] = ports;
    spec["selector"] = {{"app.kubernetes.io/name", name}};
    if (kind >= 95) {
      spec["clusterIP"] = "None";
      spec["clusterIPs"] = ojson::array({"None"});
    } else {
      std::string v4 = "10.96." + std::to_string(i / 250 % 256) + "." + std::to_string(i % 250 + 1);
      char v6[64];
      std::snprintf(v6, sizeof(v6), "fd00:10:96::%zx", i + 1);
      spec["clusterIP"] = v4;
      spec["clusterIPs"] = dual ? ojson::array({v4, v6}) : ojson::array({v4});
    }
    spec["type"] =
        kind < 70 || kind >= 95 ? "ClusterIP" : (kind < 85 ? "NodePort" : "LoadBalancer");
    const bool client_ip = Pick(20) == 0;
    spec["sessionAffinity"] = client_ip ? "ClientIP" : "None";
    const bool external = kind >= 70 && kind < 95;
    const bool local = external && Pick(2) == 0;
    if (external) spec["externalTrafficPolicy"] = local ? "Local" : "Cluster";
    if (kind >= 85 && kind < 95 && local)
      spec["healthCheckNodePort"] = 32000 + static_cast<int>(i % 700);
    spec["ipFamilies"] = dual ? ojson::array({"IPv4", "IPv6"}) : ojson::array({"IPv4"});
    spec["ipFamilyPolicy"] = dual ? "PreferDualStack" : "SingleStack";
    if (kind >= 85 && kind < 95) spec["allocateLoadBalancerNodePorts"] = true;
    spec["internalTrafficPolicy"] = "Cluster";
    if (client_ip) spec["sessionAffinityConfig"] = {{"clientIP", {{"timeoutSeconds", 10800}}}};
    s["spec"] = spec;
    ojson status = {{"loadBalancer", ojson::object()}};
    if (kind >= 85 && kind < 95) {
      status["loadBalancer"]["ingress"] = ojson::array(
          {{{"ip", "203.0." + std::to_string(113 + i % 3) + "." + std::to_string(i % 250 + 1)},
            {"ipMode", "VIP"}}});
    }
    s["status"] = status;
    return s;
  }

  ojson Slice(size_t i, bool with_type_meta, size_t version = 0) {
    ojson s;
    if (with_type_meta) {
      s["kind"] = "EndpointSlice";
      s["apiVersion"] = "discovery.k8s.io/v1";
    }
    const std::string ns = Namespace(i), svc = ServiceName(i);
    const bool v6 = i % 10 == 7;
    ojson meta = Meta(ns, svc + "-" + Suffix(i), i, "kube-controller-manager", version);
    meta["generateName"] = svc + "-";
    meta["labels"] = {{"app.kubernetes.io/name", svc},
                      {"endpointslice.kubernetes.io/managed-by", "endpointslice-controller.k8s.io"},
                      {"kubernetes.io/service-name", svc}};
    meta["annotations"] = {
        {"endpoints.kubernetes.io/last-change-trigger-time", "2024-05-01T10:31:07Z"}};
    meta["ownerReferences"] = ojson::array({{{"apiVersion", "v1"},
                                             {"kind", "Service"},
                                             {"name", svc},
                                             {"uid", Uid(i * 7 + 1)},
                                             {"controller", true},
                                             {"blockOwnerDeletion", true}}});
    s["metadata"] = meta;
    s["addressType"] = v6 ? "IPv6" : "IPv4";
    ojson endpoints = ojson::array();
    for (size_t e = 0; e < size_.endpoints_per_slice; ++e) {
      const size_t pod = i * size_.endpoints_per_slice + e;
      ojson ep;
      if (v6) {
        char a[64];
        std::snprintf(a, sizeof(a), "fd00:10:244:%zx::%zx", pod / 200 % 4096, pod % 200 + 2);
        ep["addresses"] = ojson::array({a});
      } else {
        ep["addresses"] =
            ojson::array({"10." + std::to_string(244 + pod / 65000 % 8) + "." +
                          std::to_string(pod / 250 % 256) + "." + std::to_string(pod % 250 + 2)});
      }
      const bool terminating = Pick(20) == 0;
      ep["conditions"] = {{"ready", !terminating}, {"serving", true}, {"terminating", terminating}};
      ep["nodeName"] = "node-" + std::to_string(pod % 97);
      ep["targetRef"] = {{"kind", "Pod"},
                         {"namespace", ns},
                         {"name", svc + "-7768647bf9-" + Suffix(pod)},
                         {"uid", Uid(pod * 13 + 5)}};
      ep["zone"] = "zone-" + std::string(1, static_cast<char>('a' + pod % 3));
      if (i % 3 == 0) ep["hints"] = {{"forZones", ojson::array({{{"name", ep["zone"]}}})}};
      endpoints.push_back(ep);
    }
    s["endpoints"] = endpoints;
    ojson ports = ojson::array();
    ports.push_back({{"name", "http"}, {"port", 8080}, {"protocol", "TCP"}});
    if (i % 2) ports.push_back({{"name", "metrics"}, {"port", 9090}, {"protocol", "TCP"}});
    s["ports"] = ports;
    return s;
  }

  Workload Build() {
    Workload w;
    ojson services = ListHeader("ServiceList", "v1");
    for (size_t i = 0; i < size_.services; ++i) services["items"].push_back(Service(i, false));
    w.service_list = services.dump();
    ojson slices = ListHeader("EndpointSliceList", "discovery.k8s.io/v1");
    for (size_t i = 0; i < size_.slices; ++i) slices["items"].push_back(Slice(i, false));
    w.slice_list = slices.dump();
    // A day in a busy cluster, compressed: mostly endpoint churn, some Service edits, bookmarks.
    for (size_t n = 0; n < size_.watch_events; ++n) {
      ojson ev;
      const int roll = Pick(100);
      api::Kind kind = roll < 70 ? api::Kind::kEndpointSlice : api::Kind::kService;
      if (roll >= 95) {
        ev["type"] = "BOOKMARK";
        ev["object"] = {
            {"kind", "EndpointSlice"},
            {"apiVersion", "discovery.k8s.io/v1"},
            {"metadata",
             {{"resourceVersion", std::to_string(200000 + n)}, {"creationTimestamp", nullptr}}},
            {"addressType", ""},
            {"endpoints", nullptr},
            {"ports", nullptr}};
        kind = api::Kind::kEndpointSlice;
      } else {
        ev["type"] =
            roll < 60 || (roll >= 70 && roll < 85) ? "MODIFIED" : (roll % 2 ? "ADDED" : "DELETED");
        const size_t which =
            static_cast<size_t>(Pick(static_cast<int>(std::max<size_t>(size_.services, 1))));
        ev["object"] =
            kind == api::Kind::kEndpointSlice ? Slice(which, true, n + 1) : Service(which, true);
      }
      w.events.push_back({kind, ev.dump()});
    }
    return w;
  }

 private:
  int Pick(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }
  static std::string Namespace(size_t i) { return "team-" + std::to_string(i % 50); }
  static std::string ServiceName(size_t i) {
    char b[32];
    std::snprintf(b, sizeof(b), "svc-%05zu", i);
    return b;
  }
  static std::string Suffix(size_t i) {
    static const char* kAlphabet = "bcdfghjklmnpqrstvwxz2456789";
    std::string s;
    for (int k = 0; k < 5; ++k, i /= 27) s += kAlphabet[(i * 7 + static_cast<size_t>(k)) % 27];
    return s;
  }
  static std::string Uid(size_t i) {
    char b[40];
    std::snprintf(b, sizeof(b), "%08zx-%04zx-4%03zx-8%03zx-%012zx", i * 2654435761u % 0xffffffff,
                  i % 0xffff, i % 0xfff, (i >> 4) % 0xfff, i * 40503u);
    return b;
  }
  static ojson ListHeader(const char* kind, const char* api_version) {
    return ojson{{"kind", kind},
                 {"apiVersion", api_version},
                 {"metadata", {{"resourceVersion", "184467"}}},
                 {"items", ojson::array()}};
  }
  ojson Meta(const std::string& ns, const std::string& name, size_t i, const char* manager,
             size_t version = 0) {
    ojson m;
    m["name"] = name;
    m["namespace"] = ns;
    m["uid"] = Uid(i);
    m["resourceVersion"] = std::to_string(100000 + i + version * 20000);
    m["creationTimestamp"] = "2024-05-01T10:" + std::to_string(10 + i % 50) + ":00Z";
    // What the server returns unless the client strips it: one managedFields entry per manager.
    m["managedFields"] = ojson::array(
        {{{"manager", manager},
          {"operation", "Update"},
          {"apiVersion", "v1"},
          {"time", "2024-05-01T10:30:00Z"},
          {"fieldsType", "FieldsV1"},
          {"fieldsV1",
           {{"f:metadata",
             {{"f:labels",
               {{".", ojson::object()}, {"f:app.kubernetes.io/name", ojson::object()}}}}},
            {"f:spec", {{"f:ports", ojson::object()}, {"f:selector", ojson::object()}}}}}}});
    return m;
  }

  WorkloadSize size_;
  std::mt19937 rng_;
};

}  // namespace

Workload GenerateWorkload(const WorkloadSize& size) { return Generator(size).Build(); }

}  // namespace sluice::bench
