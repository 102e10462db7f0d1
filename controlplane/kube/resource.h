// The collections a reflector lists and watches, and the selectors kube-proxy uses on them.
#pragma once

#include <string>
#include <string_view>

namespace sluice::kube {

struct Resource {
  std::string path;  // collection path: "/api/v1/services"
  std::string kind;  // kind of one object: "Service" (the list is kind + "List")
  // "services": the last path segment, for logs
  std::string_view name() const {
    auto slash = std::string_view(path).rfind('/');
    return slash == std::string_view::npos ? std::string_view(path)
                                           : std::string_view(path).substr(slash + 1);
  }
};

inline Resource ServicesResource() { return {"/api/v1/services", "Service"}; }
inline Resource EndpointSlicesResource() {
  return {"/apis/discovery.k8s.io/v1/endpointslices", "EndpointSlice"};
}
inline Resource NodesResource() { return {"/api/v1/nodes", "Node"}; }

// kube-proxy skips headless services and services owned by another proxy; the requirements are
// sorted by key as labels.Selector.String() writes them.
inline constexpr std::string_view kProxyLabelSelector =
    "!service.kubernetes.io/headless,!service.kubernetes.io/service-proxy-name";

// kube-proxy watches only its own Node.
inline std::string NodeNameFieldSelector(std::string_view node_name) {
  return "metadata.name=" + std::string(node_name);
}

}  // namespace sluice::kube
