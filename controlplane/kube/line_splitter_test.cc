#include "controlplane/kube/line_splitter.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace sluice::kube {
namespace {

struct Collector {
  std::vector<std::string> lines;
  std::function<bool(std::string_view)> fn = [this](std::string_view l) {
    lines.emplace_back(l);
    return true;
  };
};

TEST(LineSplitterTest, WholeLinesInOneChunk) {
  LineSplitter s;
  Collector c;
  EXPECT_EQ(s.Feed("{\"a\":1}\n{\"b\":2}\n", c.fn), LineSplitter::Result::kOk);
  EXPECT_EQ(c.lines, (std::vector<std::string>{"{\"a\":1}", "{\"b\":2}"}));
  EXPECT_TRUE(s.pending().empty());
}

TEST(LineSplitterTest, LinesSplitAcrossChunksAtEveryByte) {
  const std::string stream = "{\"type\":\"ADDED\"}\r\n\n{\"type\":\"MODIFIED\"}\n{\"x\":3}\n";
  for (size_t cut1 = 0; cut1 <= stream.size(); ++cut1) {
    for (size_t cut2 = cut1; cut2 <= stream.size(); cut2 += 3) {
      LineSplitter s;
      Collector c;
      s.Feed(stream.substr(0, cut1), c.fn);
      s.Feed(stream.substr(cut1, cut2 - cut1), c.fn);
      s.Feed(stream.substr(cut2), c.fn);
      ASSERT_EQ(c.lines, (std::vector<std::string>{"{\"type\":\"ADDED\"}",
                                                   "{\"type\":\"MODIFIED\"}", "{\"x\":3}"}))
          << cut1 << " " << cut2;
      EXPECT_TRUE(s.pending().empty());
    }
  }
}

TEST(LineSplitterTest, TruncatedLastLineStaysPending) {
  LineSplitter s;
  Collector c;
  s.Feed("{\"a\":1}\n{\"type\":\"ADD", c.fn);
  EXPECT_EQ(c.lines.size(), 1u);
  EXPECT_EQ(s.pending(), "{\"type\":\"ADD");
}

TEST(LineSplitterTest, StopsWhenAsked) {
  LineSplitter s;
  std::vector<std::string> seen;
  auto fn = [&](std::string_view l) {
    seen.emplace_back(l);
    return false;
  };
  EXPECT_EQ(s.Feed("a\nb\nc\n", fn), LineSplitter::Result::kStopped);
  EXPECT_EQ(seen, std::vector<std::string>{"a"});
}

TEST(LineSplitterTest, LineTooLong) {
  LineSplitter s(8);
  Collector c;
  EXPECT_EQ(s.Feed("12345678\n", c.fn), LineSplitter::Result::kOk);
  EXPECT_EQ(s.Feed("12345", c.fn), LineSplitter::Result::kOk);
  EXPECT_EQ(s.Feed("6789", c.fn), LineSplitter::Result::kTooLong);
  LineSplitter t(8);
  EXPECT_EQ(t.Feed("123456789\n", c.fn), LineSplitter::Result::kTooLong);
}

}  // namespace
}  // namespace sluice::kube
