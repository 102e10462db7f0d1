#include "proxy/stale_flows.h"

#include <netinet/in.h>

#include <algorithm>
#include <set>
#include <tuple>

namespace sluice::proxy {
namespace {

using state::ServicePortState;

const ServicePortState* FindPort(const state::ServiceStatePtr& svc, const ServicePortState& like) {
  if (!svc) return nullptr;
  for (const auto& p : svc->ports) {
    if (p.name == like.name && p.family == like.family) return &p;
  }
  return nullptr;
}

std::vector<IpAddress> Destinations(const ServicePortState& p) {
  std::vector<IpAddress> out = {p.cluster_ip};
  out.insert(out.end(), p.external_ips.begin(), p.external_ips.end());
  out.insert(out.end(), p.load_balancer_ips.begin(), p.load_balancer_ips.end());
  return out;
}

bool Serves(const ServicePortState& p) {
  return p.internal_verdict == state::TrafficVerdict::kForward ||
         p.external_verdict == state::TrafficVerdict::kForward;
}

class Collector {
 public:
  void Add(conntrack::FlowFilter f) {
    auto key = std::make_tuple(f.family, f.orig_dst, f.orig_dst_port, f.reply_src, f.not_dnated);
    if (seen_.insert(key).second) out_.push_back(std::move(f));
  }
  std::vector<conntrack::FlowFilter> Take() { return std::move(out_); }

 private:
  std::set<std::tuple<IpFamily, std::optional<IpAddress>, std::optional<uint16_t>,
                      std::optional<IpAddress>, bool>>
      seen_;
  std::vector<conntrack::FlowFilter> out_;
};

conntrack::FlowFilter Udp(IpFamily family) {
  conntrack::FlowFilter f;
  f.protocol = IPPROTO_UDP;
  f.family = family;
  return f;
}

}  // namespace

std::vector<conntrack::FlowFilter> StaleUdpFlowFilters(const state::NodeStateChange& change) {
  Collector out;
  for (const auto& diff : change.services) {
    // Endpoints a port stopped using (the port itself may be gone).
    if (diff.before) {
      for (const auto& old_port : diff.before->ports) {
        if (old_port.name.protocol != api::Protocol::kUdp) continue;
        const ServicePortState* new_port = FindPort(diff.after, old_port);
        std::vector<state::Endpoint> kept;
        if (new_port) kept = new_port->AllReachableEndpoints();
        for (const auto& ep : old_port.AllReachableEndpoints()) {
          const bool still_used = std::any_of(kept.begin(), kept.end(), [&](const auto& k) {
            return k.ip == ep.ip && k.port == ep.port;
          });
          if (still_used) continue;
          for (const IpAddress& dst : Destinations(old_port)) {
            auto f = Udp(old_port.family);
            f.orig_dst = dst;
            f.reply_src = ep.ip;
            out.Add(std::move(f));
          }
          if (old_port.node_port != 0) {
            auto f = Udp(old_port.family);
            f.orig_dst_port = old_port.node_port;
            f.reply_src = ep.ip;
            out.Add(std::move(f));
          }
        }
      }
    }
    // Ports that start serving.
    if (diff.after) {
      for (const auto& new_port : diff.after->ports) {
        if (new_port.name.protocol != api::Protocol::kUdp || !Serves(new_port)) continue;
        const ServicePortState* old_port = FindPort(diff.before, new_port);
        if (old_port && Serves(*old_port)) continue;
        for (const IpAddress& dst : Destinations(new_port)) {
          auto f = Udp(new_port.family);
          f.orig_dst = dst;
          f.orig_dst_port = new_port.port;
          f.not_dnated = true;
          out.Add(std::move(f));
        }
        if (new_port.node_port != 0) {
          auto f = Udp(new_port.family);
          f.orig_dst_port = new_port.node_port;
          f.not_dnated = true;
          out.Add(std::move(f));
        }
      }
    }
  }
  return out.Take();
}

}  // namespace sluice::proxy
