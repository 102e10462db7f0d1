#include "controlplane/api/service.h"

#include <gtest/gtest.h>

#include "controlplane/api/field_reader.h"
#include "controlplane/api/object.h"
#include "controlplane/api/object_error.h"
#include "controlplane/api/testing/testdata.h"

namespace sluice::api {
namespace {

using nlohmann::json;
using testing::Expect;

IpAddress Ip(std::string_view s) { return IpAddress::MustParse(s); }

// A Service as a user would write it in a manifest: the server fills in the rest.
json Minimal() {
  return json::parse(R"({
    "apiVersion": "v1", "kind": "Service",
    "metadata": {"name": "web", "namespace": "default"},
    "spec": {"clusterIP": "10.96.0.10", "ports": [{"name": "http", "port": 80}, {"name": "dns", "port": 53, "protocol": "UDP"}]}
  })");
}

TEST(ParseService, AppliesTheApiServerDefaults) {
  auto s = ParseService(Minimal());
  EXPECT_EQ(s.spec.type, ServiceType::kClusterIp);
  EXPECT_EQ(s.spec.cluster_ips, std::vector<IpAddress>{Ip("10.96.0.10")});
  EXPECT_EQ(s.spec.ip_families, std::vector<IpFamily>{IpFamily::kV4});  // from the cluster IP
  EXPECT_EQ(s.spec.ip_family_policy, IpFamilyPolicy::kSingleStack);
  EXPECT_EQ(s.spec.ports[0].protocol, Protocol::kTcp);
  EXPECT_EQ(s.spec.ports[0].target_port, TargetPort(uint16_t{80}));  // = port
  EXPECT_EQ(s.spec.ports[1].protocol, Protocol::kUdp);
  EXPECT_EQ(s.spec.session_affinity, SessionAffinity::kNone);
  EXPECT_EQ(s.spec.external_traffic_policy, TrafficPolicy::kCluster);
  EXPECT_EQ(s.spec.internal_traffic_policy, TrafficPolicy::kCluster);
  EXPECT_FALSE(s.spec.allocate_load_balancer_node_ports);
  EXPECT_FALSE(s.spec.traffic_distribution);
  EXPECT_NO_THROW(Validate(s));
}

TEST(ParseService, ClientIpAffinityDefaultsToThreeHours) {
  auto j = Minimal();
  j["spec"]["sessionAffinity"] = "ClientIP";
  EXPECT_EQ(ParseService(j).spec.session_affinity_timeout_seconds, 10800);
  j["spec"]["sessionAffinityConfig"] = {{"clientIP", {{"timeoutSeconds", 125}}}};
  EXPECT_EQ(ParseService(j).spec.session_affinity_timeout_seconds, 125);
  // With affinity None the server drops the config, so its value does not matter.
  j["spec"]["sessionAffinity"] = "None";
  j["spec"]["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"] = 0;
  EXPECT_EQ(ParseService(j).spec.session_affinity_timeout_seconds, 0);
}

TEST(ParseService, LoadBalancerDefaultsAndIpMode) {
  auto j = Minimal();
  j["spec"]["type"] = "LoadBalancer";
  j["status"]["loadBalancer"]["ingress"] = json::parse(
      R"([{"ip": "192.0.2.1"}, {"ip": "192.0.2.2", "ipMode": "Proxy"}, {"hostname": "lb.example.com"}])");
  auto s = ParseService(j);
  EXPECT_EQ(s.spec.allocate_load_balancer_node_ports, true);
  ASSERT_EQ(s.status.load_balancer_ingress.size(), 3u);
  EXPECT_EQ(s.status.load_balancer_ingress[0].ip_mode, LoadBalancerIpMode::kVip);
  EXPECT_EQ(s.status.load_balancer_ingress[1].ip_mode, LoadBalancerIpMode::kProxy);
  EXPECT_FALSE(s.status.load_balancer_ingress[2].ip);
  EXPECT_FALSE(s.status.load_balancer_ingress[2].ip_mode);  // no IP, no mode
  EXPECT_EQ(s.status.load_balancer_ingress[2].hostname, "lb.example.com");
  j["spec"]["allocateLoadBalancerNodePorts"] = false;
  EXPECT_EQ(ParseService(j).spec.allocate_load_balancer_node_ports, false);
}

TEST(ParseService, HeadlessWithoutSelectorRequiresDualStack) {
  auto j = Minimal();
  j["spec"]["clusterIP"] = "None";
  auto s = ParseService(j);
  EXPECT_TRUE(s.spec.headless);
  EXPECT_EQ(s.spec.ip_family_policy, IpFamilyPolicy::kRequireDualStack);
  j["spec"]["selector"] = {{"app", "web"}};
  EXPECT_EQ(ParseService(j).spec.ip_family_policy, IpFamilyPolicy::kSingleStack);
}

TEST(ParseService, TargetPortIsANumberOrAName) {
  auto j = Minimal();
  j["spec"]["ports"][0]["targetPort"] = "http-web";
  j["spec"]["ports"][1]["targetPort"] = 5353;
  auto s = ParseService(j);
  EXPECT_EQ(s.spec.ports[0].target_port, TargetPort(std::string("http-web")));
  EXPECT_EQ(s.spec.ports[1].target_port, TargetPort(uint16_t{5353}));
  j["spec"]["ports"][0]["targetPort"] = "";
  j["spec"]["ports"][1]["targetPort"] = 0;
  s = ParseService(j);
  EXPECT_EQ(s.spec.ports[0].target_port, TargetPort(uint16_t{80}));
  EXPECT_EQ(s.spec.ports[1].target_port, TargetPort(uint16_t{53}));
  j["spec"]["ports"][0]["targetPort"] = true;
  auto e = Expect<ParseError>([&] { ParseService(j); });
  EXPECT_STREQ(
      e.what(),
      "Service default/web: spec.ports[0].targetPort: expected an integer or a string, got true");
}

TEST(ParseService, SourceRangesFromTheFieldOrTheOldAnnotation) {
  auto j = Minimal();
  j["metadata"]["annotations"]["service.beta.kubernetes.io/load-balancer-source-ranges"] =
      " 192.0.2.0/24, 2001:db8::/32 ,";
  auto s = ParseService(j);
  EXPECT_EQ(s.spec.load_balancer_source_ranges,
            (std::vector<IpPrefix>{IpPrefix::MustParse("192.0.2.0/24"),
                                   IpPrefix::MustParse("2001:db8::/32")}));
  // The field wins, its entries are trimmed and reduced to their network.
  j["spec"]["loadBalancerSourceRanges"] = {" 10.1.2.3/16"};
  s = ParseService(j);
  EXPECT_EQ(s.spec.load_balancer_source_ranges,
            std::vector<IpPrefix>{IpPrefix::MustParse("10.1.0.0/16")});
  j["spec"].erase("loadBalancerSourceRanges");
  j["metadata"]["annotations"]["service.beta.kubernetes.io/load-balancer-source-ranges"] =
      "10.0.0.0/8,bad";
  auto e = Expect<ParseError>([&] { ParseService(j); });
  EXPECT_EQ(e.field(),
            "metadata.annotations[service.beta.kubernetes.io/load-balancer-source-ranges]");
  EXPECT_EQ(e.reason(), "invalid CIDR \"bad\"");
}

TEST(ParseService, TrafficDistributionIsAHint) {
  auto j = Minimal();
  j["spec"]["trafficDistribution"] = "PreferClose";
  EXPECT_EQ(ParseService(j).spec.traffic_distribution, TrafficDistribution::kPreferSameZone);
  j["spec"]["trafficDistribution"] = "PreferSameNode";
  EXPECT_EQ(ParseService(j).spec.traffic_distribution, TrafficDistribution::kPreferSameNode);
  j["spec"]["trafficDistribution"] = "PreferSomethingNew";  // a newer server: kept, not rejected
  EXPECT_EQ(ParseService(j).spec.traffic_distribution, TrafficDistribution::kUnrecognized);
}

TEST(ParseService, LegacyIpv4WithLeadingZerosReadsAsDecimal) {
  auto j = Minimal();
  j["spec"]["clusterIP"] = "010.096.000.010";
  EXPECT_EQ(ParseService(j).spec.cluster_ips[0], Ip("10.96.0.10"));
}

TEST(ParseService, UnknownFieldsAreIgnored) {
  auto j = Minimal();
  j["spec"]["someFutureField"] = {{"x", 1}};
  j["spec"]["ports"][0]["futurePortField"] = "y";
  j["futureTopLevel"] = json::array();
  EXPECT_NO_THROW(ParseService(j));
}

// --- Rejections: each names the object and the field ---------------------------------------

std::string ErrorOf(const json& j) {
  return Expect<ParseError>([&] { ParseService(j); }).what();
}

TEST(ParseService, RejectsPortsOutOfRange) {
  auto j = Minimal();
  j["spec"]["ports"][1]["port"] = 70000;
  EXPECT_EQ(ErrorOf(j), "Service default/web: spec.ports[1].port: 70000 out of range 1..65535");
  j["spec"]["ports"][1]["port"] = 0;
  EXPECT_EQ(ErrorOf(j), "Service default/web: spec.ports[1].port: 0 out of range 1..65535");
  j["spec"]["ports"][1]["port"] = 18446744073709551615u;
  EXPECT_EQ(ErrorOf(j),
            "Service default/web: spec.ports[1].port: 18446744073709551615 out of range 1..65535");
  j["spec"]["ports"][1].erase("port");
  EXPECT_EQ(ErrorOf(j), "Service default/web: spec.ports[1].port: required");
  j = Minimal();
  j["spec"]["ports"][0]["nodePort"] = -1;
  EXPECT_EQ(ErrorOf(j), "Service default/web: spec.ports[0].nodePort: -1 out of range 0..65535");
}

TEST(ParseService, RejectsWrongJsonTypes) {
  auto j = Minimal();
  j["spec"]["ports"][0]["port"] = "80";
  EXPECT_EQ(ErrorOf(j),
            "Service default/web: spec.ports[0].port: expected an integer, got string \"80\"");
  j = Minimal();
  j["spec"]["ports"][0]["port"] = 80.5;
  EXPECT_EQ(ErrorOf(j),
            "Service default/web: spec.ports[0].port: expected an integer, got number 80.5");
  j = Minimal();
  j["spec"]["ports"] = {{"port", 80}};
  EXPECT_EQ(ErrorOf(j), "Service default/web: spec.ports: expected a list, got an object");
  j = Minimal();
  j["spec"]["selector"] = {{"app", 1}};
  EXPECT_EQ(ErrorOf(j), "Service default/web: spec.selector.app: expected a string, got number 1");
  j = Minimal();
  j["spec"]["clusterIPs"] = {"10.96.0.10", 7};
  EXPECT_EQ(ErrorOf(j), "Service default/web: spec.clusterIPs[1]: expected a string, got number 7");
  j = Minimal();
  j["metadata"]["resourceVersion"] = 12;
  EXPECT_EQ(ErrorOf(j),
            "Service default/web: metadata.resourceVersion: expected a string, got number 12");
  j = Minimal();
  j["spec"]["publishNotReadyAddresses"] = "true";
  EXPECT_EQ(ErrorOf(j),
            "Service default/web: spec.publishNotReadyAddresses: expected a boolean, got string "
            "\"true\"");
  EXPECT_EQ(ErrorOf(json::array()), "Service: expected a JSON object, got a list");
}

TEST(ParseService, RejectsBadAddresses) {
  auto j = Minimal();
  j["spec"]["clusterIP"] = "10.96.0.300";
  EXPECT_EQ(ErrorOf(j), "Service default/web: spec.clusterIP: invalid IP address \"10.96.0.300\"");
  j = Minimal();
  j["spec"]["externalIPs"] = {"203.0.113.9", "not-an-ip"};
  EXPECT_EQ(ErrorOf(j),
            "Service default/web: spec.externalIPs[1]: invalid IP address \"not-an-ip\"");
  j = Minimal();
  j["spec"]["clusterIPs"] = {"10.96.0.11"};
  EXPECT_EQ(ErrorOf(j),
            "Service default/web: spec.clusterIP: \"10.96.0.10\" differs from spec.clusterIPs[0] "
            "\"10.96.0.11\"");
  j = Minimal();
  j["status"]["loadBalancer"]["ingress"] = {{{"ip", "192.0.2.1/32"}}};
  EXPECT_EQ(ErrorOf(j),
            "Service default/web: status.loadBalancer.ingress[0].ip: invalid IP address "
            "\"192.0.2.1/32\"");
  j = Minimal();
  j["spec"]["loadBalancerSourceRanges"] = {"10.0.0.0/33"};
  EXPECT_EQ(ErrorOf(j),
            "Service default/web: spec.loadBalancerSourceRanges[0]: invalid CIDR \"10.0.0.0/33\"");
}

TEST(ParseService, RejectsUnknownEnumValues) {
  auto j = Minimal();
  j["spec"]["ports"][1]["protocol"] = "QUIC";
  EXPECT_EQ(ErrorOf(j),
            "Service default/web: spec.ports[1].protocol: unknown value \"QUIC\" (want TCP, UDP or "
            "SCTP)");
  j = Minimal();
  j["spec"]["ports"][1]["protocol"] = "tcp";  // case matters, as on the server
  EXPECT_NE(ErrorOf(j).find("unknown value \"tcp\""), std::string::npos);
  j = Minimal();
  j["spec"]["externalTrafficPolicy"] = "OnlyLocal";
  EXPECT_EQ(ErrorOf(j),
            "Service default/web: spec.externalTrafficPolicy: unknown value \"OnlyLocal\" (want "
            "Cluster or Local)");
  j = Minimal();
  j["spec"]["ipFamilies"] = {"IPv5"};
  EXPECT_EQ(ErrorOf(j),
            "Service default/web: spec.ipFamilies[0]: unknown value \"IPv5\" (want IPv4 or IPv6)");
  j = Minimal();
  j["spec"]["sessionAffinity"] = "ClientIP";
  j["spec"]["sessionAffinityConfig"] = {{"clientIP", {{"timeoutSeconds", 86401}}}};
  EXPECT_EQ(ErrorOf(j),
            "Service default/web: spec.sessionAffinityConfig.clientIP.timeoutSeconds: 86401 out of "
            "range 1..86400");
}

TEST(ParseService, RejectsOtherKindsAndVersions) {
  auto j = Minimal();
  j["kind"] = "Pod";
  EXPECT_EQ(ErrorOf(j), "Service default/web: kind: expected Service, got \"Pod\"");
  j = Minimal();
  j["apiVersion"] = "v2";
  EXPECT_EQ(ErrorOf(j),
            "Service default/web: apiVersion: unsupported \"v2\" for Service (want v1)");
  // A Status where the Service should be: the error carries it.
  auto e = Expect<ParseError>([] {
    ParseService(json::parse(
        R"({"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","message":"services \"web\" not found","code":404})"));
  });
  EXPECT_STREQ(e.what(), "Service: got a Status instead: 404 NotFound: services \"web\" not found");
  ASSERT_TRUE(e.status());
  EXPECT_EQ(e.status()->code, 404);
}

// --- Validation ----------------------------------------------------------------------------

std::string ValidationOf(const json& j) {
  auto s = ParseService(j);
  return Expect<ValidationError>([&] { Validate(s); }).what();
}

TEST(ValidateService, ClusterIpsAndFamiliesAgree) {
  auto j = Minimal();
  j["spec"]["clusterIPs"] = {"10.96.0.10", "10.96.0.11"};
  EXPECT_EQ(
      ValidationOf(j),
      "Service default/web: spec.clusterIPs[1]: 10.96.0.11 is of the same family as 10.96.0.10");
  j["spec"]["clusterIPs"] = {"10.96.0.10", "fd00::10"};
  j["spec"]["ipFamilyPolicy"] = "SingleStack";
  EXPECT_EQ(ValidationOf(j),
            "Service default/web: spec.ipFamilyPolicy: SingleStack with two IP families");
  j["spec"]["ipFamilyPolicy"] = "PreferDualStack";
  j["spec"]["ipFamilies"] = {"IPv6", "IPv4"};
  EXPECT_EQ(
      ValidationOf(j),
      "Service default/web: spec.clusterIPs[0]: 10.96.0.10 is not IPv6 as spec.ipFamilies[0] says");
  j["spec"]["ipFamilies"] = {"IPv4"};
  EXPECT_EQ(ValidationOf(j),
            "Service default/web: spec.ipFamilies: lists 1 families for 2 cluster IPs");
  j["spec"]["ipFamilies"] = {"IPv4", "IPv6"};
  EXPECT_NO_THROW(Validate(ParseService(j)));
  j["spec"]["clusterIPs"] = {"10.96.0.10"};
  j["spec"]["ipFamilies"] = {"IPv4"};
  j["spec"]["ipFamilyPolicy"] = "RequireDualStack";
  EXPECT_EQ(ValidationOf(j),
            "Service default/web: spec.ipFamilyPolicy: RequireDualStack with a single cluster IP");
}

TEST(ValidateService, PortsAreDistinguishable) {
  auto j = Minimal();
  j["spec"]["ports"][1]["name"] = "";
  EXPECT_EQ(ValidationOf(j),
            "Service default/web: spec.ports[1].name: required when a Service has several ports");
  j["spec"]["ports"][1]["name"] = "http";
  EXPECT_EQ(ValidationOf(j), "Service default/web: spec.ports[1].name: duplicate \"http\"");
  j["spec"]["ports"][1] = {{"name", "http2"}, {"port", 80}};
  EXPECT_EQ(ValidationOf(j), "Service default/web: spec.ports[1]: duplicate port 80/TCP");
  j["spec"]["ports"][1]["protocol"] = "UDP";  // same number, other protocol: fine
  EXPECT_NO_THROW(Validate(ParseService(j)));
  j["spec"]["ports"][0]["nodePort"] = 30080;
  j["spec"]["ports"][1] = {{"name", "alt"}, {"port", 8080}, {"nodePort", 30080}};
  EXPECT_EQ(ValidationOf(j),
            "Service default/web: spec.ports[1].nodePort: duplicate node port 30080/TCP");
}

TEST(ValidateService, IdentityAndExternalName) {
  auto j = Minimal();
  j["metadata"].erase("namespace");
  EXPECT_EQ(ValidationOf(j), "Service web: metadata.namespace: required");
  j = Minimal();
  j["spec"] = {{"type", "ExternalName"}};
  EXPECT_EQ(ValidationOf(j),
            "Service default/web: spec.externalName: required for type ExternalName");
}

// Text as the server sends it, read by simdjson: as Go and nlohmann-json read it.
TEST(ParseService, TextKeepsTheLastOfDuplicateKeysAndReadsHugeIntegersAsFloats) {
  auto o = ParseObjectText(
      R"({"kind":"Service","apiVersion":"v1","metadata":{"name":"a","namespace":"d","labels":{"x":1,"x":"one"}},)"
      R"("spec":{"type":"NodePort","type":"LoadBalancer","ports":[{"port":80}]}})");
  const auto& s = std::get<Service>(o);
  EXPECT_EQ(s.spec.type, ServiceType::kLoadBalancer);
  EXPECT_EQ(s.metadata.labels.at("x"), "one");
  auto e = Expect<ParseError>([] {
    ParseObjectText(
        R"({"kind":"Service","metadata":{"name":"a","namespace":"d"},"spec":{"ports":[{"port":18446744073709551616}]}})");
  });
  EXPECT_STREQ(e.what(),
               "Service d/a: spec.ports[0].port: expected an integer, got number "
               "1.8446744073709552e+19");
  constexpr std::string_view kCut = R"({"kind":"Service","metadata":{"name":)";
  EXPECT_STREQ(Expect<ParseError>([&] { ParseObjectText(kCut); }).what(),
               Expect<ParseError>([&] { ParseJsonText(kCut); }).what());
}

}  // namespace
}  // namespace sluice::api
