// The Kubernetes API source: kube-proxy's three informers (Services and EndpointSlices with its
// label selector, and this node's own Node, or every Node for the pod network) feeding ClusterState. The objects the informers store
// are shared with ClusterState, not copied. Each informer is a ClusterState source, so the first
// sync waits until all three have listed.
#pragma once

#include <string>

#include "controlplane/kube/typed_informers.h"
#include "controlplane/state/cluster_state.h"

namespace sluice::sources {

class ApiSource {
 public:
  // `all_nodes`: watch every Node (the pod network routes to each), not only this node's.
  ApiSource(const kube::ApiConnection& connection, state::ClusterState& cluster,
            bool all_nodes = false);
  ~ApiSource();
  ApiSource(const ApiSource&) = delete;
  ApiSource& operator=(const ApiSource&) = delete;

  void Start();
  void Stop();  // joins the informers; no ClusterState call after it returns

  const kube::ServiceInformer& services() const { return services_; }
  const kube::EndpointSliceInformer& endpoint_slices() const { return slices_; }
  const kube::NodeInformer& node() const { return node_; }

 private:
  kube::EventHandlers<api::Service> ServiceHandlers();
  kube::EventHandlers<api::EndpointSlice> SliceHandlers();
  kube::EventHandlers<api::Node> NodeHandlers();

  state::ClusterState& cluster_;
  kube::ServiceInformer services_;
  kube::EndpointSliceInformer slices_;
  kube::NodeInformer node_;
};

}  // namespace sluice::sources
