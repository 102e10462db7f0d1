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
            "watch event: unknown event type \"CHANGED\" (want ADDED, MODIFIED, DELETED, BOOKMARK "
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
      "watch event BOOKMARK: unexpected kind \"Node\" (want Service)");
  EXPECT_EQ(
      ErrorOf(
          R"({"type":"MODIFIED","object":{"kind":"Node","apiVersion":"v1","metadata":{"name":"n"}}})",
          Kind::kEndpointSlice),
      "watch event MODIFIED: n: unexpected kind \"Node\" (want EndpointSlice)");
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
  EXPECT_STREQ(
      e.what(),
      "watch event ADDED: carries a Status where a Service was expected: 500 InternalError");
  ASSERT_TRUE(e.status());
  EXPECT_EQ(e.status()->code, 500);
}

TEST(ParseWatchEvent, ErrorEventWithSomethingElseThanAStatus) {
  EXPECT_EQ(ErrorOf(R"({"type":"ERROR","object":{"kind":"Service"}})"),
            "watch event ERROR: Status: kind: expected Status, got \"Service\"");
}

TEST(ParseWatchEvent, BookmarkApiVersionIsCheckedForTheWatchedKind) {
  EXPECT_EQ(
      ErrorOf(
          R"({"type":"BOOKMARK","object":{"kind":"EndpointSlice","apiVersion":"discovery.k8s.io/v1beta1","metadata":{"resourceVersion":"5"}}})",
          Kind::kEndpointSlice),
      "watch event BOOKMARK: EndpointSlice: apiVersion: unsupported \"discovery.k8s.io/v1beta1\" "
      "for EndpointSlice (want discovery.k8s.io/v1)");
}

// --- The envelope alone: what controlplane/kube's reflector reads, the object left as JSON. ---

std::string RawErrorOf(std::string_view text, std::string_view kind = "Service") {
  JsonParser parser;
  return Expect<ParseError>([&] { ParseRawWatchEventText(parser, text, kind); }).what();
}

TEST(ParseRawWatchEvent, KeepsTheObjectAsSent) {
  JsonParser parser, other;
  auto ev = ParseRawWatchEventText(
      parser,
      R"({"type":"MODIFIED","object":{"kind":"ConfigMap","metadata":{"name":"c","namespace":"d","resourceVersion":"7"},"data":{"k":"v"}}})",
      "ConfigMap");
  EXPECT_EQ(ev.type, WatchEventType::kModified);
  EXPECT_EQ(std::string_view(ev.object()["data"]["k"]), "v");
  EXPECT_EQ(ObjectKey(ev.object()), "d/c");
  EXPECT_EQ(ObjectResourceVersion(ev.object()), "7");
  // No kind on the object: the watched one is assumed; "" accepts any kind.
  EXPECT_EQ(ParseRawWatchEventText(other, R"({"type":"ADDED","object":{"metadata":{"name":"n"}}})",
                                   "Node")
                .type,
            WatchEventType::kAdded);
  EXPECT_EQ(ParseRawWatchEventText(other, R"({"type":"ADDED","object":{"kind":"Pod"}})", "").type,
            WatchEventType::kAdded);
}

TEST(ParseRawWatchEvent, BookmarksAndErrorsAreRead) {
  JsonParser parser;
  auto bm = ParseRawWatchEventText(
      parser,
      R"({"type":"BOOKMARK","object":{"kind":"Service","metadata":{"resourceVersion":"12","annotations":{"k8s.io/initial-events-end":"true"}}}})",
      "Service");
  EXPECT_EQ(bm.bookmark(), (Bookmark{"12", true}));
  auto err = ParseRawWatchEventText(
      parser, testing::ReadTestdata("watch-event-error-410-expired.json"), "Service");
  EXPECT_TRUE(err.status().IsExpired());
}

TEST(ParseRawWatchEvent, RejectsWhatTheTypedParserRejectsInTheEnvelope) {
  EXPECT_EQ(RawErrorOf(R"({"type":"ADDED","object":{"kind":"Service","metadata":{"name":"a")")
                .rfind("watch event: malformed JSON: ", 0),
            0u);
  EXPECT_EQ(RawErrorOf("[1,2]"), "watch event: expected a JSON object, got a list");
  EXPECT_EQ(RawErrorOf(R"({"object":{}})"), "watch event: type: required");
  EXPECT_EQ(RawErrorOf(R"({"type":"SYNC","object":{}})"),
            "watch event: unknown event type \"SYNC\" (want ADDED, MODIFIED, DELETED, BOOKMARK or "
            "ERROR)");
  EXPECT_EQ(RawErrorOf(R"({"type":"ADDED"})"), "watch event: object: required");
  EXPECT_EQ(
      RawErrorOf(
          R"({"type":"ADDED","object":{"kind":"Pod","metadata":{"name":"p","namespace":"d","resourceVersion":"8"}}})"),
      "watch event ADDED: d/p: unexpected kind \"Pod\" (want Service)");
  EXPECT_EQ(RawErrorOf(R"({"type":"BOOKMARK","object":{"metadata":{}}})"),
            "watch event BOOKMARK: object.metadata.resourceVersion: required in a BOOKMARK");
  auto e = Expect<ParseError>([] {
    JsonParser parser;
    ParseRawWatchEventText(
        parser,
        R"({"type":"MODIFIED","object":{"kind":"Status","status":"Failure","code":500,"reason":"InternalError","message":"etcd down"}})",
        "EndpointSlice");
  });
  EXPECT_STREQ(e.what(),
               "watch event MODIFIED: carries a Status where an EndpointSlice was expected: 500 "
               "InternalError: etcd down");
  ASSERT_TRUE(e.status());
  EXPECT_EQ(e.status()->message, "etcd down");
}

}  // namespace
}  // namespace sluice::api
