// meta/v1 Status: what the API server returns instead of an object (an HTTP error body, the object
// of a watch ERROR event).
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "controlplane/api/json_dom.h"

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
  // said "Gone" instead of "Expired"; a bare HTTP 410 (no Status body) means the same.
  bool IsExpired() const;
  // 504 "Too large resource version": the server has not caught up; retry with RV unset. Said by
  // a cause ResourceVersionTooLarge, or only by the message on servers before 1.20.
  bool IsTooLargeResourceVersion() const;
  // "410 Expired: too old resource version: 1 (2)" for logs.
  std::string Summary() const;

  bool operator==(const Status&) const = default;
};

// Two readings of the same fields (one walk, status.cc):
//
// Strict, where the Status is the document being parsed (a watch ERROR event's object, a Status
// in place of an object or list): kind, when present, must be "Status"; a key of the wrong JSON
// type or an unknown "status" is a ParseError naming the field.
Status ParseStatus(JsonElement object);
Status ParseStatus(const nlohmann::json& object);
Status ParseStatusText(std::string_view text);

// Lenient, for the body of an HTTP error answer (error reporting: an error about the error helps
// nobody). Never throws: kind is not checked, keys of the wrong type are ignored, http_status fills
// a missing code. A body that is not a JSON object (a proxy's HTML page, plain text, nothing)
// becomes a Status with that code and the body's first 200 bytes, on one line, as its message.
Status StatusFromJson(JsonElement object, int http_status);
Status StatusFromJson(const nlohmann::json& object, int http_status);
Status StatusFromBody(std::string_view body, int http_status);

}  // namespace sluice::api
