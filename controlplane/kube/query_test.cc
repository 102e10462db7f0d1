#include "controlplane/kube/query.h"

#include <gtest/gtest.h>

#include "controlplane/kube/resource.h"

namespace sluice::kube {
namespace {

TEST(QueryTest, EncodesLikeGoUrlValues) {
  // The exact list request kube-proxy's informer sends (k8s-api-and-conformance.md §1.1).
  QueryParams q{{"limit", "500"},
                {"resourceVersion", "0"},
                {"labelSelector", std::string(kProxyLabelSelector)}};
  EXPECT_EQ(EncodeQuery(q),
            "labelSelector=%21service.kubernetes.io%2Fheadless%2C%21service.kubernetes.io%2F"
            "service-proxy-name&limit=500&resourceVersion=0");
  EXPECT_EQ(EncodeQuery({{"fieldSelector", NodeNameFieldSelector("node-1")}}),
            "fieldSelector=metadata.name%3Dnode-1");
  EXPECT_EQ(QueryEscape("a b~_.-*"), "a+b~_.-%2A");
  EXPECT_EQ(EncodeQuery({}), "");
}

TEST(QueryTest, GoDurations) {
  EXPECT_EQ(GoDuration(std::chrono::seconds(454)), "7m34s");
  EXPECT_EQ(GoDuration(std::chrono::seconds(300)), "5m0s");
  EXPECT_EQ(GoDuration(std::chrono::seconds(45)), "45s");
  EXPECT_EQ(GoDuration(std::chrono::seconds(3600)), "1h0m0s");
  EXPECT_EQ(GoDuration(std::chrono::seconds(0)), "0s");
}

TEST(ResourceTest, Names) {
  EXPECT_EQ(ServicesResource().name(), "services");
  EXPECT_EQ(EndpointSlicesResource().path, "/apis/discovery.k8s.io/v1/endpointslices");
  EXPECT_EQ(NodesResource().kind, "Node");
}

}  // namespace
}  // namespace sluice::kube
