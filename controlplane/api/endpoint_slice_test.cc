#include "controlplane/api/endpoint_slice.h"

#include <gtest/gtest.h>

#include "controlplane/api/object_error.h"
#include "controlplane/api/testing/testdata.h"

namespace sluice::api {
namespace {

using nlohmann::json;
using testing::Expect;

json Slice() {
  return json::parse(R"({
    "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
    "metadata": {"name": "web-abc", "namespace": "default",
                 "labels": {"kubernetes.io/service-name": "web"}},
    "addressType": "IPv4",
    "endpoints": [{"addresses": ["10.244.1.5"], "nodeName": "node-a"}],
    "ports": [{"name": "http", "port": 8080}]
  })");
}

std::string ErrorOf(const json& j) {
  return Expect<ParseError>([&] { ParseEndpointSlice(j); }).what();
}

std::string ValidationOf(const json& j) {
  auto s = ParseEndpointSlice(j);
  return Expect<ValidationError>([&] { Validate(s); }).what();
}

TEST(ParseEndpointSlice, DefaultsAndNils) {
  auto s = ParseEndpointSlice(Slice());
  EXPECT_EQ(s.ServiceName(), "web");
  EXPECT_EQ(s.ports[0].protocol, Protocol::kTcp);
  EXPECT_FALSE(s.endpoints[0].conditions.ready);
  EXPECT_TRUE(s.endpoints[0].conditions.IsReady());
  EXPECT_FALSE(s.endpoints[0].hints);
  EXPECT_FALSE(s.endpoints[0].target_ref);
  EXPECT_NO_THROW(Validate(s));
}

TEST(ParseEndpointSlice, PortNameNilIsNotEmptyAndPortZeroIsNil) {
  auto j = Slice();
  j["ports"] =
      json::parse(R"([{"port": 80}, {"name": "", "port": 0}, {"name": "x", "port": null}])");
  auto s = ParseEndpointSlice(j);
  EXPECT_FALSE(s.ports[0].name);
  EXPECT_EQ(s.ports[0].port, 80);
  EXPECT_EQ(s.ports[1].name, std::optional<std::string>(""));
  EXPECT_FALSE(s.ports[1].port);
  EXPECT_FALSE(s.ports[2].port);
}

TEST(ParseEndpointSlice, NullListsAsInABookmark) {
  auto j = Slice();
  j["endpoints"] = nullptr;
  j["ports"] = nullptr;
  auto s = ParseEndpointSlice(j);
  EXPECT_TRUE(s.endpoints.empty());
  EXPECT_TRUE(s.ports.empty());
}

TEST(ParseEndpointSlice, FqdnSlicesKeepNames) {
  auto j = Slice();
  j["addressType"] = "FQDN";
  j["endpoints"][0]["addresses"] = {"db.example.com"};
  auto s = ParseEndpointSlice(j);
  EXPECT_EQ(s.address_type, AddressType::kFqdn);
  EXPECT_TRUE(s.endpoints[0].addresses.empty());
  EXPECT_EQ(s.endpoints[0].fqdn_addresses, std::vector<std::string>{"db.example.com"});
  EXPECT_NO_THROW(Validate(s));
}

TEST(ParseEndpointSlice, Rejections) {
  auto j = Slice();
  j["endpoints"][0]["addresses"] = {"10.244.1.5", "10.244.1"};
  EXPECT_EQ(
      ErrorOf(j),
      "EndpointSlice default/web-abc: endpoints[0].addresses[1]: invalid IP address \"10.244.1\"");
  j = Slice();
  j["endpoints"][0]["conditions"] = {{"ready", "true"}};
  EXPECT_EQ(ErrorOf(j),
            "EndpointSlice default/web-abc: endpoints[0].conditions.ready: expected a boolean, got "
            "string \"true\"");
  j = Slice();
  j["ports"][0]["port"] = 65536;
  EXPECT_EQ(ErrorOf(j),
            "EndpointSlice default/web-abc: ports[0].port: 65536 out of range 0..65535");
  j = Slice();
  j["ports"][0]["protocol"] = "ICMP";
  EXPECT_EQ(
      ErrorOf(j),
      "EndpointSlice default/web-abc: ports[0].protocol: unknown value \"ICMP\" (want TCP, UDP "
      "or SCTP)");
  j = Slice();
  j.erase("addressType");
  EXPECT_EQ(ErrorOf(j), "EndpointSlice default/web-abc: addressType: required");
  j = Slice();
  j["apiVersion"] = "discovery.k8s.io/v1beta1";
  EXPECT_EQ(
      ErrorOf(j),
      "EndpointSlice default/web-abc: apiVersion: unsupported \"discovery.k8s.io/v1beta1\" for "
      "EndpointSlice (want discovery.k8s.io/v1)");
  j = Slice();
  j["endpoints"][0]["hints"] = {{"forZones", {"zone-a"}}};
  EXPECT_EQ(
      ErrorOf(j),
      "EndpointSlice default/web-abc: endpoints[0].hints.forZones[0]: expected an object, got "
      "string \"zone-a\"");
}

TEST(ValidateEndpointSlice, Rejections) {
  auto j = Slice();
  j["metadata"]["labels"].erase("kubernetes.io/service-name");
  EXPECT_EQ(ValidationOf(j),
            "EndpointSlice default/web-abc: metadata.labels[kubernetes.io/service-name]: required: "
            "the slice belongs to no Service");
  j = Slice();
  j["endpoints"][0]["addresses"] = {"fd00::5"};
  EXPECT_EQ(ValidationOf(j),
            "EndpointSlice default/web-abc: endpoints[0].addresses[0]: fd00::5 in an IPv4 slice");
  j = Slice();
  j["endpoints"][0]["addresses"] = json::array();
  EXPECT_EQ(ValidationOf(j),
            "EndpointSlice default/web-abc: endpoints[0].addresses: 0 addresses, want 1..100");
  j = Slice();
  j["ports"].push_back({{"name", "http"}, {"port", 9090}});
  EXPECT_EQ(ValidationOf(j), "EndpointSlice default/web-abc: ports[1].name: duplicate \"http\"");
}

}  // namespace
}  // namespace sluice::api

namespace sluice::api {
namespace {

TEST(TrimForProxy, KeepsOnlyWhatAProxyReads) {
  EndpointSlice s =
      ParseEndpointSlice(testing::ReadJson("endpointslice-terminating-and-ready.json"));
  s.metadata.annotations["endpoints.kubernetes.io/last-change-trigger-time"] =
      "2024-05-01T10:00:00Z";
  s.metadata.annotations["other"] = "x";
  ASSERT_TRUE(s.endpoints[0].target_ref);
  EndpointSlice before = s;
  TrimForProxy(s);
  EXPECT_EQ(s.metadata.labels, (StringMap{{"kubernetes.io/service-name", "nginx-service"}}));
  EXPECT_EQ(
      s.metadata.annotations,
      (StringMap{{"endpoints.kubernetes.io/last-change-trigger-time", "2024-05-01T10:00:00Z"}}));
  EXPECT_FALSE(s.endpoints[0].target_ref);
  // What the proxy reads is untouched.
  EXPECT_EQ(s.endpoints[0].addresses, before.endpoints[0].addresses);
  EXPECT_EQ(s.endpoints[0].conditions, before.endpoints[0].conditions);
  EXPECT_EQ(s.endpoints[0].node_name, before.endpoints[0].node_name);
  EXPECT_EQ(s.endpoints[0].zone, before.endpoints[0].zone);
  EXPECT_EQ(s.ports, before.ports);
  Validate(s);

  Service svc = ParseService(testing::ReadJson("service-loadbalancer-etp-local-ingress.json"));
  svc.metadata.labels["service.kubernetes.io/service-proxy-name"] = "other";
  Service svc_before = svc;
  TrimForProxy(svc);
  EXPECT_EQ(svc.metadata.labels,
            (StringMap{{"service.kubernetes.io/service-proxy-name", "other"}}));
  EXPECT_TRUE(svc.metadata.annotations.empty());
  EXPECT_TRUE(svc.spec.selector.empty());
  svc_before.metadata.labels = svc.metadata.labels;
  svc_before.metadata.annotations.clear();
  svc_before.spec.selector.clear();
  EXPECT_EQ(svc, svc_before);
}

}  // namespace
}  // namespace sluice::api
