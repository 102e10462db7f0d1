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

// --- As the API server writes it: one event per line, in chunks that ignore lines ----------

TEST(WatchStreamFramer, WholeLinesInOneChunk) {
  WatchStreamFramer f;
  f.Feed("{\"a\":1}\n{\"b\":2}\n");
  EXPECT_EQ(Drain(f), (std::vector<std::string>{"{\"a\":1}", "{\"b\":2}"}));
  EXPECT_TRUE(f.idle());
  EXPECT_EQ(f.pending(), "");
}

TEST(WatchStreamFramer, LinesSplitAcrossChunksAtEveryByte) {
  const std::string stream = "{\"type\":\"ADDED\"}\r\n\n{\"type\":\"MODIFIED\"}\n{\"x\":3}\n";
  for (size_t cut1 = 0; cut1 <= stream.size(); ++cut1) {
    for (size_t cut2 = cut1; cut2 <= stream.size(); cut2 += 3) {
      WatchStreamFramer f;
      std::vector<std::string> out;
      for (auto part :
           {stream.substr(0, cut1), stream.substr(cut1, cut2 - cut1), stream.substr(cut2)}) {
        f.Feed(part);
        for (auto& t : Drain(f)) out.push_back(t);
      }
      ASSERT_EQ(out, (std::vector<std::string>{"{\"type\":\"ADDED\"}", "{\"type\":\"MODIFIED\"}",
                                               "{\"x\":3}"}))
          << cut1 << " " << cut2;
      EXPECT_TRUE(f.idle());
    }
  }
}

TEST(WatchStreamFramer, TruncatedLastEventStaysPending) {
  WatchStreamFramer f;
  f.Feed("{\"a\":1}\n{\"type\":\"ADD");
  EXPECT_EQ(Drain(f).size(), 1u);
  EXPECT_EQ(f.pending(), "{\"type\":\"ADD");
  EXPECT_FALSE(f.idle());
}

TEST(WatchStreamFramer, StopsWhereTheCallerStops) {
  WatchStreamFramer f;
  f.Feed("{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n");
  EXPECT_EQ(f.Next(), "{\"a\":1}");
  // The rest is untouched until asked for.
  EXPECT_EQ(f.Next(), "{\"b\":2}");
}

// A line end inside an event: the write was cut and the next event follows. Brace counting alone
// would take the next events as members of the cut one and never end it.
TEST(WatchStreamFramer, LineEndInsideAnEventIsMalformed) {
  WatchStreamFramer f;
  f.Feed("{\"type\":\"MODIFIED\",\"object\":{\"kind\":\"Service\",\"metadata\":{\"name\":\n");
  f.Feed("{\"type\":\"ADDED\",\"object\":{}}\n");
  try {
    f.Next();
    FAIL();
  } catch (const ParseError& e) {
    EXPECT_STREQ(e.what(),
                 "watch stream: malformed JSON: the line ends inside an event: "
                 "{\"type\":\"MODIFIED\",\"object\":{\"kind\":\"Service\",\"metadata\":{\"name\":");
  }
  WatchStreamFramer in_string;  // raw newlines are not valid in JSON strings either
  in_string.Feed("{\"a\":\"x\ny\"}");
  EXPECT_THROW(in_string.Next(), ParseError);
}

TEST(WatchStreamFramer, EventTooLong) {
  WatchStreamFramer f(8);
  f.Feed("{\"a\":12}\n");  // 8 bytes: fits
  EXPECT_EQ(f.Next(), "{\"a\":12}");
  f.Feed("{\"a\":1");
  EXPECT_FALSE(f.Next());
  f.Feed("234}");
  EXPECT_THROW(f.Next(), ParseError);
  WatchStreamFramer g(8);
  g.Feed("{\"a\":123}\n");  // complete in one chunk, still too long
  EXPECT_THROW(g.Next(), ParseError);
}

}  // namespace
}  // namespace sluice::api
