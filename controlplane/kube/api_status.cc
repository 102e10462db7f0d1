#include "controlplane/kube/api_status.h"

#include <nlohmann/json.hpp>

namespace sluice::kube {

bool ApiStatus::IsTooLargeResourceVersion() const {
  if (code != 504) return false;
  for (const auto& r : cause_reasons) {
    if (r == "ResourceVersionTooLarge") return true;
  }
  return message.find("Too large resource version") != std::string::npos;
}

std::string ApiStatus::Summary() const {
  std::string out = std::to_string(code);
  if (!reason.empty()) out += " " + reason;
  if (!message.empty()) out += ": " + message;
  return out;
}

ApiStatus StatusFromJson(const nlohmann::json& object, int http_status) {
  ApiStatus s;
  s.code = http_status;
  if (!object.is_object()) return s;
  auto str = [](const nlohmann::json& o, const char* key) -> std::string {
    auto it = o.find(key);
    return it != o.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  if (auto it = object.find("code"); it != object.end() && it->is_number_integer()) {
    s.code = it->get<int>();
  }
  s.reason = str(object, "reason");
  s.message = str(object, "message");
  if (auto md = object.find("metadata"); md != object.end() && md->is_object()) {
    s.continue_token = str(*md, "continue");
  }
  if (auto d = object.find("details"); d != object.end() && d->is_object()) {
    if (auto r = d->find("retryAfterSeconds"); r != d->end() && r->is_number_integer()) {
      s.retry_after_seconds = r->get<int>();
    }
    if (auto c = d->find("causes"); c != d->end() && c->is_array()) {
      for (const auto& cause : *c) {
        if (cause.is_object()) s.cause_reasons.push_back(str(cause, "reason"));
      }
    }
  }
  return s;
}

ApiStatus StatusFromBody(std::string_view body, int http_status) {
  auto parsed = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_object()) return StatusFromJson(parsed, http_status);
  ApiStatus s;
  s.code = http_status;
  // Not a Status (a proxy's HTML page, plain text): keep a short excerpt for the log.
  std::string excerpt(body.substr(0, 200));
  for (char& c : excerpt) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  s.message = excerpt;
  return s;
}

}  // namespace sluice::kube
