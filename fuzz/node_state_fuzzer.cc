// libFuzzer target: the object-to-model conversion. Each input line is a Kubernetes object (JSON:
// Service, EndpointSlice or Node) to add or replace, or "-<key>" to delete the Service and
// EndpointSlice with that key; the objects that parse and validate go into a ClusterState for
// "node-a", and the NodeStateTracker follows after every few lines. Whatever the input: no crash,
// leak or undefined behaviour, the incremental NodeState always equals a full recomputation, and
// every service port satisfies the model's invariants (sorted, unique endpoints; verdicts that
// match the endpoint lists). Each Service is also rendered into the nftables layout and encoded as
// netlink messages (no kernel): names fit the kernel's limits, elements point at chains that
// exist, and encoding never fails.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "controlplane/api/object.h"
#include "controlplane/api/object_error.h"
#include "controlplane/state/cluster_state.h"
#include "controlplane/state/node_state_tracker.h"
#include "dataplane/nft/batch.h"
#include "proxy/backends/nftables/encode.h"
#include "proxy/backends/nftables/layout.h"

namespace api = sluice::api;
namespace state = sluice::state;

namespace {

void CheckPort(const state::ServicePortState& p) {
  auto sorted_unique = [](const std::vector<state::Endpoint>& eps) {
    for (size_t i = 1; i < eps.size(); ++i) {
      if (!(std::tie(eps[i - 1].ip, eps[i - 1].port) < std::tie(eps[i].ip, eps[i].port))) {
        return false;
      }
    }
    return true;
  };
  if (!sorted_unique(p.cluster_endpoints) || !sorted_unique(p.local_endpoints)) __builtin_trap();
  for (const auto& ep : p.local_endpoints) {
    if (!ep.local || ep.ip.family() != p.family) __builtin_trap();
  }
  for (const auto& ep : p.cluster_endpoints) {
    if (ep.ip.family() != p.family || !(ep.ready || (ep.serving && ep.terminating))) {
      __builtin_trap();
    }
  }
  if (p.cluster_ip.family() != p.family) __builtin_trap();
  auto verdict = [&](const std::vector<state::Endpoint>& eps) {
    if (!p.has_any_endpoints) return state::TrafficVerdict::kReject;
    return eps.empty() ? state::TrafficVerdict::kDrop : state::TrafficVerdict::kForward;
  };
  if (p.internal_verdict != verdict(p.internal_endpoints())) __builtin_trap();
  if (p.external_verdict != verdict(p.external_endpoints())) __builtin_trap();
  if (p.ToString().empty()) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  state::ClusterState cluster("node-a");
  state::NodeStateTracker tracker({.node_name = "node-a"});
  size_t line_no = 0;
  while (!input.empty()) {
    size_t nl = input.find('\n');
    std::string_view line = input.substr(0, nl);
    input.remove_prefix(nl == std::string_view::npos ? input.size() : nl + 1);
    ++line_no;
    if (!line.empty() && line[0] == '-') {
      std::string key(line.substr(1));
      cluster.DeleteService(key);
      cluster.DeleteEndpointSlice(key);
      cluster.DeleteNode(key);
    } else if (!line.empty()) {
      try {
        api::Object obj = api::ParseObjectText(line);
        api::Validate(obj);
        if (auto* s = std::get_if<api::Service>(&obj)) {
          cluster.UpsertService(std::make_shared<const api::Service>(std::move(*s)));
        } else if (auto* e = std::get_if<api::EndpointSlice>(&obj)) {
          cluster.UpsertEndpointSlice(std::make_shared<const api::EndpointSlice>(std::move(*e)));
        } else if (auto* n = std::get_if<api::Node>(&obj)) {
          cluster.UpsertNode(std::make_shared<const api::Node>(std::move(*n)));
        }
      } catch (const api::ObjectError& e) {
        if (e.what()[0] == '\0') __builtin_trap();
      }
    }
    if (line_no % 3 == 0) tracker.Update(cluster, line_no % 9 == 0);
  }
  tracker.Update(cluster);
  if (!(tracker.state() == state::ComputeNodeState(cluster, tracker.options()))) __builtin_trap();
  namespace nftables = sluice::proxy::nftables;
  nftables::LayoutOptions layout;
  layout.cluster_cidrs = {sluice::IpPrefix::MustParse("10.244.0.0/16")};
  for (const auto& [key, svc] : tracker.state().services) {
    for (const auto& p : svc->ports) CheckPort(p);
    const nftables::ServiceObjects objects = nftables::RenderService(*svc, layout);
    sluice::nft::Batch batch;
    for (const auto& c : objects.chains) {
      // NFT_NAME_MAXLEN: 256 bytes with the terminating NUL.
      if (c.name.size() > 255) __builtin_trap();
      nftables::AddChain(batch, c);
    }
    for (const auto& a : objects.affinity_sets) {
      if (a.name.size() > 255) __builtin_trap();
      nftables::AddAffinitySet(batch, a);
    }
    for (const auto& c : objects.chains) {
      for (const auto& r : c.rules) nftables::AppendRule(batch, c.name, r);
    }
    nftables::ElementWriter elements;
    for (const auto& e : objects.elements) {
      if (!e.verdict.drop && e.verdict.chain != "reject-chain" &&
          std::none_of(objects.chains.begin(), objects.chains.end(),
                       [&](const auto& c) { return c.name == e.verdict.chain; })) {
        __builtin_trap();
      }
      elements.Add(e);
    }
    elements.AppendAdds(batch);
  }
  return 0;
}
