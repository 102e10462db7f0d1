#include "controlplane/api/object_meta.h"

#include <gtest/gtest.h>

#include "controlplane/api/object.h"
#include "controlplane/api/testing/testdata.h"

namespace sluice::api {
namespace {

using nlohmann::json;
using testing::Expect;

TEST(ParseTimestamp, Rfc3339) {
  using namespace std::chrono;
  auto t = ParseTimestamp("2024-05-01T10:30:00Z");
  ASSERT_TRUE(t);
  EXPECT_EQ(*t, sys_days(2024y / May / 1) + 10h + 30min);
  EXPECT_EQ(ParseTimestamp("2024-05-01T12:30:00.123456+02:00"), t);
  EXPECT_EQ(ParseTimestamp("2024-05-01T05:30:00-05:00"), t);
  EXPECT_FALSE(ParseTimestamp("2024-05-01 10:30:00Z"));
  EXPECT_FALSE(ParseTimestamp("2024-02-30T10:30:00Z"));
  EXPECT_FALSE(ParseTimestamp("2024-05-01T10:30:00"));
  EXPECT_FALSE(ParseTimestamp("2024-05-01T10:30:00Zjunk"));
  EXPECT_FALSE(ParseTimestamp("2024-05-01T10:30:00."));
  EXPECT_FALSE(ParseTimestamp(""));
}

json Svc() {
  return json::parse(R"({"kind": "Service", "apiVersion": "v1",
    "metadata": {"name": "web", "namespace": "ns1", "resourceVersion": "11042405498087606203",
                 "generation": 3, "deletionTimestamp": "2024-05-01T10:30:00Z",
                 "labels": {"a": "1", "empty": null}, "annotations": {"k": "v"}},
    "spec": {"clusterIP": "10.0.0.1"}})");
}

TEST(ObjectMeta, ReadsIdentityAndBookkeeping) {
  auto o = ParseObject(Svc());
  const auto& m = MetaOf(o);
  EXPECT_EQ(KindOf(o), Kind::kService);
  EXPECT_EQ(m.Key(), "ns1/web");
  EXPECT_EQ(m.resource_version, "11042405498087606203");
  EXPECT_EQ(m.generation, 3);
  EXPECT_TRUE(m.being_deleted());
  EXPECT_FALSE(m.creation_timestamp);
  EXPECT_EQ(m.Label("a"), "1");
  EXPECT_EQ(m.Label("empty"), "");  // null map values are "" as in Go
  EXPECT_FALSE(m.Label("missing"));
  EXPECT_EQ(m.Annotation("k"), "v");
}

TEST(ObjectMeta, Rejections) {
  auto j = Svc();
  j["metadata"]["creationTimestamp"] = "yesterday";
  EXPECT_STREQ(Expect<ParseError>([&] { ParseObject(j); }).what(),
               "Service ns1/web: metadata.creationTimestamp: invalid RFC 3339 time \"yesterday\"");
  j = Svc();
  j["metadata"]["generation"] = 9223372036854775808u;  // int64 max + 1
  EXPECT_STREQ(Expect<ParseError>([&] { ParseObject(j); }).what(),
               "Service ns1/web: metadata.generation: 9223372036854775808 out of range "
               "-9223372036854775808..9223372036854775807");
  j = Svc();
  j["metadata"]["labels"] = {"a", "b"};
  EXPECT_STREQ(Expect<ParseError>([&] { ParseObject(j); }).what(),
               "Service ns1/web: metadata.labels: expected an object, got a list");
}

TEST(ParseObject, DispatchesOnKindAndRejectsTheRest) {
  EXPECT_EQ(KindOf(ParseObjectText(R"({"kind":"Node","apiVersion":"v1","metadata":{"name":"n"}})")),
            Kind::kNode);
  EXPECT_STREQ(Expect<ParseError>([] {
                 ParseObjectText(
                     R"({"kind":"Pod","apiVersion":"v1","metadata":{"name":"p","namespace":"d"}})");
               }).what(),
               "d/p: kind: unsupported \"Pod\" (want Service, EndpointSlice or Node)");
  EXPECT_STREQ(Expect<ParseError>([] { ParseObjectText(R"({"metadata":{"name":"x"}})"); }).what(),
               "x: kind: required");
  auto e = Expect<ParseError>([] {
    ParseObjectText(
        R"({"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Expired","code":410,"message":"gone"})");
  });
  EXPECT_STREQ(e.what(), "got a Status instead of an object: 410 Expired: gone");
  ASSERT_TRUE(e.status());
  EXPECT_TRUE(e.status()->IsExpired());
  e = Expect<ParseError>([] { ParseObjectText(R"({"kind":"Service",)"); });
  EXPECT_EQ(e.reason().rfind("malformed JSON: ", 0), 0u) << e.what();
  EXPECT_NE(e.reason().find("line 1, column 19"), std::string::npos) << e.what();
  EXPECT_STREQ(Expect<ParseError>([] { ParseObjectText("42"); }).what(),
               "expected a JSON object, got number 42");
  EXPECT_THROW(ParseObjectText(""), ParseError);
  EXPECT_THROW(ParseObjectText("{\"kind\":\"Service\"} trailing"), ParseError);
  EXPECT_THROW(ParseObjectText("{\"kind\":\"\xff\"}"), ParseError);  // invalid UTF-8
}

}  // namespace
}  // namespace sluice::api
