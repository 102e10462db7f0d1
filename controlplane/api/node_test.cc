#include "controlplane/api/node.h"

#include <gtest/gtest.h>

#include "controlplane/api/object_error.h"
#include "controlplane/api/testing/testdata.h"

namespace sluice::api {
namespace {

using nlohmann::json;
using testing::Expect;

json NodeJson() {
  return json::parse(R"({
    "apiVersion": "v1", "kind": "Node",
    "metadata": {"name": "node-a", "labels": {"topology.kubernetes.io/zone": "z1"}},
    "spec": {"podCIDR": "10.244.1.0/24"},
    "status": {
      "addresses": [{"type": "ExternalIP", "address": "203.0.113.7"},
                    {"type": "InternalIP", "address": "10.0.0.7"},
                    {"type": "InternalIP", "address": "10.0.0.8"},
                    {"type": "CloudSpecial", "address": "whatever"}],
      "conditions": [{"type": "MemoryPressure", "status": "False"},
                     {"type": "Ready", "status": "Unknown"}]
    }
  })");
}

TEST(ParseNode, PodCidrFromTheSingleField) {
  auto n = ParseNode(NodeJson());
  EXPECT_EQ(n.pod_cidrs, std::vector<IpPrefix>{IpPrefix::MustParse("10.244.1.0/24")});
  EXPECT_EQ(n.ready, ConditionStatus::kUnknown);
  EXPECT_EQ(n.Zone(), "z1");
  EXPECT_EQ(n.addresses[3].type, NodeAddressType::kOther);
  EXPECT_EQ(n.addresses[3].type_name, "CloudSpecial");
  // First InternalIP per family; ExternalIP only for a family without one.
  EXPECT_EQ(n.NodeIps(), std::vector<IpAddress>{IpAddress::MustParse("10.0.0.7")});
  EXPECT_NO_THROW(Validate(n));
}

TEST(ParseNode, Rejections) {
  auto j = NodeJson();
  j["status"]["addresses"][1]["address"] = "node-a.internal";
  EXPECT_STREQ(Expect<ParseError>([&] { ParseNode(j); }).what(),
               "Node node-a: status.addresses[1].address: invalid IP address \"node-a.internal\"");
  j = NodeJson();
  j["spec"]["podCIDRs"] = {"10.244.2.0/24"};
  EXPECT_STREQ(Expect<ParseError>([&] { ParseNode(j); }).what(),
               "Node node-a: spec.podCIDR: \"10.244.1.0/24\" differs from spec.podCIDRs[0] "
               "\"10.244.2.0/24\"");
  j = NodeJson();
  j["spec"]["unschedulable"] = 1;
  EXPECT_STREQ(Expect<ParseError>([&] { ParseNode(j); }).what(),
               "Node node-a: spec.unschedulable: expected a boolean, got number 1");
}

TEST(ParseNode, TaintKeys) {
  auto j = NodeJson();
  j["spec"]["taints"] = {{{"key", "ToBeDeletedByClusterAutoscaler"}, {"effect", "NoSchedule"}},
                         {{"key", "node.kubernetes.io/unreachable"}, {"effect", "NoExecute"}}};
  EXPECT_EQ(ParseNode(j).taint_keys, (std::vector<std::string>{"ToBeDeletedByClusterAutoscaler",
                                                               "node.kubernetes.io/unreachable"}));
  j["spec"]["taints"] = {"x"};
  EXPECT_STREQ(Expect<ParseError>([&] { ParseNode(j); }).what(),
               "Node node-a: spec.taints[0]: expected an object, got string \"x\"");
}

TEST(ValidateNode, PodCidrsOnePerFamily) {
  auto j = NodeJson();
  j["spec"] = {{"podCIDRs", {"10.244.1.0/24", "10.245.1.0/24"}}};
  auto n = ParseNode(j);
  EXPECT_STREQ(
      Expect<ValidationError>([&] { Validate(n); }).what(),
      "Node node-a: spec.podCIDRs[1]: 10.245.1.0/24 is of the same family as 10.244.1.0/24");
}

}  // namespace
}  // namespace sluice::api
