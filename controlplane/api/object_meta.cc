#include "controlplane/api/object_meta.h"

#include <charconv>
#include <limits>

#include "controlplane/api/field_reader.h"

namespace sluice::api {

std::string ObjectMeta::Key() const {
  return namespace_name.empty() ? name : namespace_name + "/" + name;
}

std::optional<std::string_view> ObjectMeta::Label(std::string_view key) const {
  auto it = labels.find(key);
  if (it == labels.end()) return std::nullopt;
  return it->second;
}

std::optional<std::string_view> ObjectMeta::Annotation(std::string_view key) const {
  auto it = annotations.find(key);
  if (it == annotations.end()) return std::nullopt;
  return it->second;
}

namespace {

std::string MetadataString(JsonElement object, std::string_view key) {
  if (!object.is_object()) return "";
  auto meta = FieldReader::Find(object.get_object().value_unsafe(), "metadata");
  if (!meta || !meta->is_object()) return "";
  auto v = FieldReader::Find(meta->get_object().value_unsafe(), key);
  return v && v->is_string() ? std::string(v->get_string().value_unsafe()) : "";
}

bool Digits(std::string_view s, size_t pos, size_t n, int& out) {
  if (pos + n > s.size()) return false;
  out = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    out = out * 10 + (s[i] - '0');
  }
  return true;
}

}  // namespace

std::string ObjectKey(JsonElement object) {
  std::string name = MetadataString(object, "name");
  if (name.empty()) return "";
  std::string ns = MetadataString(object, "namespace");
  return ns.empty() ? name : ns + "/" + name;
}

std::string ObjectResourceVersion(JsonElement object) {
  return MetadataString(object, "resourceVersion");
}

std::string ObjectKey(const nlohmann::json& object) {
  return ParseNlohmann(object, [](JsonElement e) { return ObjectKey(e); });
}

std::string ObjectResourceVersion(const nlohmann::json& object) {
  return ParseNlohmann(object, [](JsonElement e) { return ObjectResourceVersion(e); });
}

std::optional<Timestamp> ParseTimestamp(std::string_view s) {
  // 2006-01-02T15:04:05[.999999999](Z|+07:00)
  int y, mo, d, h, mi, sec;
  if (!Digits(s, 0, 4, y) || s.size() < 20 || s[4] != '-' || !Digits(s, 5, 2, mo) || s[7] != '-' ||
      !Digits(s, 8, 2, d) || s[10] != 'T' || !Digits(s, 11, 2, h) || s[13] != ':' ||
      !Digits(s, 14, 2, mi) || s[16] != ':' || !Digits(s, 17, 2, sec)) {
    return std::nullopt;
  }
  size_t pos = 19;
  if (s[pos] == '.') {
    size_t start = ++pos;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') ++pos;
    if (pos == start) return std::nullopt;
  }
  int offset_minutes = 0;
  if (pos < s.size() && s[pos] == 'Z') {
    ++pos;
  } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
    int oh, om;
    if (!Digits(s, pos + 1, 2, oh) || pos + 3 >= s.size() || s[pos + 3] != ':' ||
        !Digits(s, pos + 4, 2, om) || oh > 23 || om > 59) {
      return std::nullopt;
    }
    offset_minutes = (s[pos] == '+' ? 1 : -1) * (oh * 60 + om);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != s.size() || h > 23 || mi > 59 || sec > 60) return std::nullopt;
  std::chrono::year_month_day ymd{std::chrono::year(y),
                                  std::chrono::month(static_cast<unsigned>(mo)),
                                  std::chrono::day(static_cast<unsigned>(d))};
  if (!ymd.ok()) return std::nullopt;
  // A leap second (":60") is read as the next second, as Go does.
  return std::chrono::sys_days(ymd) + std::chrono::hours(h) + std::chrono::minutes(mi) +
         std::chrono::seconds(sec) - std::chrono::minutes(offset_minutes);
}

ObjectMeta ReadObjectMeta(FieldReader& r, JsonObject object) {
  ObjectMeta m;
  auto meta = r.Object(object, "metadata");
  if (!meta) return m;
  auto scope = r.Enter("metadata");
  auto str = [&](std::string_view key, std::string& out) {
    if (auto s = r.String(*meta, key)) out = *s;
  };
  str("namespace", m.namespace_name);
  str("name", m.name);
  str("uid", m.uid);
  str("resourceVersion", m.resource_version);
  m.generation = r.Int(*meta, "generation", std::numeric_limits<int64_t>::min(),
                       std::numeric_limits<int64_t>::max())
                     .value_or(0);
  m.labels = r.Map(*meta, "labels");
  m.annotations = r.Map(*meta, "annotations");
  auto time = [&](std::string_view key) -> std::optional<Timestamp> {
    auto s = r.String(*meta, key);
    if (!s) return std::nullopt;
    auto t = ParseTimestamp(*s);
    if (!t) r.Fail(key, "invalid RFC 3339 time " + FieldReader::Quote(*s));
    return t;
  };
  m.creation_timestamp = time("creationTimestamp");
  m.deletion_timestamp = time("deletionTimestamp");
  return m;
}

}  // namespace sluice::api
