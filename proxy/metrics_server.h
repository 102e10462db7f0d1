// The routes of kube-proxy's metrics server (--metrics-bind-address, default 127.0.0.1:10249):
// /metrics in the Prometheus text format, /healthz and /healthz/ping answering "ok" while the
// process serves at all, and /proxyMode naming the backend. kube-proxy's debug pages (configz,
// flagz, statusz, pprof) have no counterpart here.
#pragma once

#include <string>

#include "proxy/http_server.h"
#include "proxy/metrics.h"

namespace sluice::proxy {

// `registry` must outlive the server the routes are given to. An empty `proxy_mode` leaves
// /proxyMode out.
void AddMetricsServerRoutes(const Registry& registry, std::string proxy_mode, HttpRoutes& routes);

}  // namespace sluice::proxy
