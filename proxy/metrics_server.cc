#include "proxy/metrics_server.h"

namespace sluice::proxy {
namespace {

HttpResponse PlainText(std::string body) {
  return {
      200, "text/plain; charset=utf-8", std::move(body), {{"X-Content-Type-Options", "nosniff"}}};
}

}  // namespace

void AddMetricsServerRoutes(const Registry& registry, std::string proxy_mode, HttpRoutes& routes) {
  routes["/metrics"] = [&registry](const HttpRequest&) {
    return HttpResponse{200, std::string(kMetricsContentType), registry.Render(), {}};
  };
  routes["/healthz"] = [](const HttpRequest&) { return PlainText("ok"); };
  routes["/healthz/ping"] = [](const HttpRequest&) { return PlainText("ok"); };
  if (!proxy_mode.empty()) {
    routes["/proxyMode"] = [mode = std::move(proxy_mode)](const HttpRequest&) {
      return PlainText(mode);
    };
  }
}

}  // namespace sluice::proxy
