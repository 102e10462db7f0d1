#include "controlplane/api/status.h"

#include <limits>

#include "controlplane/api/field_reader.h"

namespace sluice::api {

bool Status::IsExpired() const { return code == 410 && (reason == "Expired" || reason == "Gone"); }

bool Status::IsTooLargeResourceVersion() const {
  if (code != 504) return false;
  for (const auto& c : causes) {
    if (c.reason == "ResourceVersionTooLarge") return true;
  }
  return false;
}

std::string Status::Summary() const {
  std::string s = std::to_string(code);
  if (!reason.empty()) s += " " + reason;
  if (!message.empty()) s += ": " + message;
  return s;
}

Status ParseStatus(const nlohmann::json& object) {
  FieldReader r("Status", "");
  if (!object.is_object())
    r.Fail("", "expected a JSON object, got " + FieldReader::Describe(object));
  const std::string* kind = r.String(object, "kind");
  if (kind && *kind != "Status")
    r.Fail("kind", "expected Status, got " + FieldReader::Quote(*kind));
  Status s;
  if (const auto* st = r.String(object, "status")) {
    if (*st == "Success") {
      s.success = true;
    } else if (*st != "Failure" && !st->empty()) {
      r.Fail("status", "unknown value " + FieldReader::Quote(*st) + " (want Success or Failure)");
    }
  }
  s.code = static_cast<int>(r.Int(object, "code", std::numeric_limits<int32_t>::min(),
                                  std::numeric_limits<int32_t>::max())
                                .value_or(0));
  if (const auto* v = r.String(object, "reason")) s.reason = *v;
  if (const auto* v = r.String(object, "message")) s.message = *v;
  if (const auto* meta = r.Object(object, "metadata")) {
    auto scope = r.Enter("metadata");
    if (const auto* v = r.String(*meta, "continue")) s.continue_token = *v;
    if (const auto* v = r.String(*meta, "resourceVersion")) s.resource_version = *v;
  }
  if (const auto* details = r.Object(object, "details")) {
    auto scope = r.Enter("details");
    if (auto v = r.Int(*details, "retryAfterSeconds", std::numeric_limits<int32_t>::min(),
                       std::numeric_limits<int32_t>::max())) {
      s.retry_after_seconds = static_cast<int>(*v);
    }
    if (const auto* causes = r.Array(*details, "causes")) {
      auto causes_scope = r.Enter("causes");
      for (size_t i = 0; i < causes->size(); ++i) {
        const auto& c = (*causes)[i];
        if (!c.is_object()) r.FailAt(i, "expected an object, got " + FieldReader::Describe(c));
        auto item = r.Enter(i);
        StatusCause cause;
        if (const auto* v = r.String(c, "reason")) cause.reason = *v;
        if (const auto* v = r.String(c, "message")) cause.message = *v;
        if (const auto* v = r.String(c, "field")) cause.field = *v;
        s.causes.push_back(std::move(cause));
      }
    }
  }
  return s;
}

Status ParseStatusText(std::string_view text) { return ParseStatus(ParseJsonText(text)); }

}  // namespace sluice::api
