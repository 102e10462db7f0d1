// ServiceList, EndpointSliceList, NodeList: one page of a LIST.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "controlplane/api/endpoint_slice.h"
#include "controlplane/api/json_dom.h"
#include "controlplane/api/node.h"
#include "controlplane/api/object_error.h"
#include "controlplane/api/service.h"

namespace sluice::api {

template <typename T>
struct ObjectList {
  std::string resource_version;  // metadata.resourceVersion: the snapshot; watch from here
  std::string continue_token;    // metadata.continue: "" on the last page
  std::optional<int64_t> remaining_item_count;
  std::vector<T> items;
  // Items that did not parse, each error naming "XList items[i]" and the object. One bad object
  // must not block a proxy from programming the other 9,999, so it is set aside here and the
  // caller logs it; the list as a whole fails only when its own structure is wrong.
  std::vector<ParseError> rejected;
};

using ServiceList = ObjectList<Service>;
using EndpointSliceList = ObjectList<EndpointSlice>;
using NodeList = ObjectList<Node>;

// kind (e.g. "ServiceList") and apiVersion are checked when present; a Status instead of a list
// is a ParseError carrying it (HTTP 410 on an expired continue token answers with one).
ServiceList ParseServiceList(JsonElement list);
EndpointSliceList ParseEndpointSliceList(JsonElement list);
NodeList ParseNodeList(JsonElement list);
ServiceList ParseServiceList(const nlohmann::json& list);
EndpointSliceList ParseEndpointSliceList(const nlohmann::json& list);
NodeList ParseNodeList(const nlohmann::json& list);

ServiceList ParseServiceListText(std::string_view text);
EndpointSliceList ParseEndpointSliceListText(std::string_view text);
NodeList ParseNodeListText(std::string_view text);

}  // namespace sluice::api
