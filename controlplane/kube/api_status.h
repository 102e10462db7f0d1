// The parts of a meta/v1 Status the client acts on (an HTTP error body, a watch ERROR event).
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::kube {

struct ApiStatus {
  int code = 0;  // Status.code, else the HTTP status
  std::string reason;
  std::string message;
  std::string continue_token;  // metadata.continue of an expired-continue 410
  std::optional<int> retry_after_seconds;
  std::vector<std::string> cause_reasons;

  // 410: the resourceVersion or continue token is too old (pre-1.18 servers said "Gone").
  bool IsExpired() const { return code == 410 || reason == "Expired" || reason == "Gone"; }
  // 504 with cause ResourceVersionTooLarge: the server has not caught up with the RV we sent.
  bool IsTooLargeResourceVersion() const;
  // "410 Expired: too old resource version: 1 (2)"
  std::string Summary() const;
};

// From a parsed JSON value; fields of the wrong type are ignored (this is error reporting, and an
// error about the error helps nobody). http_status fills `code` when the body has none.
ApiStatus StatusFromJson(const nlohmann::json& object, int http_status);
// From a response body that may or may not be a Status (an HTML page from a proxy, empty, ...).
ApiStatus StatusFromBody(std::string_view body, int http_status);

}  // namespace sluice::kube
