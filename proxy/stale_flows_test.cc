#include "proxy/stale_flows.h"

#include <gtest/gtest.h>

namespace sluice::proxy {
namespace {

using state::Endpoint;
using state::ServicePortState;
using state::ServiceState;

Endpoint Ep(std::string_view ip, uint16_t port) {
  Endpoint e;
  e.ip = IpAddress::MustParse(ip);
  e.port = port;
  return e;
}

state::ServiceStatePtr Dns(std::vector<Endpoint> eps, api::Protocol proto = api::Protocol::kUdp,
                           uint16_t node_port = 0) {
  ServicePortState p;
  p.name = {"kube-system", "dns", "dns", proto};
  p.cluster_ip = IpAddress::MustParse("10.96.0.10");
  p.port = 53;
  p.node_port = node_port;
  p.external_ips = {IpAddress::MustParse("192.0.2.7")};
  p.cluster_endpoints = std::move(eps);
  p.has_any_endpoints = !p.cluster_endpoints.empty();
  p.internal_verdict =
      p.has_any_endpoints ? state::TrafficVerdict::kForward : state::TrafficVerdict::kReject;
  p.external_verdict = p.internal_verdict;
  return std::make_shared<const ServiceState>(ServiceState{"kube-system/dns", {p}});
}

std::vector<std::string> Text(const std::vector<conntrack::FlowFilter>& filters) {
  std::vector<std::string> out;
  for (const auto& f : filters) out.push_back(f.ToString());
  return out;
}

state::NodeStateChange One(state::ServiceStatePtr before, state::ServiceStatePtr after) {
  state::NodeStateChange c;
  c.services.push_back(state::ServiceDiff{"kube-system/dns", before, after});
  return c;
}

TEST(StaleUdpFlows, AnEndpointGoneClearsWhatWasDnatedToIt) {
  auto before = Dns({Ep("10.244.1.2", 5353), Ep("10.244.1.3", 5353)}, api::Protocol::kUdp, 30053);
  auto after = Dns({Ep("10.244.1.3", 5353)}, api::Protocol::kUdp, 30053);
  EXPECT_EQ(Text(StaleUdpFlowFilters(One(before, after))),
            (std::vector<std::string>{
                "udp ipv4 orig_dst=10.96.0.10 reply_src=10.244.1.2",
                "udp ipv4 orig_dst=192.0.2.7 reply_src=10.244.1.2",
                "udp ipv4 orig_dst_port=30053 reply_src=10.244.1.2",
            }));
}

TEST(StaleUdpFlows, FirstEndpointsClearEntriesMadeWithoutAnEndpoint) {
  EXPECT_EQ(Text(StaleUdpFlowFilters(One(Dns({}), Dns({Ep("10.244.1.3", 5353)})))),
            (std::vector<std::string>{
                "udp ipv4 orig_dst=10.96.0.10 orig_dst_port=53 not_dnated",
                "udp ipv4 orig_dst=192.0.2.7 orig_dst_port=53 not_dnated",
            }));
}

TEST(StaleUdpFlows, ServiceDeletedClearsEveryEndpoint) {
  auto before = Dns({Ep("10.244.1.2", 5353)});
  EXPECT_EQ(StaleUdpFlowFilters(One(before, nullptr)).size(), 2u);
}

TEST(StaleUdpFlows, NothingForTcpOrUnchangedEndpoints) {
  EXPECT_TRUE(StaleUdpFlowFilters(One(Dns({Ep("10.244.1.2", 53)}, api::Protocol::kTcp),
                                      Dns({}, api::Protocol::kTcp)))
                  .empty());
  EXPECT_TRUE(StaleUdpFlowFilters(One(Dns({Ep("10.244.1.2", 53)}), Dns({Ep("10.244.1.2", 53)})))
                  .empty());
}

}  // namespace
}  // namespace sluice::proxy
