#include "controlplane/kube/watch_session.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "controlplane/api/object_meta.h"

namespace sluice::kube {
namespace {

using api::ObjectKey;
using api::ObjectResourceVersion;

std::string ReadTestdata(const std::string& name) {
  std::ifstream in(std::string(KUBE_TESTDATA) + "/" + name);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) out.push_back(line);
  }
  return out;
}

// Records what a reflector would do to the store.
struct RecordingSink : JsonSink {
  std::vector<std::string> calls;
  void Replace(std::vector<nlohmann::json> items, const std::string& rv) override {
    std::string s = "replace@" + rv + ":";
    for (const auto& i : items) s += " " + ObjectKey(i);
    calls.push_back(s);
  }
  void UpsertJson(nlohmann::json o) override {
    calls.push_back("upsert " + ObjectKey(o) + "@" + ObjectResourceVersion(o));
  }
  void DeleteJson(nlohmann::json o) override {
    calls.push_back("delete " + ObjectKey(o) + "@" + ObjectResourceVersion(o));
  }
};

TEST(WatchSessionTest, ServicesStreamInOrderWithBookmark) {
  RecordingSink sink;
  WatchSession s(ServicesResource(), sink, "10300", false);
  std::vector<std::string> rvs;
  for (const auto& line : Lines(ReadTestdata("watch-stream-services.ndjson"))) {
    ASSERT_EQ(s.OnEvent(line), WatchSession::Outcome::kContinue);
    rvs.push_back(s.resource_version());
  }
  EXPECT_EQ(sink.calls, (std::vector<std::string>{
                            "upsert default/nodeport@10301", "upsert default/loadbalancer@10377",
                            "upsert default/nodeport@10390", "delete default/loadbalancer@10405"}));
  // The bookmark advanced the resume point without touching the store.
  EXPECT_EQ(rvs, (std::vector<std::string>{"10301", "10377", "10390", "10402", "10405"}));
  EXPECT_EQ(s.events(), 5u);
}

TEST(WatchSessionTest, WatchListCollectsInitialEventsUntilTheAnnotatedBookmark) {
  RecordingSink sink;
  WatchSession s(EndpointSlicesResource(), sink, "", true);
  auto lines = Lines(ReadTestdata("watch-stream-endpointslices-watchlist.ndjson"));
  ASSERT_EQ(lines.size(), 5u);
  for (size_t i = 0; i < 3; ++i) {
    ASSERT_EQ(s.OnEvent(lines[i]), WatchSession::Outcome::kContinue);
    EXPECT_TRUE(s.waiting_for_initial_events());
    EXPECT_EQ(s.resource_version(), "");  // items' own RVs are no resume point
  }
  EXPECT_TRUE(sink.calls.empty());
  ASSERT_EQ(s.OnEvent(lines[3]), WatchSession::Outcome::kContinue);
  EXPECT_FALSE(s.waiting_for_initial_events());
  EXPECT_EQ(s.resource_version(), "10950");
  ASSERT_EQ(s.OnEvent(lines[4]), WatchSession::Outcome::kContinue);
  EXPECT_EQ(
      sink.calls,
      (std::vector<std::string>{
          "replace@10950: default/example-abc default/example-hints default/nginx-service-6tjbr",
          "upsert default/nginx-service-6tjbr@10960"}));
}

// A sink that keeps each listed object as it arrives (as the informer parses it at once).
struct StreamingSink : RecordingSink {
  std::vector<std::string> listed;
  int aborts = 0;
  void ListObject(const std::string& key, api::JsonElement object) override {
    listed.push_back(key + "@" + ObjectResourceVersion(object));
    JsonSink::ListObject(key, object);
  }
  void ListAbort() override {
    ++aborts;
    JsonSink::ListAbort();
  }
};

TEST(WatchSessionTest, WatchListHandsOverEachInitialObjectAsItArrives) {
  StreamingSink sink;
  auto lines = Lines(ReadTestdata("watch-stream-endpointslices-watchlist.ndjson"));
  {
    WatchSession s(EndpointSlicesResource(), sink, "", true);
    ASSERT_EQ(s.OnEvent(lines[0]), WatchSession::Outcome::kContinue);
    EXPECT_EQ(sink.listed.size(), 1u);
    ASSERT_EQ(s.OnEvent(lines[1]), WatchSession::Outcome::kContinue);
    EXPECT_EQ(sink.listed.size(), 2u);
    EXPECT_EQ(s.initial_objects(), 2u);
    // The stream ends before the initial-events-end bookmark: the partial listing is dropped,
    // nothing reaches the store.
  }
  EXPECT_EQ(sink.aborts, 1);
  EXPECT_TRUE(sink.calls.empty());
  // A complete one is not aborted.
  sink.listed.clear();
  {
    WatchSession s(EndpointSlicesResource(), sink, "", true);
    for (size_t i = 0; i < 4; ++i) ASSERT_EQ(s.OnEvent(lines[i]), WatchSession::Outcome::kContinue);
  }
  EXPECT_EQ(sink.aborts, 1);
  EXPECT_EQ(sink.listed.size(), 3u);
  ASSERT_EQ(sink.calls.size(), 1u);
  EXPECT_EQ(sink.calls[0].rfind("replace@10950:", 0), 0u);
}

TEST(WatchSessionTest, ErrorEvent410IsExpired) {
  RecordingSink sink;
  WatchSession s(ServicesResource(), sink, "1", false);
  EXPECT_EQ(s.OnEvent(ReadTestdata("watch-event-error-410-expired.json")),
            WatchSession::Outcome::kExpired);
  ASSERT_TRUE(s.status());
  EXPECT_EQ(s.status()->code, 410);
  EXPECT_EQ(s.problem(), "410 Expired: too old resource version: 657887 (680402)");
  // Nothing after the session ended counts.
  EXPECT_EQ(
      s.OnEvent(R"({"type":"ADDED","object":{"metadata":{"name":"a","resourceVersion":"9"}}})"),
      WatchSession::Outcome::kExpired);
  EXPECT_TRUE(sink.calls.empty());
  EXPECT_EQ(s.resource_version(), "1");
}

TEST(WatchSessionTest, OtherErrorEvent) {
  RecordingSink sink;
  WatchSession s(ServicesResource(), sink, "1", false);
  EXPECT_EQ(
      s.OnEvent(
          R"({"type":"ERROR","object":{"kind":"Status","code":500,"reason":"InternalError","message":"boom"}})"),
      WatchSession::Outcome::kError);
  EXPECT_EQ(s.problem(), "500 InternalError: boom");
}

struct BadLine {
  const char* line;
  const char* problem;  // a part of the message
};

class WatchSessionBadLineTest : public ::testing::TestWithParam<BadLine> {};

TEST_P(WatchSessionBadLineTest, IsMalformedAndLeavesStateAlone) {
  RecordingSink sink;
  WatchSession s(ServicesResource(), sink, "7", false);
  EXPECT_EQ(s.OnEvent(GetParam().line), WatchSession::Outcome::kMalformed);
  EXPECT_NE(s.problem().find(GetParam().problem), std::string::npos) << s.problem();
  EXPECT_TRUE(sink.calls.empty());
  EXPECT_EQ(s.resource_version(), "7");
}

INSTANTIATE_TEST_SUITE_P(
    Lines, WatchSessionBadLineTest,
    ::testing::Values(
        BadLine{R"({"type":"ADDED","object":{"kind":"Service","metadata":{"name":"a")",
                "malformed JSON"},
        BadLine{"[1,2]", "watch event: expected a JSON object, got a list"},
        BadLine{R"({"object":{}})", "watch event: type: required"},
        BadLine{R"({"type":"SYNC","object":{}})", "unknown event type \"SYNC\""},
        BadLine{R"({"type":"ADDED"})", "watch event: object: required"},
        BadLine{
            R"({"type":"ADDED","object":{"kind":"Pod","metadata":{"name":"p","namespace":"d","resourceVersion":"8"}}})",
            "watch event ADDED: d/p: unexpected kind \"Pod\" (want Service)"},
        BadLine{
            R"({"type":"MODIFIED","object":{"kind":"Status","status":"Failure","code":500,"reason":"InternalError","message":"etcd down"}})",
            "watch event MODIFIED: carries a Status where a Service was expected: 500 "
            "InternalError: etcd down"},
        BadLine{R"({"type":"ADDED","object":{"metadata":{"name":"a"}}})",
                "watch event ADDED: Service a: metadata.resourceVersion: required"},
        BadLine{R"({"type":"DELETED","object":{"metadata":{"resourceVersion":"9"}}})",
                "watch event DELETED: Service: metadata.name: required"},
        BadLine{R"({"type":"BOOKMARK","object":{"metadata":{}}})",
                "watch event BOOKMARK: object.metadata.resourceVersion: required in a BOOKMARK"}));

// The body as it arrives: chunks that cut events anywhere, several events per chunk.
TEST(WatchSessionTest, BodyInChunksOfEverySize) {
  const std::string body = ReadTestdata("watch-stream-services.ndjson");
  for (size_t chunk = 1; chunk <= body.size(); chunk += 37) {
    RecordingSink sink;
    WatchSession s(ServicesResource(), sink, "10300", false);
    for (size_t pos = 0; pos < body.size(); pos += chunk) {
      ASSERT_EQ(s.OnData(std::string_view(body).substr(pos, chunk)),
                WatchSession::Outcome::kContinue);
    }
    EXPECT_EQ(sink.calls.size(), 4u) << chunk;
    EXPECT_EQ(s.resource_version(), "10405");
    EXPECT_EQ(s.events(), 5u);
    EXPECT_TRUE(s.pending().empty());
  }
}

TEST(WatchSessionTest, TruncatedEventIsPendingAtTheEnd) {
  RecordingSink sink;
  WatchSession s(ServicesResource(), sink, "1", false);
  EXPECT_EQ(s.OnData(R"({"type":"ADDED","object":{"metadata":{"name":"a","resourceVersion":"2"}}})"
                     "\n{\"type\":\"MODIFIED\",\"obj"),
            WatchSession::Outcome::kContinue);
  EXPECT_EQ(sink.calls, std::vector<std::string>{"upsert a@2"});
  EXPECT_EQ(s.pending(), "{\"type\":\"MODIFIED\",\"obj");
}

// An event cut by a line end, then more events (the e2e server's "malformed" fault): stop at once.
TEST(WatchSessionTest, EventCutByALineEndStopsTheSession) {
  RecordingSink sink;
  WatchSession s(ServicesResource(), sink, "1", false);
  EXPECT_EQ(
      s.OnData("{\"type\":\"MODIFIED\",\"object\":{\"kind\":\"Service\",\"metadata\":{\"name\":\n"
               R"({"type":"ADDED","object":{"metadata":{"name":"a","resourceVersion":"2"}}})"
               "\n"),
      WatchSession::Outcome::kMalformed);
  EXPECT_NE(s.problem().find("malformed JSON"), std::string::npos) << s.problem();
  EXPECT_TRUE(sink.calls.empty());
  EXPECT_EQ(s.OnData("{}"), WatchSession::Outcome::kMalformed);
  EXPECT_EQ(s.resource_version(), "1");
}

TEST(WatchSessionTest, GarbageAndOversizedEventsAreMalformed) {
  RecordingSink sink;
  WatchSession garbage(ServicesResource(), sink, "1", false);
  EXPECT_EQ(garbage.OnData("HTTP/1.1 200 OK\r\n"), WatchSession::Outcome::kMalformed);
  EXPECT_EQ(garbage.problem(), "watch stream: unexpected byte 0x48 between events");
  WatchSession small(ServicesResource(), sink, "1", false, 16);
  EXPECT_EQ(small.OnData(R"({"type":"ADDED","object":{)"), WatchSession::Outcome::kMalformed);
  EXPECT_EQ(small.problem(), "watch stream: event larger than 16 bytes");
  EXPECT_TRUE(sink.calls.empty());
}

}  // namespace
}  // namespace sluice::kube
