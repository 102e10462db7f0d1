#include "controlplane/api/status.h"

#include <gtest/gtest.h>

#include "controlplane/api/testing/testdata.h"

namespace sluice::api {
namespace {

using testing::Expect;

TEST(ParseStatus, OldServersSayGone) {
  auto s = ParseStatusText(
      R"({"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Gone","code":410})");
  EXPECT_TRUE(s.IsExpired());
  EXPECT_EQ(s.Summary(), "410 Gone");
}

TEST(ParseStatus, Success) {
  auto s = ParseStatusText(R"({"kind":"Status","apiVersion":"v1","status":"Success","code":200})");
  EXPECT_TRUE(s.success);
  EXPECT_FALSE(s.IsExpired());
}

TEST(ParseStatus, Rejections) {
  EXPECT_STREQ(
      Expect<ParseError>([] { ParseStatusText(R"({"kind":"Status","code":"410"})"); }).what(),
      "Status: code: expected an integer, got string \"410\"");
  EXPECT_STREQ(Expect<ParseError>([] { ParseStatusText(R"({"kind":"Service"})"); }).what(),
               "Status: kind: expected Status, got \"Service\"");
  EXPECT_STREQ(Expect<ParseError>([] { ParseStatusText(R"({"status":"Maybe"})"); }).what(),
               "Status: status: unknown value \"Maybe\" (want Success or Failure)");
  EXPECT_STREQ(Expect<ParseError>([] { ParseStatusText(R"({"details":{"causes":[1]}})"); }).what(),
               "Status: details.causes[0]: expected an object, got number 1");
}

// --- Lenient reading, for HTTP error bodies ------------------------------------------------

TEST(StatusFromBody, WrongFieldTypesAreIgnored) {
  auto s = StatusFromBody(
      R"({"kind":"Service","status":"Maybe","code":"410","reason":7,"message":"m",
          "metadata":{"continue":1,"resourceVersion":"5"},
          "details":{"retryAfterSeconds":"2","causes":[1,{"reason":"R","field":false}]}})",
      503);
  EXPECT_EQ(s.code, 503);  // "410" is not a number: the HTTP status stands
  EXPECT_FALSE(s.success);
  EXPECT_EQ(s.reason, "");
  EXPECT_EQ(s.message, "m");
  EXPECT_EQ(s.continue_token, "");
  EXPECT_EQ(s.resource_version, "5");
  EXPECT_FALSE(s.retry_after_seconds);
  EXPECT_EQ(s.causes, (std::vector<StatusCause>{{"R", "", ""}}));
  // Out of int32 range is a wrong type too.
  EXPECT_EQ(StatusFromBody(R"({"code":99999999999})", 500).code, 500);
  EXPECT_EQ(StatusFromBody(R"({"code":-1})", 500).code, -1);
}

TEST(StatusFromBody, HttpStatusFillsAMissingCode) {
  auto s = StatusFromBody(R"({"kind":"Status","status":"Failure","reason":"Expired"})", 410);
  EXPECT_EQ(s.code, 410);
  EXPECT_TRUE(s.IsExpired());
  EXPECT_EQ(StatusFromBody(R"({"kind":"Status","code":422})", 400).code, 422);  // the body's wins
  EXPECT_EQ(StatusFromJson(nlohmann::json::array(), 404).code, 404);
}

TEST(StatusFromBody, NotAStatusKeepsAnExcerptOnOneLine) {
  auto s = StatusFromBody("<html>\r\n<body>bad gateway</body>\n</html>", 502);
  EXPECT_EQ(s.code, 502);
  EXPECT_EQ(s.message, "<html>  <body>bad gateway</body> </html>");
  EXPECT_EQ(s.Summary(), "502: <html>  <body>bad gateway</body> </html>");
  EXPECT_EQ(StatusFromBody(std::string(500, 'x'), 500).message, std::string(200, 'x'));
  EXPECT_EQ(StatusFromBody("", 503).Summary(), "503");
  EXPECT_EQ(StatusFromBody("\"quoted\"", 500).message, "\"quoted\"");
}

TEST(StatusFromBody, ReadsTheFixturesLikeTheStrictParser) {
  for (const char* name :
       {"status-410-expired-continue.json", "status-410-expired-too-old-resource-version.json",
        "status-410-expired-watch-etcd.json", "status-422-watchlist-forbidden.json",
        "status-504-too-large-resource-version.json"}) {
    std::string body = testing::ReadTestdata(name);
    EXPECT_EQ(StatusFromBody(body, 0), ParseStatusText(body)) << name;
  }
  auto cont = StatusFromBody(testing::ReadTestdata("status-410-expired-continue.json"), 410);
  EXPECT_EQ(cont.continue_token, "ENCODED_INCONSISTENT_CONTINUE_TOKEN");
  auto large =
      StatusFromBody(testing::ReadTestdata("status-504-too-large-resource-version.json"), 504);
  EXPECT_EQ(large.retry_after_seconds, 1);
  ASSERT_FALSE(large.causes.empty());
  EXPECT_EQ(large.causes[0].reason, "ResourceVersionTooLarge");
  EXPECT_TRUE(large.IsTooLargeResourceVersion());
}

TEST(Status, ExpiredAndTooLargeAsClientGoReadsThem) {
  Status bare;  // an HTTP 410 without a Status body
  bare.code = 410;
  EXPECT_TRUE(bare.IsExpired());
  Status expired;  // reason alone, whatever the code
  expired.reason = "Expired";
  EXPECT_TRUE(expired.IsExpired());
  Status gateway;
  gateway.code = 504;
  EXPECT_FALSE(gateway.IsTooLargeResourceVersion());
  gateway.message = "Too large resource version: 10, current: 5";  // pre-1.20: no cause
  EXPECT_TRUE(gateway.IsTooLargeResourceVersion());
  gateway.code = 500;
  EXPECT_FALSE(gateway.IsTooLargeResourceVersion());
}

}  // namespace
}  // namespace sluice::api
