// kube-proxy's proxier health (pkg/proxy/healthcheck/proxy_health.go): each IP family's proxier
// reports QueuedUpdate when a change arrives and Updated when its rules carry it; the proxy is
// unhealthy once a queued change has waited health_timeout (kube-proxy: 2 x sync period) without
// an Updated. /livez answers that; /healthz also answers 503 when the node is not eligible for
// traffic (being deleted, or tainted ToBeDeletedByClusterAutoscaler), so load balancers drain it
// while the proxy itself stays alive.
//
// Like kube-proxy, a family counts only once it has called Updated: each proxier calls Updated
// when its sync loop starts, so a proxier whose first sync never succeeds still goes unhealthy.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "common/ip_address.h"
#include "proxy/http_server.h"

namespace sluice::proxy {

struct ProxyMetrics;

// One reading of time: monotonic for the timeout arithmetic (immune to clock steps, as Go's
// time.Sub is), wall for the JSON.
struct HealthInstant {
  std::chrono::steady_clock::time_point monotonic;
  std::chrono::system_clock::time_point wall;
  static HealthInstant Now();
};
using HealthClock = std::function<HealthInstant()>;

// The taint the cluster autoscaler puts on a node it is about to delete.
inline constexpr std::string_view kToBeDeletedTaint = "ToBeDeletedByClusterAutoscaler";
// kube-proxy's rule: eligible unless being deleted or carrying kToBeDeletedTaint.
bool IsNodeEligible(bool being_deleted, std::span<const std::string> taint_keys);

// RFC 3339 with nanoseconds and trailing zeros trimmed, in UTC: how Go's encoding/json writes a
// time.Time ("2024-05-01T12:34:56.123456789Z"); the zero time is "0001-01-01T00:00:00Z".
std::string FormatJsonTime(std::optional<std::chrono::system_clock::time_point> t);

class ProxyHealth {
 public:
  struct FamilyHealth {
    std::chrono::system_clock::time_point last_updated;
    bool healthy = true;
  };
  struct Status {
    bool healthy = true;
    // The most recent Updated of any family; none before the first.
    std::optional<std::chrono::system_clock::time_point> last_updated;
    std::chrono::system_clock::time_point current_time;
    std::map<IpFamily, FamilyHealth> families;  // those that have called Updated
  };

  // `metrics` (may be null) receives the healthz/livez counters.
  explicit ProxyHealth(std::chrono::nanoseconds health_timeout, ProxyMetrics* metrics = nullptr,
                       HealthClock clock = HealthInstant::Now);

  // A change for `family` is waiting for a sync; only the oldest waiting one counts.
  void QueuedUpdate(IpFamily family);
  // `family`'s rules are in sync with everything queued so far.
  void Updated(IpFamily family);
  // From the Node informer. Eligible until told otherwise, so a starting proxy is healthy.
  void SetNodeEligible(bool eligible);
  bool NodeEligible() const;

  Status Health() const;
  bool IsHealthy() const { return Health().healthy; }

  // The /healthz and /livez answers, counted in the metrics.
  HttpResponse ServeHealthz() const;
  HttpResponse ServeLivez() const;
  // "/healthz" and "/livez" for the healthz server (kube-proxy's --healthz-bind-address).
  void AddRoutes(HttpRoutes& routes) const;

 private:
  std::chrono::nanoseconds timeout_;
  ProxyMetrics* metrics_;
  HealthClock clock_;
  mutable std::mutex mu_;
  std::map<IpFamily, HealthInstant> updated_;  // last Updated, per family that called it
  std::map<IpFamily, std::chrono::steady_clock::time_point> queued_;  // oldest pending change
  bool node_eligible_ = true;
};

}  // namespace sluice::proxy
