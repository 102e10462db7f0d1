#include "controlplane/api/object.h"

#include "controlplane/api/field_reader.h"

namespace sluice::api {

std::string_view ToString(Kind k) {
  switch (k) {
    case Kind::kService:
      return "Service";
    case Kind::kEndpointSlice:
      return "EndpointSlice";
    default:
      return "Node";
  }
}

Kind KindOf(const Object& o) { return static_cast<Kind>(o.index()); }

const ObjectMeta& MetaOf(const Object& o) {
  return std::visit([](const auto& v) -> const ObjectMeta& { return v.metadata; }, o);
}

Object ParseObject(JsonElement object) {
  FieldReader r("", ObjectIdentity(object));
  if (!object.is_object())
    r.Fail("", "expected a JSON object, got " + FieldReader::Describe(object));
  auto kind = r.String(object.get_object().value_unsafe(), "kind");
  if (!kind || kind->empty()) r.Fail("kind", "required");
  if (*kind == "Service") return ParseService(object);
  if (*kind == "EndpointSlice") return ParseEndpointSlice(object);
  if (*kind == "Node") return ParseNode(object);
  if (*kind == "Status") {
    Status s = ParseStatus(object);
    throw ParseError("", "", "", "got a Status instead of an object: " + s.Summary())
        .WithStatus(std::move(s));
  }
  r.Fail("kind",
         "unsupported " + FieldReader::Quote(*kind) + " (want Service, EndpointSlice or Node)");
}

Object ParseObject(const nlohmann::json& object) {
  return ParseNlohmann(object, [](JsonElement e) { return ParseObject(e); });
}

Object ParseObjectText(std::string_view text) {
  JsonParser parser;
  return ParseObject(ParseJsonDom(parser, text));
}

void Validate(const Object& o) {
  std::visit([](const auto& v) { Validate(v); }, o);
}

namespace {

// The labels and annotations a proxy reads; TrimForProxy keeps only these.
bool ProxyLabel(const std::string& key) {
  return key == kServiceNameLabel || key == "service.kubernetes.io/service-proxy-name" ||
         key == "service.kubernetes.io/headless";
}

void KeepOnly(StringMap& map, bool (*keep)(const std::string&)) {
  for (auto it = map.begin(); it != map.end();) {
    it = keep(it->first) ? std::next(it) : map.erase(it);
  }
}

}  // namespace

void TrimForProxy(EndpointSlice& s) {
  KeepOnly(s.metadata.labels, ProxyLabel);
  KeepOnly(s.metadata.annotations, [](const std::string& key) {
    return key == "endpoints.kubernetes.io/last-change-trigger-time";
  });
  for (auto& e : s.endpoints) {
    e.target_ref.reset();
    e.hostname.reset();
  }
}

void TrimForProxy(Service& s) {
  KeepOnly(s.metadata.labels, ProxyLabel);
  s.metadata.annotations.clear();
  s.spec.selector.clear();
}

}  // namespace sluice::api
