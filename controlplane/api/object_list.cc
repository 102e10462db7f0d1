#include "controlplane/api/object_list.h"

#include <limits>

#include "controlplane/api/field_reader.h"

namespace sluice::api {
namespace {

template <typename T>
ObjectList<T> ParseList(const nlohmann::json& list, std::string_view kind,
                        std::string_view api_version, T (*parse_item)(const nlohmann::json&)) {
  FieldReader r(kind, "");
  CheckTypeMeta(r, list, kind, api_version);
  ObjectList<T> out;
  if (const auto* meta = r.Object(list, "metadata")) {
    auto scope = r.Enter("metadata");
    if (const auto* v = r.String(*meta, "resourceVersion")) out.resource_version = *v;
    if (const auto* v = r.String(*meta, "continue")) out.continue_token = *v;
    out.remaining_item_count =
        r.Int(*meta, "remainingItemCount", 0, std::numeric_limits<int64_t>::max());
  }
  if (const auto* items = r.Array(list, "items")) {
    out.items.reserve(items->size());
    for (size_t i = 0; i < items->size(); ++i) {
      try {
        out.items.push_back(parse_item((*items)[i]));
      } catch (const ParseError& e) {
        out.rejected.push_back(
            e.WithContext(std::string(kind) + " items[" + std::to_string(i) + "]"));
      }
    }
  }
  return out;
}

}  // namespace

ServiceList ParseServiceList(const nlohmann::json& list) {
  return ParseList<Service>(list, "ServiceList", "v1", &ParseService);
}

EndpointSliceList ParseEndpointSliceList(const nlohmann::json& list) {
  return ParseList<EndpointSlice>(list, "EndpointSliceList", "discovery.k8s.io/v1",
                                  &ParseEndpointSlice);
}

NodeList ParseNodeList(const nlohmann::json& list) {
  return ParseList<Node>(list, "NodeList", "v1", &ParseNode);
}

ServiceList ParseServiceListText(std::string_view text) {
  return ParseServiceList(ParseJsonText(text));
}

EndpointSliceList ParseEndpointSliceListText(std::string_view text) {
  return ParseEndpointSliceList(ParseJsonText(text));
}

NodeList ParseNodeListText(std::string_view text) { return ParseNodeList(ParseJsonText(text)); }

}  // namespace sluice::api
