#include "controlplane/api/watch_event.h"

#include <gtest/gtest.h>

#include "controlplane/api/testing/testdata.h"

namespace sluice::api {
namespace {

using testing::Expect;

std::string ErrorOf(std::string_view text, std::optional<Kind> expected = std::nullopt) {
  return Expect<ParseError>([&] { ParseWatchEventText(text, expected); }).what();
}

TEST(ParseWatchEvent, ObjectsWithoutKindTakeTheWatchedKind) {
  auto ev = ParseWatchEventText(
      R"({"type":"ADDED","object":{"metadata":{"name":"n1"},"spec":{"podCIDR":"10.244.0.0/24"}}})",
      Kind::kNode);
  EXPECT_EQ(KindOf(ev.object()), Kind::kNode);
  EXPECT_EQ(ErrorOf(R"({"type":"ADDED","object":{"metadata":{"name":"n1"}}})"),
            "watch event ADDED: n1: kind: required");
}

TEST(ParseWatchEvent, Rejections) {
  EXPECT_EQ(ErrorOf(R"({"type":"CHANGED","object":{}})"),
            "watch event: type: unknown value \"CHANGED\" (want ADDED, MODIFIED, DELETED, BOOKMARK "
            "or ERROR)");
  EXPECT_EQ(ErrorOf(R"({"type":"ADDED"})"), "watch event: object: required");
  EXPECT_EQ(ErrorOf(R"({"object":{}})"), "watch event: type: required");
  EXPECT_EQ(ErrorOf(R"(["ADDED"])"), "watch event: expected a JSON object, got a list");
  EXPECT_EQ(ErrorOf(R"({"type":"ADDED","object":{)").rfind("watch event: malformed JSON: ", 0), 0u);
  EXPECT_EQ(ErrorOf(R"({"type":"BOOKMARK","object":{"kind":"Service","metadata":{}}})"),
            "watch event BOOKMARK: object.metadata.resourceVersion: required in a BOOKMARK");
  EXPECT_EQ(
      ErrorOf(
          R"({"type":"BOOKMARK","object":{"kind":"Node","apiVersion":"v1","metadata":{"resourceVersion":"5"}}})",
          Kind::kService),
      "watch event BOOKMARK: Service: kind: expected Service, got \"Node\"");
  EXPECT_EQ(
      ErrorOf(
          R"({"type":"MODIFIED","object":{"kind":"Node","apiVersion":"v1","metadata":{"name":"n"}}})",
          Kind::kEndpointSlice),
      "watch event MODIFIED: EndpointSlice n: kind: expected EndpointSlice, got \"Node\"");
  EXPECT_EQ(
      ErrorOf(
          R"({"type":"ADDED","object":{"kind":"Service","apiVersion":"v1","metadata":{"name":"w","namespace":"d"},"spec":{"ports":[{"port":70000}]}}})",
          Kind::kService),
      "watch event ADDED: Service d/w: spec.ports[0].port: 70000 out of range 1..65535");
  // A Status as the object of a non-ERROR event: an error carrying the Status.
  auto e = Expect<ParseError>([] {
    ParseWatchEventText(
        R"({"type":"ADDED","object":{"kind":"Status","apiVersion":"v1","code":500,"reason":"InternalError"}})",
        Kind::kService);
  });
  EXPECT_STREQ(e.what(), "watch event ADDED: Service: got a Status instead: 500 InternalError");
  ASSERT_TRUE(e.status());
  EXPECT_EQ(e.status()->code, 500);
}

TEST(ParseWatchEvent, ErrorEventWithSomethingElseThanAStatus) {
  EXPECT_EQ(ErrorOf(R"({"type":"ERROR","object":{"kind":"Service"}})"),
            "watch event ERROR: Status: kind: expected Status, got \"Service\"");
}

}  // namespace
}  // namespace sluice::api
