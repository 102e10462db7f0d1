#include "controlplane/api/object_list.h"

#include <gtest/gtest.h>

#include "controlplane/api/testing/testdata.h"

namespace sluice::api {
namespace {

using nlohmann::json;
using testing::Expect;

TEST(ParseList, OneBadItemIsSetAsideNotTheWholeList) {
  auto list = ParseServiceListText(R"({
    "kind": "ServiceList", "apiVersion": "v1", "metadata": {"resourceVersion": "77"},
    "items": [
      {"metadata": {"name": "a", "namespace": "x"}, "spec": {"clusterIP": "10.0.0.1", "ports": [{"port": 80}]}},
      {"metadata": {"name": "b", "namespace": "x"}, "spec": {"clusterIP": "10.0.0.2", "ports": [{"port": 80}, {"name": "q", "port": 70000}]}},
      {"metadata": {"name": "c", "namespace": "x"}, "spec": {"clusterIP": "10.0.0.3"}}
    ]})");
  EXPECT_EQ(list.resource_version, "77");
  ASSERT_EQ(list.items.size(), 2u);
  EXPECT_EQ(list.items[0].metadata.name, "a");
  EXPECT_EQ(list.items[1].metadata.name, "c");
  ASSERT_EQ(list.rejected.size(), 1u);
  EXPECT_STREQ(
      list.rejected[0].what(),
      "ServiceList items[1]: Service x/b: spec.ports[1].port: 70000 out of range 1..65535");
  EXPECT_EQ(list.rejected[0].object(), "x/b");
  EXPECT_EQ(list.rejected[0].context(), "ServiceList items[1]");
}

TEST(ParseList, ItemsWithAKindMustBeThatKind) {
  auto list = ParseEndpointSliceListText(
      R"({"kind": "EndpointSliceList", "apiVersion": "discovery.k8s.io/v1",
    "metadata": {"resourceVersion": "5"},
    "items": [{"kind": "Service", "metadata": {"name": "s", "namespace": "d"}, "addressType": "IPv4"}]})");
  ASSERT_EQ(list.rejected.size(), 1u);
  EXPECT_STREQ(list.rejected[0].what(),
               "EndpointSliceList items[0]: EndpointSlice d/s: kind: expected EndpointSlice, got "
               "\"Service\"");
}

TEST(ParseList, EmptyAndNullItems) {
  EXPECT_TRUE(ParseNodeListText(R"({"kind":"NodeList","apiVersion":"v1","metadata":{},"items":[]})")
                  .items.empty());
  EXPECT_TRUE(
      ParseNodeListText(R"({"kind":"NodeList","apiVersion":"v1","metadata":{},"items":null})")
          .items.empty());
}

TEST(ParseList, StructuralErrorsFailTheList) {
  EXPECT_STREQ(
      Expect<ParseError>([] { ParseServiceListText(R"({"kind":"PodList","items":[]})"); }).what(),
      "ServiceList: kind: expected ServiceList, got \"PodList\"");
  EXPECT_STREQ(Expect<ParseError>([] {
                 ParseServiceListText(R"({"kind":"ServiceList","items":{}})");
               }).what(),
               "ServiceList: items: expected a list, got an object");
  EXPECT_STREQ(
      Expect<ParseError>([] {
        ParseServiceListText(R"({"kind":"ServiceList","metadata":{"remainingItemCount":-1}})");
      }).what(),
      "ServiceList: metadata.remainingItemCount: -1 out of range 0..9223372036854775807");
  auto e = Expect<ParseError>(
      [] { ParseServiceListText(testing::ReadTestdata("status-410-expired-continue.json")); });
  ASSERT_TRUE(e.status());
  EXPECT_TRUE(e.status()->IsExpired());
  EXPECT_EQ(e.status()->continue_token, "ENCODED_INCONSISTENT_CONTINUE_TOKEN");
  EXPECT_EQ(std::string(e.what()).rfind("ServiceList: got a Status instead: 410 Expired: ", 0), 0u);
}

}  // namespace
}  // namespace sluice::api
