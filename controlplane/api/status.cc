#include "controlplane/api/status.h"

#include <limits>

#include "controlplane/api/field_reader.h"

namespace sluice::api {
namespace {

using nlohmann::json;

// The reads of the one walk below: through FieldReader when strict (anything wrong throws a
// ParseError naming the field), otherwise skipping whatever is missing or of the wrong type.
class StatusFields {
 public:
  explicit StatusFields(bool strict) : strict_(strict), r_("Status", "") {}

  FieldReader::Scope Enter(std::string_view key) { return r_.Enter(key); }
  FieldReader::Scope Enter(size_t index) { return r_.Enter(index); }

  const json* Object(const json& obj, std::string_view key) {
    if (strict_) return r_.Object(obj, key);
    const json* v = Find(obj, key);
    return v && v->is_object() ? v : nullptr;
  }
  const json* Array(const json& obj, std::string_view key) {
    if (strict_) return r_.Array(obj, key);
    const json* v = Find(obj, key);
    return v && v->is_array() ? v : nullptr;
  }
  const std::string* String(const json& obj, std::string_view key) {
    if (strict_) return r_.String(obj, key);
    const json* v = Find(obj, key);
    return v && v->is_string() ? v->get_ptr<const std::string*>() : nullptr;
  }
  std::optional<int> Int32(const json& obj, std::string_view key) {
    constexpr int64_t kMin = std::numeric_limits<int32_t>::min();
    constexpr int64_t kMax = std::numeric_limits<int32_t>::max();
    if (strict_) {
      auto v = r_.Int(obj, key, kMin, kMax);
      return v ? std::optional<int>(static_cast<int>(*v)) : std::nullopt;
    }
    const json* v = Find(obj, key);
    if (!v || !v->is_number_integer()) return std::nullopt;
    if (v->is_number_unsigned()) {
      uint64_t u = v->get<uint64_t>();
      return u <= static_cast<uint64_t>(kMax) ? std::optional<int>(static_cast<int>(u))
                                              : std::nullopt;
    }
    int64_t i = v->get<int64_t>();
    return i >= kMin && i <= kMax ? std::optional<int>(static_cast<int>(i)) : std::nullopt;
  }

  // Strict: throws. Lenient: nothing; the caller skips what was wrong.
  void Fail(std::string_view key, std::string reason) {
    if (strict_) r_.Fail(key, std::move(reason));
  }
  void FailAt(size_t index, std::string reason) {
    if (strict_) r_.FailAt(index, std::move(reason));
  }

 private:
  static const json* Find(const json& obj, std::string_view key) {
    if (!obj.is_object()) return nullptr;
    auto it = obj.find(key);
    return it == obj.end() ? nullptr : &*it;
  }

  bool strict_;
  FieldReader r_;
};

Status ReadStatus(const json& object, bool strict, int http_status) {
  StatusFields f(strict);
  Status s;
  s.code = http_status;
  if (!object.is_object()) {
    f.Fail("", "expected a JSON object, got " + FieldReader::Describe(object));
    return s;
  }
  const std::string* kind = f.String(object, "kind");
  if (kind && *kind != "Status")
    f.Fail("kind", "expected Status, got " + FieldReader::Quote(*kind));
  if (const auto* st = f.String(object, "status")) {
    if (*st == "Success") {
      s.success = true;
    } else if (*st != "Failure" && !st->empty()) {
      f.Fail("status", "unknown value " + FieldReader::Quote(*st) + " (want Success or Failure)");
    }
  }
  if (auto code = f.Int32(object, "code")) s.code = *code;
  if (const auto* v = f.String(object, "reason")) s.reason = *v;
  if (const auto* v = f.String(object, "message")) s.message = *v;
  if (const auto* meta = f.Object(object, "metadata")) {
    auto scope = f.Enter("metadata");
    if (const auto* v = f.String(*meta, "continue")) s.continue_token = *v;
    if (const auto* v = f.String(*meta, "resourceVersion")) s.resource_version = *v;
  }
  if (const auto* details = f.Object(object, "details")) {
    auto scope = f.Enter("details");
    s.retry_after_seconds = f.Int32(*details, "retryAfterSeconds");
    if (const auto* causes = f.Array(*details, "causes")) {
      auto causes_scope = f.Enter("causes");
      for (size_t i = 0; i < causes->size(); ++i) {
        const auto& c = (*causes)[i];
        if (!c.is_object()) {
          f.FailAt(i, "expected an object, got " + FieldReader::Describe(c));
          continue;
        }
        auto item = f.Enter(i);
        StatusCause cause;
        if (const auto* v = f.String(c, "reason")) cause.reason = *v;
        if (const auto* v = f.String(c, "message")) cause.message = *v;
        if (const auto* v = f.String(c, "field")) cause.field = *v;
        s.causes.push_back(std::move(cause));
      }
    }
  }
  return s;
}

}  // namespace

bool Status::IsExpired() const { return code == 410 || reason == "Expired" || reason == "Gone"; }

bool Status::IsTooLargeResourceVersion() const {
  if (code != 504) return false;
  for (const auto& c : causes) {
    if (c.reason == "ResourceVersionTooLarge") return true;
  }
  return message.find("Too large resource version") != std::string::npos;
}

std::string Status::Summary() const {
  std::string s = std::to_string(code);
  if (!reason.empty()) s += " " + reason;
  if (!message.empty()) s += ": " + message;
  return s;
}

Status ParseStatus(const json& object) { return ReadStatus(object, /*strict=*/true, 0); }

Status ParseStatusText(std::string_view text) { return ParseStatus(ParseJsonText(text)); }

Status StatusFromJson(const json& object, int http_status) {
  return ReadStatus(object, /*strict=*/false, http_status);
}

Status StatusFromBody(std::string_view body, int http_status) {
  json parsed = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_object()) return StatusFromJson(parsed, http_status);
  Status s;
  s.code = http_status;
  // Not a Status (a proxy's HTML page, plain text): keep a short excerpt for the log.
  s.message = body.substr(0, 200);
  for (char& c : s.message) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return s;
}

}  // namespace sluice::api
