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

}  // namespace
}  // namespace sluice::api
