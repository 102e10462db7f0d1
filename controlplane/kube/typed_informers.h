// The informers kube-proxy runs, with controlplane/api's typed values: Services and EndpointSlices
// without headless or foreign-proxy ones (kube-proxy's label selector), and this node's own Node.
// An object the API layer rejects (ParseError or ValidationError, both naming the object and the
// field) is logged and kept out of the store, as kube-proxy leaves an invalid Service unprogrammed.
#pragma once

#include <string>
#include <string_view>

#include "controlplane/api/endpoint_slice.h"
#include "controlplane/api/node.h"
#include "controlplane/api/service.h"
#include "controlplane/kube/informer.h"

namespace sluice::kube {

// A codec that parses one kind with controlplane/api and applies its semantic validation.
template <typename T, T (*ParseFn)(const nlohmann::json&)>
struct ValidatingCodec {
  using Object = T;
  static Object Parse(const nlohmann::json& object) {
    T value = ParseFn(object);
    api::Validate(value);
    return value;
  }
};

using ServiceCodec = ValidatingCodec<api::Service, &api::ParseService>;
using EndpointSliceCodec = ValidatingCodec<api::EndpointSlice, &api::ParseEndpointSlice>;
using NodeCodec = ValidatingCodec<api::Node, &api::ParseNode>;

using ServiceInformer = Informer<ServiceCodec>;
using EndpointSliceInformer = Informer<EndpointSliceCodec>;
using NodeInformer = Informer<NodeCodec>;

inline ReflectorOptions ServiceOptions() {
  ReflectorOptions o;
  o.resource = ServicesResource();
  o.label_selector = std::string(kProxyLabelSelector);
  return o;
}

inline ReflectorOptions EndpointSliceOptions() {
  ReflectorOptions o;
  o.resource = EndpointSlicesResource();
  o.label_selector = std::string(kProxyLabelSelector);
  return o;
}

inline ReflectorOptions NodeOptions(std::string_view node_name) {
  ReflectorOptions o;
  o.resource = NodesResource();
  o.field_selector = NodeNameFieldSelector(node_name);
  return o;
}

}  // namespace sluice::kube
