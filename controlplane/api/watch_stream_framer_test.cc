#include "controlplane/api/watch_stream_framer.h"

#include <gtest/gtest.h>

#include "controlplane/api/object_error.h"

namespace sluice::api {
namespace {

std::vector<std::string> Drain(WatchStreamFramer& f) {
  std::vector<std::string> out;
  while (auto t = f.Next()) out.push_back(*t);
  return out;
}

TEST(WatchStreamFramer, BracesInsideStringsDoNotCount) {
  WatchStreamFramer f;
  f.Feed(R"({"type":"ADDED","object":{"m":"}{\"]["}})");
  f.Feed("\r\n");
  f.Feed(R"({"a":[{"b":"\\"}]})");
  EXPECT_EQ(Drain(f), (std::vector<std::string>{R"({"type":"ADDED","object":{"m":"}{\"]["}})",
                                                R"({"a":[{"b":"\\"}]})"}));
  EXPECT_TRUE(f.idle());
}

TEST(WatchStreamFramer, ByteByByteAndNoNewlines) {
  const std::string stream = R"({"x":1}{"y":"z"}  {"w":{}})";
  WatchStreamFramer f;
  std::vector<std::string> out;
  for (char c : stream) {
    f.Feed(std::string_view(&c, 1));
    for (auto& t : Drain(f)) out.push_back(t);
  }
  EXPECT_EQ(out, (std::vector<std::string>{R"({"x":1})", R"({"y":"z"})", R"({"w":{}})"}));
}

TEST(WatchStreamFramer, PartialEventIsNotIdle) {
  WatchStreamFramer f;
  f.Feed(R"({"type":"ADD)");
  EXPECT_FALSE(f.Next());
  EXPECT_FALSE(f.idle());
}

TEST(WatchStreamFramer, GarbageBetweenEventsAndOversizedEvents) {
  WatchStreamFramer f;
  f.Feed("{}\nHTTP/1.1 200 OK");
  EXPECT_EQ(f.Next(), "{}");
  try {
    f.Next();
    FAIL();
  } catch (const ParseError& e) {
    EXPECT_STREQ(e.what(), "watch stream: unexpected byte 0x48 between events");
  }
  WatchStreamFramer small(8);
  small.Feed(R"({"long":"abcdefgh)");
  EXPECT_THROW(small.Next(), ParseError);
}

}  // namespace
}  // namespace sluice::api
