#include "controlplane/api/object_list.h"

#include <limits>

#include "controlplane/api/field_reader.h"

namespace sluice::api {
namespace {

template <typename T>
ObjectList<T> ParseList(JsonElement json, std::string_view kind, std::string_view api_version,
                        T (*parse_item)(JsonElement)) {
  FieldReader r(kind, "");
  JsonObject list = CheckTypeMeta(r, json, kind, api_version);
  ObjectList<T> out;
  if (auto meta = r.Object(list, "metadata")) {
    auto scope = r.Enter("metadata");
    if (auto v = r.String(*meta, "resourceVersion")) out.resource_version = *v;
    if (auto v = r.String(*meta, "continue")) out.continue_token = *v;
    out.remaining_item_count =
        r.Int(*meta, "remainingItemCount", 0, std::numeric_limits<int64_t>::max());
  }
  if (auto items = r.Array(list, "items")) {
    out.items.reserve(items->size());
    size_t i = 0;
    for (JsonElement item : *items) {
      size_t index = i++;
      try {
        out.items.push_back(parse_item(item));
      } catch (const ParseError& e) {
        out.rejected.push_back(
            e.WithContext(std::string(kind) + " items[" + std::to_string(index) + "]"));
      }
    }
  }
  return out;
}

}  // namespace

ServiceList ParseServiceList(JsonElement list) {
  return ParseList<Service>(list, "ServiceList", "v1", &ParseService);
}

EndpointSliceList ParseEndpointSliceList(JsonElement list) {
  return ParseList<EndpointSlice>(list, "EndpointSliceList", "discovery.k8s.io/v1",
                                  &ParseEndpointSlice);
}

NodeList ParseNodeList(JsonElement list) {
  return ParseList<Node>(list, "NodeList", "v1", &ParseNode);
}

ServiceList ParseServiceList(const nlohmann::json& list) {
  return ParseNlohmann(list, [](JsonElement e) { return ParseServiceList(e); });
}

EndpointSliceList ParseEndpointSliceList(const nlohmann::json& list) {
  return ParseNlohmann(list, [](JsonElement e) { return ParseEndpointSliceList(e); });
}

NodeList ParseNodeList(const nlohmann::json& list) {
  return ParseNlohmann(list, [](JsonElement e) { return ParseNodeList(e); });
}

// A parser per list: a LIST can be tens of MB, and its document is freed with it.
ServiceList ParseServiceListText(std::string_view text) {
  JsonParser parser;
  return ParseServiceList(ParseJsonDom(parser, text));
}

EndpointSliceList ParseEndpointSliceListText(std::string_view text) {
  JsonParser parser;
  return ParseEndpointSliceList(ParseJsonDom(parser, text));
}

NodeList ParseNodeListText(std::string_view text) {
  JsonParser parser;
  return ParseNodeList(ParseJsonDom(parser, text));
}

}  // namespace sluice::api
