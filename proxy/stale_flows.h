// Which conntrack entries a sync leaves stale, as kube-proxy clears them after each sync: UDP has
// no connection to break, so a client keeps sending to the endpoint its entry was DNATed to
// until the entry expires, even after that endpoint is gone. Pure: the filters are computed
// from the change; the agent deletes matching entries (dataplane/conntrack) after the sync.
#pragma once

#include <vector>

#include "controlplane/state/node_state_tracker.h"
#include "dataplane/conntrack/conntrack.h"

namespace sluice::proxy {

// For every UDP service port of a changed Service:
// - each endpoint it no longer uses: entries to any of the port's destinations (ClusterIP,
//   ExternalIPs, LoadBalancer IPs: address + reply source; NodePort: port + reply source) that
//   were DNATed to that endpoint;
// - a port that had no endpoints and now has some: entries to its destinations that were never
//   DNATed (made while the Service had no endpoint, or before its rules); flows the new rules
//   already DNATed to an endpoint between the sync and this cleanup are left alone.
std::vector<conntrack::FlowFilter> StaleUdpFlowFilters(const state::NodeStateChange& change);

}  // namespace sluice::proxy
