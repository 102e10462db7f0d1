#include "controlplane/sources/api_source.h"

namespace sluice::sources {

namespace {

constexpr char kServices[] = "services";
constexpr char kEndpointSlices[] = "endpointslices";
constexpr char kNode[] = "node";

}  // namespace

// Handlers run after the informer's store holds the new state, so the stored (shared) object is
// fetched by key rather than copying the one handed to the handler.
kube::EventHandlers<api::Service> ApiSource::ServiceHandlers() {
  kube::EventHandlers<api::Service> h;
  auto upsert = [this](const api::Service& s) {
    if (auto stored = services_.store().Get(s.metadata.Key())) cluster_.UpsertService(stored);
  };
  h.on_add = upsert;
  h.on_update = [upsert](const api::Service&, const api::Service& s) { upsert(s); };
  h.on_delete = [this](const api::Service& s) { cluster_.DeleteService(s.metadata.Key()); };
  h.on_synced = [this] { cluster_.MarkSourceSynced(kServices); };
  return h;
}

kube::EventHandlers<api::EndpointSlice> ApiSource::SliceHandlers() {
  kube::EventHandlers<api::EndpointSlice> h;
  auto upsert = [this](const api::EndpointSlice& s) {
    if (auto stored = slices_.store().Get(s.metadata.Key())) cluster_.UpsertEndpointSlice(stored);
  };
  h.on_add = upsert;
  h.on_update = [upsert](const api::EndpointSlice&, const api::EndpointSlice& s) { upsert(s); };
  h.on_delete = [this](const api::EndpointSlice& s) {
    cluster_.DeleteEndpointSlice(s.metadata.Key());
  };
  h.on_synced = [this] { cluster_.MarkSourceSynced(kEndpointSlices); };
  return h;
}

kube::EventHandlers<api::Node> ApiSource::NodeHandlers() {
  kube::EventHandlers<api::Node> h;
  auto upsert = [this](const api::Node& n) {
    if (auto stored = node_.store().Get(n.metadata.Key())) cluster_.UpsertNode(stored);
  };
  h.on_add = upsert;
  h.on_update = [upsert](const api::Node&, const api::Node& n) { upsert(n); };
  h.on_delete = [this](const api::Node& n) { cluster_.DeleteNode(n.metadata.name); };
  h.on_synced = [this] { cluster_.MarkSourceSynced(kNode); };
  return h;
}

namespace {
kube::ReflectorOptions NodesToWatch(const state::ClusterState& cluster, bool all_nodes) {
  kube::ReflectorOptions o = kube::NodeOptions(cluster.node_name());
  if (all_nodes) o.field_selector.clear();
  return o;
}
}  // namespace

ApiSource::ApiSource(const kube::ApiConnection& connection, state::ClusterState& cluster,
                     bool all_nodes)
    : cluster_(cluster),
      services_(connection, kube::ServiceOptions(), ServiceHandlers()),
      slices_(connection, kube::EndpointSliceOptions(), SliceHandlers()),
      node_(connection, NodesToWatch(cluster, all_nodes), NodeHandlers()) {
  cluster_.RegisterSource(kServices);
  cluster_.RegisterSource(kEndpointSlices);
  cluster_.RegisterSource(kNode);
}

ApiSource::~ApiSource() { Stop(); }

void ApiSource::Start() {
  services_.Start();
  slices_.Start();
  node_.Start();
}

void ApiSource::Stop() {
  services_.Stop();
  slices_.Stop();
  node_.Stop();
}

}  // namespace sluice::sources
