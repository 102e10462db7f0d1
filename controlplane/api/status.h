// meta/v1 Status: what the API server returns instead of an object (an HTTP error body, the object
// of a watch ERROR event).
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::api {

struct StatusCause {
  std::string reason;  // "FieldValueForbidden", "ResourceVersionTooLarge", ...
  std::string message;
  std::string field;  // "sendInitialEvents"; "" when the cause is not about one field

  bool operator==(const StatusCause&) const = default;
};

struct Status {
  bool success = false;  // "status": "Success" / "Failure"
  int code = 0;          // the HTTP status code it stands for: 410, 422, 504, ...
  // Machine-readable reason, kept as sent ("Expired", "Gone", "Timeout", "Invalid", ...): the set
  // is open-ended and only a few values change what a client does (see the predicates below).
  std::string reason;
  std::string message;
  std::string continue_token;    // metadata.continue: the inconsistent token of an expired list
  std::string resource_version;  // metadata.resourceVersion, rarely set
  std::optional<int> retry_after_seconds;  // details.retryAfterSeconds
  std::vector<StatusCause> causes;         // details.causes

  // The watch or list resourceVersion (or continue token) is too old: relist. Servers before 1.18
  // said "Gone" instead of "Expired"; both mean the same.
  bool IsExpired() const;
  // 504 "Too large resource version": the server has not caught up; retry with RV unset.
  bool IsTooLargeResourceVersion() const;
  // "410 Expired: too old resource version: 1 (2)" for logs.
  std::string Summary() const;

  bool operator==(const Status&) const = default;
};

// Parses a Status object; kind, when present, must be "Status". Throws ParseError.
Status ParseStatus(const nlohmann::json& object);
Status ParseStatusText(std::string_view text);

}  // namespace sluice::api
