#include "proxy/service_health.h"

#include <algorithm>
#include <atomic>
#include <nlohmann/json.hpp>

#include "common/log.h"
#include "proxy/proxy_health.h"

namespace sluice::proxy {
namespace {

std::string JoinHostPort(const std::string& host, uint16_t port) {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

std::string ServiceName(const std::string& namespace_name, const std::string& name) {
  return "Service " + namespace_name + "/" + name;
}

}  // namespace

// One served port. The Service is fixed for the Port's life (a new Service on the port gets a
// new Port), so only the count changes under the handlers' feet.
struct ServiceHealthServers::Port {
  explicit Port(const Entry& entry)
      : namespace_name(entry.namespace_name),
        name(entry.name),
        local_endpoints(entry.local_endpoints) {}

  const std::string namespace_name;
  const std::string name;
  std::atomic<uint32_t> local_endpoints;
  // Declared last, so the servers stop (waiting for running handlers) before the fields the
  // handlers read are destroyed.
  std::vector<std::unique_ptr<HttpServer>> servers;
};

HttpResponse ServiceHealthResponse(const ServiceHealthServers::Entry& entry, bool proxy_healthy) {
  using nlohmann::ordered_json;
  ordered_json body = {
      {"service", ordered_json{{"namespace", entry.namespace_name}, {"name", entry.name}}},
      {"localEndpoints", entry.local_endpoints},
      {"serviceProxyHealthy", proxy_healthy}};
  int status = entry.local_endpoints != 0 && proxy_healthy ? 200 : 503;
  // Tab-indented like kube-proxy's body, so anything matching its text keeps matching.
  return {status,
          "application/json",
          body.dump(1, '\t'),
          {{"X-Content-Type-Options", "nosniff"},
           {"X-Load-Balancing-Endpoint-Weight", std::to_string(entry.local_endpoints)}}};
}

ServiceHealthServers::ServiceHealthServers(std::vector<std::string> hosts,
                                           const ProxyHealth* proxy_health)
    : proxy_health_(proxy_health) {
  std::sort(hosts.begin(), hosts.end());
  hosts.erase(std::unique(hosts.begin(), hosts.end()), hosts.end());
  // "" listens on every address already; a specific one beside it would only fail to bind.
  if (hosts.empty() || hosts.front().empty()) hosts = {""};
  for (const std::string& host : hosts) {
    try {
      BindAddress::Parse(JoinHostPort(host, 0));
    } catch (const HttpServerError& e) {
      throw HttpServerError(std::string("health check node port address: ") + e.what());
    }
  }
  hosts_ = std::move(hosts);
}

ServiceHealthServers::~ServiceHealthServers() = default;

std::vector<ServiceHealthFailure> ServiceHealthServers::Sync(
    const std::map<uint16_t, Entry>& wanted) {
  // Close first, so a port that changed Service is free again before it reopens.
  for (auto it = ports_.begin(); it != ports_.end();) {
    const Port& open = *it->second;
    auto want = wanted.find(it->first);
    if (want != wanted.end() && want->second.namespace_name == open.namespace_name &&
        want->second.name == open.name) {
      ++it;
      continue;
    }
    SLOG_V(2) << ServiceName(open.namespace_name, open.name) << ": closing health check node port "
              << it->first;
    it = ports_.erase(it);
  }

  std::vector<ServiceHealthFailure> failures;
  for (const auto& [port, entry] : wanted) {
    if (auto open = ports_.find(port); open != ports_.end()) {
      open->second->local_endpoints.store(entry.local_endpoints, std::memory_order_relaxed);
      continue;
    }
    if (port == 0) {  // a caller's mistake, not worth a retry
      std::string error = ServiceName(entry.namespace_name, entry.name) + " health check: no port";
      SLOG_WARN << error;
      failures.push_back({port, entry.namespace_name, entry.name, std::move(error)});
      continue;
    }
    try {
      ports_.emplace(port, Open(port, entry));
    } catch (const HttpServerError& e) {
      SLOG_WARN << e.what() << "; retrying on the next sync";
      failures.push_back({port, entry.namespace_name, entry.name, e.what()});
    }
  }
  return failures;
}

std::unique_ptr<ServiceHealthServers::Port> ServiceHealthServers::Open(uint16_t port,
                                                                       const Entry& entry) const {
  const std::string server_name = ServiceName(entry.namespace_name, entry.name) + " health check";
  auto state = std::make_unique<Port>(entry);
  HttpHandler answer = [serving = state.get(), health = proxy_health_](const HttpRequest&) {
    Entry now{serving->namespace_name, serving->name,
              serving->local_endpoints.load(std::memory_order_relaxed)};
    return ServiceHealthResponse(now, health == nullptr || health->IsHealthy());
  };
  // A throw on one host drops, with `state`, the servers already opened on the others.
  for (const std::string& host : hosts_) {
    state->servers.push_back(
        std::make_unique<HttpServer>(server_name, JoinHostPort(host, port), HttpRoutes{}, answer));
  }
  return state;
}

std::vector<uint16_t> ServiceHealthServers::ServingPorts() const {
  std::vector<uint16_t> out;
  out.reserve(ports_.size());
  for (const auto& [port, state] : ports_) out.push_back(port);
  return out;
}

}  // namespace sluice::proxy
