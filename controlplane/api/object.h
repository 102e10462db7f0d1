// The kinds a service proxy reads, parsed by their "kind".
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <string_view>
#include <variant>

#include "controlplane/api/endpoint_slice.h"
#include "controlplane/api/json_dom.h"
#include "controlplane/api/node.h"
#include "controlplane/api/object_meta.h"
#include "controlplane/api/service.h"

namespace sluice::api {

enum class Kind : uint8_t { kService, kEndpointSlice, kNode };
std::string_view ToString(Kind k);  // "Service", "EndpointSlice", "Node"

using Object = std::variant<Service, EndpointSlice, Node>;

Kind KindOf(const Object& o);
const ObjectMeta& MetaOf(const Object& o);

// Dispatches on "kind" (required here) and checks apiVersion. A Status, an unknown kind, or a
// missing kind is a ParseError (a Status comes back inside it, see ParseError::status()).
Object ParseObject(JsonElement object);
Object ParseObject(const nlohmann::json& object);
// The same for one complete JSON text (malformed JSON is a ParseError too).
Object ParseObjectText(std::string_view text);
// Validate(Service|EndpointSlice|Node) for whichever it holds.
void Validate(const Object& o);

}  // namespace sluice::api
