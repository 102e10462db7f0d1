// kube-proxy's health check node port servers (pkg/proxy/healthcheck/service_health.go): a
// Service with externalTrafficPolicy: Local and a healthCheckNodePort gets an HTTP server on
// that port of every node-port address, so a cloud load balancer sends traffic only to nodes
// with a local endpoint. Every path answers 200 while the node has local endpoints and the
// proxy is healthy, 503 otherwise, with the count in the body and in
// X-Load-Balancing-Endpoint-Weight (read by weighted load balancers).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "proxy/http_server.h"

namespace sluice::proxy {

class ProxyHealth;

// A health check node port that could not be served in one Sync.
struct ServiceHealthFailure {
  uint16_t port = 0;
  std::string namespace_name;
  std::string name;
  std::string error;  // "Service ns/name health check: bind 10.0.0.1:32000: Address already in use"
};

class ServiceHealthServers {
 public:
  // What one health check node port reports.
  struct Entry {
    std::string namespace_name;
    std::string name;
    uint32_t local_endpoints = 0;
  };

  // Each port is bound on every host of `hosts`: IP addresses ("10.0.0.1", "fd00::1"), or ""
  // for every address of both families, which is also what an empty list means. Throws
  // HttpServerError for a host that is not an IP address. `proxy_health` (may be null: always
  // healthy) must outlive this object.
  ServiceHealthServers(std::vector<std::string> hosts, const ProxyHealth* proxy_health);
  ~ServiceHealthServers();
  ServiceHealthServers(const ServiceHealthServers&) = delete;
  ServiceHealthServers& operator=(const ServiceHealthServers&) = delete;

  // Serves exactly the ports of `wanted` (health check node port -> Service and its local
  // endpoints): opens new ports, closes dropped ones, and updates the others in place, so
  // their listeners and open connections carry on. A port whose Service changed is reopened
  // under the new name. A port that cannot be bound on every host is not served at all (as in
  // kube-proxy, so a retry starts clean); it is logged, returned, and tried again on the next
  // Sync. The other ports are unaffected. Port 0 is never served and is reported as a failure.
  // Call from one thread (the proxier's sync loop); requests are answered concurrently.
  std::vector<ServiceHealthFailure> Sync(const std::map<uint16_t, Entry>& wanted);

  // The ports being served, ascending.
  std::vector<uint16_t> ServingPorts() const;

 private:
  struct Port;
  // Serves `port` on every host, or throws HttpServerError with nothing left open.
  std::unique_ptr<Port> Open(uint16_t port, const Entry& entry) const;

  std::vector<std::string> hosts_;
  const ProxyHealth* proxy_health_;
  std::map<uint16_t, std::unique_ptr<Port>> ports_;
};

// The answer of a health check node port, as kube-proxy writes it: 200 when `local_endpoints`
// is non-zero and the proxy is healthy, else 503; the JSON body laid out as kube-proxy's
// (tab-indented, fields in its order).
HttpResponse ServiceHealthResponse(const ServiceHealthServers::Entry& entry, bool proxy_healthy);

}  // namespace sluice::proxy
