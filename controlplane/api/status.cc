#include "controlplane/api/status.h"

#include <limits>

#include "controlplane/api/field_reader.h"

namespace sluice::api {
namespace {

// The reads of the one walk below: through FieldReader when strict (anything wrong throws a
// ParseError naming the field), otherwise skipping whatever is missing or of the wrong type.
class StatusFields {
 public:
  explicit StatusFields(bool strict) : strict_(strict), r_("Status", "") {}

  FieldReader::Scope Enter(std::string_view key) { return r_.Enter(key); }
  FieldReader::Scope Enter(size_t index) { return r_.Enter(index); }

  std::optional<JsonObject> Object(JsonObject obj, std::string_view key) {
    if (strict_) return r_.Object(obj, key);
    auto v = FieldReader::Find(obj, key);
    if (!v || !v->is_object()) return std::nullopt;
    return v->get_object().value_unsafe();
  }
  std::optional<JsonArray> Array(JsonObject obj, std::string_view key) {
    if (strict_) return r_.Array(obj, key);
    auto v = FieldReader::Find(obj, key);
    if (!v || !v->is_array()) return std::nullopt;
    return v->get_array().value_unsafe();
  }
  std::optional<std::string_view> String(JsonObject obj, std::string_view key) {
    if (strict_) return r_.String(obj, key);
    auto v = FieldReader::Find(obj, key);
    if (!v || !v->is_string()) return std::nullopt;
    return v->get_string().value_unsafe();
  }
  std::optional<int> Int32(JsonObject obj, std::string_view key) {
    constexpr int64_t kMin = std::numeric_limits<int32_t>::min();
    constexpr int64_t kMax = std::numeric_limits<int32_t>::max();
    if (strict_) {
      auto v = r_.Int(obj, key, kMin, kMax);
      return v ? std::optional<int>(static_cast<int>(*v)) : std::nullopt;
    }
    auto v = FieldReader::Find(obj, key);
    if (!v || !v->is_int64()) return std::nullopt;  // above INT64_MAX (uint64) is out of range too
    int64_t i = v->get_int64().value_unsafe();
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
  bool strict_;
  FieldReader r_;
};

Status ReadStatus(JsonElement json, bool strict, int http_status) {
  StatusFields f(strict);
  Status s;
  s.code = http_status;
  if (!json.is_object()) {
    f.Fail("", "expected a JSON object, got " + FieldReader::Describe(json));
    return s;
  }
  JsonObject object = json.get_object().value_unsafe();
  auto kind = f.String(object, "kind");
  if (kind && *kind != "Status")
    f.Fail("kind", "expected Status, got " + FieldReader::Quote(*kind));
  if (auto st = f.String(object, "status")) {
    if (*st == "Success") {
      s.success = true;
    } else if (*st != "Failure" && !st->empty()) {
      f.Fail("status", "unknown value " + FieldReader::Quote(*st) + " (want Success or Failure)");
    }
  }
  if (auto code = f.Int32(object, "code")) s.code = *code;
  if (auto v = f.String(object, "reason")) s.reason = *v;
  if (auto v = f.String(object, "message")) s.message = *v;
  if (auto meta = f.Object(object, "metadata")) {
    auto scope = f.Enter("metadata");
    if (auto v = f.String(*meta, "continue")) s.continue_token = *v;
    if (auto v = f.String(*meta, "resourceVersion")) s.resource_version = *v;
  }
  if (auto details = f.Object(object, "details")) {
    auto scope = f.Enter("details");
    s.retry_after_seconds = f.Int32(*details, "retryAfterSeconds");
    if (auto causes = f.Array(*details, "causes")) {
      auto causes_scope = f.Enter("causes");
      size_t i = 0;
      for (JsonElement element : *causes) {
        size_t index = i++;
        if (!element.is_object()) {
          f.FailAt(index, "expected an object, got " + FieldReader::Describe(element));
          continue;
        }
        auto item = f.Enter(index);
        JsonObject c = element.get_object().value_unsafe();
        StatusCause cause;
        if (auto v = f.String(c, "reason")) cause.reason = *v;
        if (auto v = f.String(c, "message")) cause.message = *v;
        if (auto v = f.String(c, "field")) cause.field = *v;
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

Status ParseStatus(JsonElement object) { return ReadStatus(object, /*strict=*/true, 0); }

Status ParseStatus(const nlohmann::json& object) {
  return ParseNlohmann(object, [](JsonElement e) { return ParseStatus(e); });
}

Status ParseStatusText(std::string_view text) {
  JsonParser parser;
  return ParseStatus(ParseJsonDom(parser, text));
}

Status StatusFromJson(JsonElement object, int http_status) {
  return ReadStatus(object, /*strict=*/false, http_status);
}

Status StatusFromJson(const nlohmann::json& object, int http_status) {
  return ParseNlohmann(object, [&](JsonElement e) { return StatusFromJson(e, http_status); });
}

Status StatusFromBody(std::string_view body, int http_status) {
  JsonParser parser;
  JsonElement parsed;
  bool is_json = true;
  try {
    parsed = ParseJsonDom(parser, body);
  } catch (const ParseError&) {
    is_json = false;
  }
  if (is_json && parsed.is_object()) return StatusFromJson(parsed, http_status);
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
