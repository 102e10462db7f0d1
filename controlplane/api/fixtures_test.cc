// Every file under testdata/ (copied from the project's reference notes on the Kubernetes API) is
// read here, with the values a kube-proxy user would check.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <random>
#include <set>

#include "controlplane/api/object.h"
#include "controlplane/api/object_list.h"
#include "controlplane/api/status.h"
#include "controlplane/api/testing/testdata.h"
#include "controlplane/api/watch_event.h"
#include "controlplane/api/watch_stream_framer.h"

namespace sluice::api {
namespace {

using nlohmann::json;
using testing::Expect;
using testing::ReadJson;
using testing::ReadLines;
using testing::ReadTestdata;

IpAddress Ip(std::string_view s) { return IpAddress::MustParse(s); }
IpPrefix Cidr(std::string_view s) { return IpPrefix::MustParse(s); }
Timestamp At(std::string_view s) { return *ParseTimestamp(s); }

template <typename T>
T ParseFixture(std::string_view name) {
  return std::get<T>(ParseObjectText(ReadTestdata(name)));
}

// What each fixture is; a fixture missing from this table fails the test below, so a new one
// cannot go unread.
enum class Shape { kObject, kList, kStatus, kWatchEvent, kWatchStream, kRoundTrip, kNotOurs };
const std::map<std::string, Shape>& Fixtures() {
  static const std::map<std::string, Shape> m = {
      {"endpointslice-docs-basic.json", Shape::kObject},
      {"endpointslice-ipv6-nil-conditions-SYNTHETIC.json", Shape::kObject},
      {"endpointslice-terminating-and-ready.json", Shape::kObject},
      {"endpointslice-topology-hints.json", Shape::kObject},
      {"node-dualstack.json", Shape::kObject},
      {"service-clusterip-multiport.json", Shape::kObject},
      {"service-dualstack-loadbalancer-ipv6-primary.json", Shape::kObject},
      {"service-dualstack-preferdualstack.json", Shape::kObject},
      {"service-externalname.json", Shape::kObject},
      {"service-headless.json", Shape::kObject},
      {"service-loadbalancer-docs-status.json", Shape::kObject},
      {"service-loadbalancer-etp-local-ingress.json", Shape::kObject},
      {"service-nodeport-etp-local.json", Shape::kObject},
      {"list-services-chunk1.json", Shape::kList},
      {"list-services-chunk2.json", Shape::kList},
      {"status-410-expired-continue.json", Shape::kStatus},
      {"status-410-expired-too-old-resource-version.json", Shape::kStatus},
      {"status-410-expired-watch-etcd.json", Shape::kStatus},
      {"status-422-watchlist-forbidden.json", Shape::kStatus},
      {"status-504-too-large-resource-version.json", Shape::kStatus},
      {"watch-event-error-410-expired.json", Shape::kWatchEvent},
      {"watch-stream-endpointslices-watchlist.ndjson", Shape::kWatchStream},
      {"watch-stream-services.ndjson", Shape::kWatchStream},
      {"roundtrip/core.v1.Node.allfields.json", Shape::kRoundTrip},
      {"roundtrip/core.v1.Service.fuzz.json", Shape::kRoundTrip},
      {"roundtrip/discovery.k8s.io.v1.EndpointSlice.fuzz.json", Shape::kRoundTrip},
      // Client configuration, read by controlplane/kube, not API objects.
      {"exec-credential-env-KUBERNETES_EXEC_INFO.json", Shape::kNotOurs},
      {"exec-credential-response.json", Shape::kNotOurs},
      {"kubeconfig-example.json", Shape::kNotOurs},
  };
  return m;
}

TEST(Fixtures, EveryFileIsKnownAndReadsAsItsShape) {
  std::set<std::string> seen;
  const auto root = std::filesystem::path(testing::TestdataPath(""));
  for (const auto& entry : std::filesystem::recursive_directory_iterator(root)) {
    if (!entry.is_regular_file()) continue;
    std::string name = std::filesystem::relative(entry.path(), root).string();
    seen.insert(name);
    auto it = Fixtures().find(name);
    ASSERT_NE(it, Fixtures().end()) << "fixture " << name << " is not in the table";
    SCOPED_TRACE(name);
    std::string text = ReadTestdata(name);
    switch (it->second) {
      case Shape::kObject: {
        Object o = ParseObjectText(text);
        EXPECT_NO_THROW(Validate(o));
        break;
      }
      case Shape::kList: {
        auto list = ParseServiceListText(text);
        EXPECT_TRUE(list.rejected.empty());
        EXPECT_FALSE(list.items.empty());
        for (const auto& s : list.items) EXPECT_NO_THROW(Validate(s));
        break;
      }
      case Shape::kStatus:
        EXPECT_FALSE(ParseStatusText(text).success);
        break;
      case Shape::kWatchEvent:
        EXPECT_EQ(ParseWatchEventText(text).type, WatchEventType::kError);
        break;
      case Shape::kWatchStream:
        for (const auto& line : ReadLines(name)) {
          auto ev = ParseWatchEventText(line);
          if (ev.type != WatchEventType::kBookmark) {
            EXPECT_NO_THROW(Validate(ev.object()));
          }
        }
        break;
      case Shape::kRoundTrip: {
        // Round-trip fuzz data: enum strings and numbers no API server would accept. They must be
        // rejected cleanly, naming a field (the RoundTrip* tests below repair them field by field).
        auto e = Expect<ParseError>([&] { ParseObjectText(text); });
        EXPECT_FALSE(e.field().empty()) << e.what();
        break;
      }
      case Shape::kNotOurs: {
        auto e = Expect<ParseError>([&] { ParseObjectText(text); });
        EXPECT_EQ(e.field(), "kind");
        EXPECT_NE(e.reason().find("unsupported"), std::string::npos) << e.what();
        break;
      }
    }
  }
  EXPECT_EQ(seen.size(), Fixtures().size()) << "a fixture in the table is missing from testdata/";
}

// --- Services ------------------------------------------------------------------------------

TEST(Fixtures, ClusterIpMultiport) {
  auto s = ParseFixture<Service>("service-clusterip-multiport.json");
  EXPECT_EQ(s.metadata.Key(), "default/my-service");
  EXPECT_EQ(s.metadata.uid, "5b6f4c1e-9c1a-4d55-8d8a-2f0c3d1e7a10");
  EXPECT_EQ(s.metadata.resource_version, "10245");
  EXPECT_EQ(s.metadata.creation_timestamp, At("2024-05-01T10:00:00Z"));
  EXPECT_FALSE(s.metadata.being_deleted());
  EXPECT_EQ(s.spec.type, ServiceType::kClusterIp);
  EXPECT_EQ(s.spec.cluster_ips, std::vector<IpAddress>{Ip("10.0.171.239")});
  EXPECT_EQ(s.spec.ip_families, std::vector<IpFamily>{IpFamily::kV4});
  EXPECT_EQ(s.spec.ip_family_policy, IpFamilyPolicy::kSingleStack);
  EXPECT_EQ(s.spec.selector.at("app.kubernetes.io/name"), "MyApp");
  ASSERT_EQ(s.spec.ports.size(), 2u);
  EXPECT_EQ(s.spec.ports[0].name, "http");
  EXPECT_EQ(s.spec.ports[0].protocol, Protocol::kTcp);
  EXPECT_EQ(s.spec.ports[0].port, 80);
  EXPECT_EQ(s.spec.ports[0].target_port, TargetPort(uint16_t{9376}));
  EXPECT_EQ(s.spec.ports[0].node_port, 0);
  EXPECT_EQ(s.spec.ports[1].name, "https");
  EXPECT_EQ(s.spec.ports[1].port, 443);
  EXPECT_EQ(s.spec.ports[1].target_port, TargetPort(uint16_t{9377}));
  EXPECT_EQ(s.spec.session_affinity, SessionAffinity::kNone);
  EXPECT_EQ(s.spec.session_affinity_timeout_seconds, 0);
  EXPECT_EQ(s.spec.internal_traffic_policy, TrafficPolicy::kCluster);
  EXPECT_EQ(s.spec.external_traffic_policy, TrafficPolicy::kCluster);
  EXPECT_FALSE(s.spec.allocate_load_balancer_node_ports);
  EXPECT_TRUE(s.status.load_balancer_ingress.empty());
  EXPECT_FALSE(SkippedByProxy(s));
}

TEST(Fixtures, NodePortWithLocalExternalTrafficPolicy) {
  auto s = ParseFixture<Service>("service-nodeport-etp-local.json");
  EXPECT_EQ(s.spec.type, ServiceType::kNodePort);
  EXPECT_EQ(s.spec.external_traffic_policy, TrafficPolicy::kLocal);
  ASSERT_EQ(s.spec.ports.size(), 1u);
  EXPECT_EQ(s.spec.ports[0].name, "");
  EXPECT_EQ(s.spec.ports[0].node_port, 30596);
  EXPECT_EQ(s.spec.ports[0].target_port, TargetPort(uint16_t{8080}));
  EXPECT_EQ(s.spec.health_check_node_port, 0);
  EXPECT_EQ(s.metadata.Label("app"), "source-ip-app");
}

TEST(Fixtures, LoadBalancerLocalWithHealthCheckNodePortAndVipIngress) {
  auto s = ParseFixture<Service>("service-loadbalancer-etp-local-ingress.json");
  EXPECT_EQ(s.spec.type, ServiceType::kLoadBalancer);
  EXPECT_EQ(s.spec.external_traffic_policy, TrafficPolicy::kLocal);
  EXPECT_EQ(s.spec.health_check_node_port, 32122);
  EXPECT_EQ(s.spec.allocate_load_balancer_node_ports, true);
  EXPECT_EQ(s.spec.ports[0].node_port, 31829);
  ASSERT_EQ(s.status.load_balancer_ingress.size(), 1u);
  EXPECT_EQ(s.status.load_balancer_ingress[0].ip, Ip("203.0.113.140"));
  EXPECT_EQ(s.status.load_balancer_ingress[0].ip_mode, LoadBalancerIpMode::kVip);
  EXPECT_EQ(s.status.load_balancer_ingress[0].hostname, "");
}

TEST(Fixtures, LoadBalancerFromTheDocs) {
  auto s = ParseFixture<Service>("service-loadbalancer-docs-status.json");
  EXPECT_EQ(s.spec.external_traffic_policy, TrafficPolicy::kCluster);
  EXPECT_EQ(s.spec.ports[0].node_port, 31201);
  ASSERT_EQ(s.status.load_balancer_ingress.size(), 1u);
  EXPECT_EQ(s.status.load_balancer_ingress[0].ip, Ip("192.0.2.127"));
  EXPECT_EQ(s.status.load_balancer_ingress[0].ip_mode, LoadBalancerIpMode::kVip);
}

TEST(Fixtures, DualStackPreferDualStackIpv4Primary) {
  auto s = ParseFixture<Service>("service-dualstack-preferdualstack.json");
  EXPECT_EQ(s.spec.cluster_ips,
            (std::vector<IpAddress>{Ip("10.0.216.242"), Ip("2001:db8:fd00::af55")}));
  EXPECT_EQ(s.spec.ip_families, (std::vector<IpFamily>{IpFamily::kV4, IpFamily::kV6}));
  EXPECT_EQ(s.spec.ip_family_policy, IpFamilyPolicy::kPreferDualStack);
}

TEST(Fixtures, DualStackLoadBalancerIpv6Primary) {
  auto s = ParseFixture<Service>("service-dualstack-loadbalancer-ipv6-primary.json");
  EXPECT_EQ(s.spec.cluster_ips,
            (std::vector<IpAddress>{Ip("2001:db8:fd00::7ebc"), Ip("10.0.53.17")}));
  EXPECT_EQ(s.spec.ip_families, (std::vector<IpFamily>{IpFamily::kV6, IpFamily::kV4}));
  EXPECT_EQ(s.spec.ports[0].node_port, 30790);
  ASSERT_EQ(s.status.load_balancer_ingress.size(), 1u);
  EXPECT_EQ(s.status.load_balancer_ingress[0].ip, Ip("2603:1030:805::5"));
  EXPECT_TRUE(s.status.load_balancer_ingress[0].ip->family() == IpFamily::kV6);
}

TEST(Fixtures, ExternalNameIsSkippedByTheProxy) {
  auto s = ParseFixture<Service>("service-externalname.json");
  EXPECT_EQ(s.metadata.Key(), "prod/my-service");
  EXPECT_EQ(s.spec.type, ServiceType::kExternalName);
  EXPECT_EQ(s.spec.external_name, "my.database.example.com");
  EXPECT_TRUE(s.spec.cluster_ips.empty());
  EXPECT_FALSE(s.spec.ip_family_policy);  // ExternalName has no IP families
  EXPECT_TRUE(SkippedByProxy(s));
}

TEST(Fixtures, HeadlessIsSkippedByTheProxy) {
  auto s = ParseFixture<Service>("service-headless.json");
  EXPECT_TRUE(s.spec.headless);
  EXPECT_TRUE(s.spec.cluster_ips.empty());
  EXPECT_EQ(s.spec.ip_families, std::vector<IpFamily>{IpFamily::kV4});
  EXPECT_EQ(s.spec.type, ServiceType::kClusterIp);             // defaulted
  EXPECT_EQ(s.spec.session_affinity, SessionAffinity::kNone);  // defaulted
  EXPECT_EQ(s.spec.ports[0].target_port, TargetPort(uint16_t{80}));
  EXPECT_TRUE(SkippedByProxy(s));
}

// --- EndpointSlices ------------------------------------------------------------------------

TEST(Fixtures, EndpointSliceFromTheDocs) {
  auto s = ParseFixture<EndpointSlice>("endpointslice-docs-basic.json");
  EXPECT_EQ(s.metadata.Key(), "default/example-abc");
  EXPECT_EQ(s.ServiceName(), "example");
  EXPECT_EQ(s.address_type, AddressType::kIpv4);
  ASSERT_EQ(s.endpoints.size(), 1u);
  const auto& e = s.endpoints[0];
  EXPECT_EQ(e.addresses, std::vector<IpAddress>{Ip("10.1.2.3")});
  EXPECT_EQ(e.conditions.ready, true);
  EXPECT_EQ(e.conditions.serving, std::nullopt);  // absent: kube-proxy reads it as true
  EXPECT_TRUE(e.conditions.IsServing());
  EXPECT_FALSE(e.conditions.IsTerminating());
  EXPECT_EQ(e.hostname, "pod-1");
  EXPECT_EQ(e.node_name, "node-1");
  EXPECT_EQ(e.zone, "us-west2-a");
  EXPECT_FALSE(e.hints);
  ASSERT_EQ(s.ports.size(), 1u);
  EXPECT_EQ(s.ports[0].name, "http");
  EXPECT_EQ(s.ports[0].protocol, Protocol::kTcp);
  EXPECT_EQ(s.ports[0].port, 80);
}

TEST(Fixtures, EndpointSliceTerminatingButServingNextToReady) {
  auto s = ParseFixture<EndpointSlice>("endpointslice-terminating-and-ready.json");
  EXPECT_EQ(s.ServiceName(), "nginx-service");
  EXPECT_EQ(s.metadata.generation, 7);
  EXPECT_EQ(s.metadata.uid, "3e2d1c0b-a9f8-4e7d-8c6b-5a4f3e2d1c17");
  ASSERT_EQ(s.endpoints.size(), 2u);
  const auto& going = s.endpoints[0];
  EXPECT_EQ(going.addresses[0], Ip("10.12.1.201"));
  EXPECT_FALSE(going.conditions.IsReady());
  EXPECT_TRUE(going.conditions.IsServing());
  EXPECT_TRUE(going.conditions.IsTerminating());
  ASSERT_TRUE(going.target_ref);
  EXPECT_EQ(going.target_ref->kind, "Pod");
  EXPECT_EQ(going.target_ref->name, "nginx-deployment-7768647bf9-b4b9s");
  EXPECT_EQ(going.zone, "us-central1-c");
  const auto& ready = s.endpoints[1];
  EXPECT_TRUE(ready.conditions.IsReady());
  EXPECT_FALSE(ready.conditions.IsTerminating());
  ASSERT_EQ(s.ports.size(), 1u);
  EXPECT_EQ(s.ports[0].name, std::optional<std::string>(""));  // the unnamed service port
  EXPECT_EQ(s.ports[0].port, 80);
}

TEST(Fixtures, EndpointSliceZoneHints) {
  auto s = ParseFixture<EndpointSlice>("endpointslice-topology-hints.json");
  ASSERT_EQ(s.endpoints.size(), 1u);
  ASSERT_TRUE(s.endpoints[0].hints);
  EXPECT_EQ(s.endpoints[0].hints->for_zones, std::vector<std::string>{"zone-a"});
  EXPECT_TRUE(s.endpoints[0].hints->for_nodes.empty());
  EXPECT_FALSE(s.endpoints[0].node_name);
}

TEST(Fixtures, EndpointSliceIpv6NilConditionsAndNodeHints) {
  auto s = ParseFixture<EndpointSlice>("endpointslice-ipv6-nil-conditions-SYNTHETIC.json");
  EXPECT_EQ(s.address_type, AddressType::kIpv6);
  EXPECT_EQ(s.ServiceName(), "my-service");
  ASSERT_EQ(s.endpoints.size(), 3u);
  // No conditions at all: nil, which means ready and serving, not terminating.
  const auto& nil = s.endpoints[0];
  EXPECT_EQ(nil.addresses[0], Ip("2001:db8:1::a"));
  EXPECT_FALSE(nil.conditions.ready);
  EXPECT_FALSE(nil.conditions.serving);
  EXPECT_FALSE(nil.conditions.terminating);
  EXPECT_TRUE(nil.conditions.IsReady());
  EXPECT_TRUE(nil.conditions.IsServing());
  EXPECT_FALSE(nil.conditions.IsTerminating());
  // Explicit false is not nil.
  const auto& down = s.endpoints[1];
  EXPECT_EQ(down.conditions.ready, false);
  EXPECT_FALSE(down.conditions.IsReady());
  EXPECT_FALSE(down.conditions.IsServing());
  const auto& hinted = s.endpoints[2];
  ASSERT_TRUE(hinted.hints);
  EXPECT_EQ(hinted.hints->for_zones, std::vector<std::string>{"zone-a"});
  EXPECT_EQ(hinted.hints->for_nodes, std::vector<std::string>{"k8s-linuxpool1-34450317-0"});
  EXPECT_EQ(hinted.node_name, "k8s-linuxpool1-34450317-0");
  EXPECT_EQ(s.ports[0].name, std::optional<std::string>(""));
  EXPECT_EQ(s.ports[0].port, 9376);
}

// --- Node ----------------------------------------------------------------------------------

TEST(Fixtures, DualStackNode) {
  auto n = ParseFixture<Node>("node-dualstack.json");
  EXPECT_EQ(n.metadata.Key(), "k8s-linuxpool1-34450317-0");
  EXPECT_EQ(n.pod_cidrs, (std::vector<IpPrefix>{Cidr("10.244.1.0/24"), Cidr("a00:100::/24")}));
  EXPECT_FALSE(n.unschedulable);
  ASSERT_EQ(n.addresses.size(), 3u);
  EXPECT_EQ(n.addresses[0].type, NodeAddressType::kHostname);
  EXPECT_EQ(n.addresses[0].address, "k8s-linuxpool1-34450317-0");
  EXPECT_FALSE(n.addresses[0].ip);
  EXPECT_EQ(n.addresses[1].type, NodeAddressType::kInternalIp);
  EXPECT_EQ(n.addresses[1].ip, Ip("10.240.0.5"));
  EXPECT_EQ(n.addresses[2].ip, Ip("2001:1234:5678:9abc::5"));
  EXPECT_EQ(n.NodeIps(), (std::vector<IpAddress>{Ip("10.240.0.5"), Ip("2001:1234:5678:9abc::5")}));
  EXPECT_EQ(n.ready, ConditionStatus::kTrue);
  EXPECT_EQ(n.Zone(), "zone-a");
  EXPECT_EQ(n.metadata.creation_timestamp, At("2019-06-05T11:40:00Z"));
}

// --- Lists ---------------------------------------------------------------------------------

TEST(Fixtures, ServiceListChunksCarryContinueAndOneResourceVersion) {
  auto first = ParseServiceListText(ReadTestdata("list-services-chunk1.json"));
  EXPECT_EQ(first.resource_version, "10420");
  EXPECT_EQ(first.continue_token, "ENCODED_CONTINUE_TOKEN");
  EXPECT_EQ(first.remaining_item_count, 1);
  ASSERT_EQ(first.items.size(), 2u);  // items carry no kind/apiVersion
  EXPECT_EQ(first.items[0].metadata.Key(), "default/my-service");
  EXPECT_EQ(first.items[1].metadata.Key(), "default/loadbalancer");
  EXPECT_EQ(first.items[1].status.load_balancer_ingress[0].ip, Ip("203.0.113.140"));

  auto last = ParseServiceListText(ReadTestdata("list-services-chunk2.json"));
  EXPECT_EQ(last.resource_version, first.resource_version);
  EXPECT_EQ(last.continue_token, "");  // omitted on the last page
  EXPECT_FALSE(last.remaining_item_count);
  ASSERT_EQ(last.items.size(), 1u);
  EXPECT_EQ(last.items[0].metadata.name, "nodeport");
}

// --- Status --------------------------------------------------------------------------------

TEST(Fixtures, ExpiredContinueCarriesTheInconsistentToken) {
  auto s = ParseStatusText(ReadTestdata("status-410-expired-continue.json"));
  EXPECT_EQ(s.code, 410);
  EXPECT_EQ(s.reason, "Expired");
  EXPECT_TRUE(s.IsExpired());
  EXPECT_EQ(s.continue_token, "ENCODED_INCONSISTENT_CONTINUE_TOKEN");
  EXPECT_EQ(s.message.rfind("The provided continue parameter is too old", 0), 0u);
}

TEST(Fixtures, ExpiredResourceVersion) {
  for (const char* name :
       {"status-410-expired-too-old-resource-version.json", "status-410-expired-watch-etcd.json"}) {
    auto s = ParseStatusText(ReadTestdata(name));
    EXPECT_TRUE(s.IsExpired()) << name;
    EXPECT_FALSE(s.IsTooLargeResourceVersion()) << name;
    EXPECT_TRUE(s.continue_token.empty()) << name;
  }
  EXPECT_EQ(
      ParseStatusText(ReadTestdata("status-410-expired-too-old-resource-version.json")).message,
      "too old resource version: 657887 (680402)");
}

TEST(Fixtures, WatchListForbiddenNamesTheField) {
  auto s = ParseStatusText(ReadTestdata("status-422-watchlist-forbidden.json"));
  EXPECT_EQ(s.code, 422);
  EXPECT_EQ(s.reason, "Invalid");
  EXPECT_FALSE(s.IsExpired());
  ASSERT_EQ(s.causes.size(), 1u);
  EXPECT_EQ(s.causes[0].reason, "FieldValueForbidden");
  EXPECT_EQ(s.causes[0].field, "sendInitialEvents");
}

TEST(Fixtures, TooLargeResourceVersionSaysWhenToRetry) {
  auto s = ParseStatusText(ReadTestdata("status-504-too-large-resource-version.json"));
  EXPECT_EQ(s.code, 504);
  EXPECT_EQ(s.reason, "Timeout");
  EXPECT_TRUE(s.IsTooLargeResourceVersion());
  EXPECT_FALSE(s.IsExpired());
  EXPECT_EQ(s.retry_after_seconds, 1);
}

// --- Watch ---------------------------------------------------------------------------------

TEST(Fixtures, WatchErrorEventIs410Expired) {
  auto ev = ParseWatchEventText(ReadTestdata("watch-event-error-410-expired.json"), Kind::kService);
  EXPECT_EQ(ev.type, WatchEventType::kError);
  EXPECT_TRUE(ev.status().IsExpired());
  EXPECT_EQ(ev.status().Summary(), "410 Expired: too old resource version: 657887 (680402)");
}

TEST(Fixtures, ServiceWatchStream) {
  std::vector<WatchEvent> events;
  for (const auto& line : ReadLines("watch-stream-services.ndjson")) {
    events.push_back(ParseWatchEventText(line, Kind::kService));
  }
  ASSERT_EQ(events.size(), 5u);
  EXPECT_EQ(events[0].type, WatchEventType::kAdded);
  EXPECT_EQ(MetaOf(events[0].object()).Key(), "default/nodeport");
  EXPECT_EQ(events[1].type, WatchEventType::kAdded);
  EXPECT_EQ(MetaOf(events[1].object()).Key(), "default/loadbalancer");
  // MODIFIED switches affinity on with an explicit timeout.
  EXPECT_EQ(events[2].type, WatchEventType::kModified);
  const auto& modified = std::get<Service>(events[2].object());
  EXPECT_EQ(modified.metadata.resource_version, "10390");
  EXPECT_EQ(modified.spec.session_affinity, SessionAffinity::kClientIp);
  EXPECT_EQ(modified.spec.session_affinity_timeout_seconds, 10800);
  // A bookmark: an empty Service of which only the resourceVersion counts.
  EXPECT_EQ(events[3].type, WatchEventType::kBookmark);
  EXPECT_EQ(events[3].bookmark().resource_version, "10402");
  EXPECT_FALSE(events[3].bookmark().initial_events_end);
  // DELETED carries the last state with the deletion's resourceVersion.
  EXPECT_EQ(events[4].type, WatchEventType::kDeleted);
  EXPECT_EQ(MetaOf(events[4].object()).Key(), "default/loadbalancer");
  EXPECT_EQ(MetaOf(events[4].object()).resource_version, "10405");
}

TEST(Fixtures, EndpointSliceWatchListEndsInitialEventsWithAnAnnotatedBookmark) {
  std::vector<WatchEvent> events;
  for (const auto& line : ReadLines("watch-stream-endpointslices-watchlist.ndjson")) {
    events.push_back(ParseWatchEventText(line, Kind::kEndpointSlice));
  }
  ASSERT_EQ(events.size(), 5u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(events[i].type, WatchEventType::kAdded);
  EXPECT_EQ(std::get<EndpointSlice>(events[2].object()).endpoints.size(), 2u);
  ASSERT_EQ(events[3].type, WatchEventType::kBookmark);
  EXPECT_EQ(events[3].bookmark().resource_version, "10950");
  EXPECT_TRUE(events[3].bookmark().initial_events_end);
  EXPECT_EQ(events[4].type, WatchEventType::kModified);
  const auto& slice = std::get<EndpointSlice>(events[4].object());
  EXPECT_EQ(slice.metadata.generation, 8);
  ASSERT_EQ(slice.endpoints.size(), 1u);
  EXPECT_EQ(slice.endpoints[0].addresses[0], Ip("10.12.1.202"));
}

TEST(Fixtures, WatchStreamsSurviveArbitraryChunking) {
  std::mt19937 rng(7);
  for (const char* name :
       {"watch-stream-services.ndjson", "watch-stream-endpointslices-watchlist.ndjson"}) {
    const std::string body = ReadTestdata(name);
    const auto lines = ReadLines(name);
    for (int round = 0; round < 50; ++round) {
      WatchStreamFramer framer;
      std::vector<std::string> out;
      for (size_t pos = 0; pos < body.size();) {
        size_t n = std::uniform_int_distribution<size_t>(1, 300)(rng);
        framer.Feed(std::string_view(body).substr(pos, n));
        pos += n;
        while (auto text = framer.Next()) out.push_back(*text);
      }
      EXPECT_TRUE(framer.idle());
      ASSERT_EQ(out, lines) << name;
    }
  }
}

// --- Round-trip fuzz data ------------------------------------------------------------------
// kubernetes' round-trip test data fills every field with values that only exercise the
// serializer. Each is rejected with the field named; once a field is repaired the next one is
// reported, until the object parses and everything else (an RV above int64, null timestamps,
// unknown fields, unicode) was read as the API server would send it.

struct Repair {
  std::string pointer;  // JSON pointer of the field to repair
  std::string field;    // the field the error must name
  json value;           // the repair
};

template <typename T>
T RepairUntilParsed(json j, const std::vector<Repair>& repairs, std::string_view kind,
                    std::string_view object) {
  for (const auto& r : repairs) {
    auto e = Expect<ParseError>([&] { ParseObject(j); });
    EXPECT_EQ(e.field(), r.field) << e.what();
    EXPECT_EQ(e.kind(), kind);
    EXPECT_EQ(e.object(), object);
    j[json::json_pointer(r.pointer)] = r.value;
  }
  return std::get<T>(ParseObject(j));
}

TEST(Fixtures, RoundTripServiceRepairedFieldByField) {
  auto s = RepairUntilParsed<Service>(
      ReadJson("roundtrip/core.v1.Service.fuzz.json"),
      {
          {"/spec/type", "spec.type", "LoadBalancer"},
          {"/spec/clusterIPs/0", "spec.clusterIPs[0]", "10.0.0.25"},
          {"/spec/clusterIP", "spec.clusterIP", "10.0.0.25"},
          {"/spec/ipFamilies/0", "spec.ipFamilies[0]", "IPv4"},
          {"/spec/ipFamilyPolicy", "spec.ipFamilyPolicy", "SingleStack"},
          {"/spec/ports/0/protocol", "spec.ports[0].protocol", "UDP"},
          {"/spec/ports/0/port", "spec.ports[0].port", 53},
          {"/spec/ports/0/nodePort", "spec.ports[0].nodePort", 30053},
          {"/spec/sessionAffinity", "spec.sessionAffinity", "ClientIP"},
          {"/spec/sessionAffinityConfig/clientIP/timeoutSeconds",
           "spec.sessionAffinityConfig.clientIP.timeoutSeconds", 600},
          {"/spec/externalIPs/0", "spec.externalIPs[0]", "203.0.113.26"},
          {"/spec/loadBalancerIP", "spec.loadBalancerIP", "203.0.113.27"},
          {"/spec/loadBalancerSourceRanges/0", "spec.loadBalancerSourceRanges[0]",
           "198.51.100.0/24"},
          {"/spec/externalTrafficPolicy", "spec.externalTrafficPolicy", "Local"},
          {"/spec/healthCheckNodePort", "spec.healthCheckNodePort", 32000},
          {"/status/loadBalancer/ingress/0/ip", "status.loadBalancer.ingress[0].ip",
           "203.0.113.32"},
          {"/status/loadBalancer/ingress/0/ports/0/port",
           "status.loadBalancer.ingress[0].ports[0].port", 53},
          {"/status/loadBalancer/ingress/0/ports/0/protocol",
           "status.loadBalancer.ingress[0].ports[0].protocol", "UDP"},
      },
      "Service", "4/2");
  EXPECT_EQ(s.metadata.resource_version, "11042405498087606203");  // above int64: kept as text
  EXPECT_EQ(s.metadata.generation, 8071137005907523419);
  EXPECT_FALSE(s.metadata.creation_timestamp);  // null
  EXPECT_EQ(s.metadata.labels, (StringMap{{"7", "8"}}));
  EXPECT_EQ(s.metadata.annotations, (StringMap{{"9", "10"}}));
  EXPECT_EQ(s.spec.ports[0].name, "19");
  EXPECT_EQ(s.spec.ports[0].app_protocol, "20");
  EXPECT_EQ(s.spec.ports[0].target_port, TargetPort(std::string("21")));  // a named port
  EXPECT_EQ(s.spec.session_affinity_timeout_seconds, 600);
  EXPECT_EQ(s.spec.load_balancer_class, "31");
  EXPECT_EQ(s.spec.internal_traffic_policy, TrafficPolicy::kCluster);  // "" reads as the default
  EXPECT_TRUE(s.spec.publish_not_ready_addresses);
  EXPECT_EQ(s.spec.external_name, "29");
  EXPECT_EQ(s.status.load_balancer_ingress[0].hostname, "33");
  EXPECT_EQ(s.status.load_balancer_ingress[0].ip_mode, LoadBalancerIpMode::kVip);
  EXPECT_EQ(s.status.load_balancer_ingress[0].ports[0].error, "34");
  EXPECT_NO_THROW(Validate(s));
}

TEST(Fixtures, RoundTripEndpointSliceRepairedFieldByField) {
  auto s = RepairUntilParsed<EndpointSlice>(
      ReadJson("roundtrip/discovery.k8s.io.v1.EndpointSlice.fuzz.json"),
      {
          {"/addressType", "addressType", "IPv4"},
          {"/endpoints/0/addresses/0", "endpoints[0].addresses[0]", "10.0.0.20"},
          {"/ports/0/protocol", "ports[0].protocol", "SCTP"},
          {"/ports/0/port", "ports[0].port", 5060},
      },
      "EndpointSlice", "4/2");
  const auto& e = s.endpoints[0];
  EXPECT_EQ(e.conditions.ready, false);
  EXPECT_EQ(e.conditions.serving, false);
  EXPECT_EQ(e.conditions.terminating, false);
  EXPECT_EQ(e.hostname, "21");
  EXPECT_EQ(e.target_ref->uid, "ɑ");
  EXPECT_EQ(e.node_name, "30");
  EXPECT_EQ(e.zone, "31");
  EXPECT_EQ(e.hints->for_zones, std::vector<std::string>{"32"});
  EXPECT_EQ(s.ports[0].name, "33");
  EXPECT_EQ(s.ports[0].app_protocol, "34");
  // Parsed, but no proxy can use it: it names no Service.
  auto v = Expect<ValidationError>([&] { Validate(s); });
  EXPECT_EQ(v.field(), "metadata.labels[kubernetes.io/service-name]");
}

TEST(Fixtures, RoundTripNodeRepairedFieldByField) {
  auto n = RepairUntilParsed<Node>(ReadJson("roundtrip/core.v1.Node.allfields.json"),
                                   {
                                       {"/spec/podCIDRs/0", "spec.podCIDRs[0]", "10.244.3.0/24"},
                                       {"/spec/podCIDR", "spec.podCIDR", "10.244.3.0/24"},
                                   },
                                   "Node", "namespaceValue/nameValue");
  EXPECT_TRUE(n.unschedulable);
  EXPECT_EQ(n.metadata.generation, 7);
  EXPECT_TRUE(n.metadata.being_deleted());
  EXPECT_EQ(n.metadata.deletion_timestamp, At("2009-01-01T01:01:01Z"));
  ASSERT_EQ(n.addresses.size(), 1u);
  EXPECT_EQ(n.addresses[0].type, NodeAddressType::kOther);  // open-ended: kept, not rejected
  EXPECT_EQ(n.addresses[0].type_name, "typeValue");
  EXPECT_EQ(n.addresses[0].address, "addressValue");
  EXPECT_FALSE(n.ready);  // its only condition is not "Ready"
  EXPECT_NO_THROW(Validate(n));
}

}  // namespace
}  // namespace sluice::api
