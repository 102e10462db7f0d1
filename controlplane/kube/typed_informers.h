// The informers kube-proxy runs, with controlplane/api's typed values: Services and EndpointSlices
// without headless or foreign-proxy ones (kube-proxy's label selector), and this node's own Node.
// An object the API layer rejects (ParseError or ValidationError, both naming the object and the
// field) is logged and kept out of the store, as kube-proxy leaves an invalid Service unprogrammed.
// Stored objects carry only what a proxy reads (api::TrimForProxy).
#pragma once

#include <string>
#include <string_view>

#include "controlplane/api/endpoint_slice.h"
#include "controlplane/api/node.h"
#include "controlplane/api/service.h"
#include "controlplane/kube/informer.h"

namespace sluice::kube {

// A codec that parses one kind with controlplane/api, applies its semantic validation and then
// drops what a proxy never reads (client-go's informer transform), so the caches of a large
// cluster hold only what the proxy uses.
template <typename T, T (*ParseFn)(api::JsonElement), void (*TrimFn)(T&)>
struct ValidatingCodec {
  using Object = T;
  static Object Parse(api::JsonElement object) {
    T value = ParseFn(object);
    api::Validate(value);
    TrimFn(value);
    return value;
  }
};

inline void KeepNode(api::Node&) {}  // one object: nothing worth trimming

using ServiceCodec = ValidatingCodec<api::Service, &api::ParseService,
                                     static_cast<void (*)(api::Service&)>(&api::TrimForProxy)>;
using EndpointSliceCodec =
    ValidatingCodec<api::EndpointSlice, &api::ParseEndpointSlice,
                    static_cast<void (*)(api::EndpointSlice&)>(&api::TrimForProxy)>;
using NodeCodec = ValidatingCodec<api::Node, &api::ParseNode, &KeepNode>;

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
