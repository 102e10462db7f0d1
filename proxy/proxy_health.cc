#include "proxy/proxy_health.h"

#include <time.h>

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "proxy/proxy_metrics.h"

namespace sluice::proxy {
namespace {

using nlohmann::ordered_json;  // Go's encoding/json keeps struct field order

HttpResponse JsonResponse(int status, const ordered_json& body) {
  return {status, "application/json", body.dump(), {{"X-Content-Type-Options", "nosniff"}}};
}

ordered_json FamiliesJson(const ProxyHealth::Status& s) {
  ordered_json families = ordered_json::object();
  for (const auto& [family, health] : s.families) {  // "IPv4" sorts before "IPv6", as in Go
    families[IpFamilyLabel(family)] = {{"lastUpdated", FormatJsonTime(health.last_updated)},
                                       {"healthy", health.healthy}};
  }
  return families;
}

}  // namespace

HealthInstant HealthInstant::Now() {
  return {std::chrono::steady_clock::now(), std::chrono::system_clock::now()};
}

bool IsNodeEligible(bool being_deleted, std::span<const std::string> taint_keys) {
  if (being_deleted) return false;
  return std::find(taint_keys.begin(), taint_keys.end(), kToBeDeletedTaint) == taint_keys.end();
}

std::string FormatJsonTime(std::optional<std::chrono::system_clock::time_point> t) {
  if (!t) return "0001-01-01T00:00:00Z";  // Go's zero time.Time
  using namespace std::chrono;
  auto ns = duration_cast<nanoseconds>(t->time_since_epoch()).count();
  int64_t secs = ns / 1'000'000'000;
  int64_t frac = ns % 1'000'000'000;
  if (frac < 0) {
    frac += 1'000'000'000;
    --secs;
  }
  time_t tt = static_cast<time_t>(secs);
  tm utc{};
  gmtime_r(&tt, &utc);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d", utc.tm_year + 1900,
                utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec);
  std::string out = buf;
  if (frac != 0) {
    std::snprintf(buf, sizeof(buf), ".%09lld", static_cast<long long>(frac));
    std::string f = buf;
    while (f.back() == '0') f.pop_back();
    out += f;
  }
  return out + "Z";
}

ProxyHealth::ProxyHealth(std::chrono::nanoseconds health_timeout, ProxyMetrics* metrics,
                         HealthClock clock)
    : timeout_(health_timeout), metrics_(metrics), clock_(std::move(clock)) {}

void ProxyHealth::QueuedUpdate(IpFamily family) {
  HealthInstant now = clock_();
  std::lock_guard lock(mu_);
  queued_.try_emplace(family, now.monotonic);  // keep the oldest
}

void ProxyHealth::Updated(IpFamily family) {
  HealthInstant now = clock_();
  std::lock_guard lock(mu_);
  queued_.erase(family);
  updated_[family] = now;
}

void ProxyHealth::SetNodeEligible(bool eligible) {
  std::lock_guard lock(mu_);
  node_eligible_ = eligible;
}

bool ProxyHealth::NodeEligible() const {
  std::lock_guard lock(mu_);
  return node_eligible_;
}

ProxyHealth::Status ProxyHealth::Health() const {
  HealthInstant now = clock_();
  Status s;
  s.current_time = now.wall;
  std::lock_guard lock(mu_);
  for (const auto& [family, updated] : updated_) {
    if (!s.last_updated || updated.wall > *s.last_updated) s.last_updated = updated.wall;
    FamilyHealth& f = s.families[family];
    f.last_updated = updated.wall;
    auto queued = queued_.find(family);
    // A pending change is fine until it has waited the whole timeout.
    if (queued != queued_.end() && now.monotonic - queued->second >= timeout_) {
      f.healthy = false;
      s.healthy = false;
    }
  }
  return s;
}

HttpResponse ProxyHealth::ServeHealthz() const {
  Status s = Health();
  bool eligible = NodeEligible();
  bool healthy = s.healthy && eligible;
  // A healthy answer reports lastUpdated as now: older releases reported the last sync loop
  // run, which was always recent while healthy, and clients may rely on that.
  std::optional<std::chrono::system_clock::time_point> last_updated =
      healthy ? std::optional(clock_().wall) : s.last_updated;
  ordered_json body = {{"lastUpdated", FormatJsonTime(last_updated)},
                       {"currentTime", FormatJsonTime(s.current_time)},
                       {"nodeEligible", eligible},
                       {"healthy", s.healthy}};
  if (!s.families.empty()) body["status"] = FamiliesJson(s);
  int code = healthy ? 200 : 503;
  if (metrics_ != nullptr)
    metrics_->proxy_healthz_total.WithLabelValues({std::to_string(code)}).Inc();
  return JsonResponse(code, body);
}

HttpResponse ProxyHealth::ServeLivez() const {
  Status s = Health();
  std::optional<std::chrono::system_clock::time_point> last_updated =
      s.healthy ? std::optional(clock_().wall) : s.last_updated;
  ordered_json body = {{"lastUpdated", FormatJsonTime(last_updated)},
                       {"currentTime", FormatJsonTime(s.current_time)},
                       {"healthy", s.healthy}};
  if (!s.families.empty()) body["status"] = FamiliesJson(s);
  int code = s.healthy ? 200 : 503;
  if (metrics_ != nullptr)
    metrics_->proxy_livez_total.WithLabelValues({std::to_string(code)}).Inc();
  return JsonResponse(code, body);
}

void ProxyHealth::AddRoutes(HttpRoutes& routes) const {
  routes["/healthz"] = [this](const HttpRequest&) { return ServeHealthz(); };
  routes["/livez"] = [this](const HttpRequest&) { return ServeLivez(); };
}

}  // namespace sluice::proxy
