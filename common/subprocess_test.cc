#include "common/subprocess.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <cerrno>

namespace sluice {
namespace {

TEST(Subprocess, FeedsStdinAndCollectsBothOutputs) {
  std::string big(1 << 20, 'x');  // more than a pipe holds: written while output is read
  ProcessResult r = RunProcess({"sh", "-c", "wc -c; echo oops >&2; exit 3"}, big);
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.out, "1048576\n");
  EXPECT_EQ(r.err, "oops\n");
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.Describe(), "exit status 3: oops");
}

TEST(Subprocess, TimeoutKills) {
  ProcessResult r = RunProcess({"sleep", "10"}, {}, std::chrono::milliseconds(100));
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.signal, SIGKILL);
}

TEST(Subprocess, ToolThatStopsReadingDoesNotHang) {
  std::string big(1 << 20, 'x');
  ProcessResult r = RunProcess({"true"}, big);
  EXPECT_TRUE(r.ok());
}

TEST(Subprocess, FedPieceByPieceWhileTheToolAnswers) {
  // The tool echoes every line back: the pieces only fit if its output is read meanwhile.
  FedProcess p({"cat"}, std::chrono::seconds(30));
  const std::string line(999, 'y');
  for (int i = 0; i < 2000; ++i) EXPECT_TRUE(p.Write(line + "\n"));
  ProcessResult r = p.Finish();
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.out.size(), 2000u * 1000u);
}

TEST(Subprocess, WriteSaysWhenTheToolIsGone) {
  FedProcess p({"sh", "-c", "head -c 10 >/dev/null; echo gone >&2; exit 4"},
               std::chrono::seconds(30));
  bool delivered = true;
  for (int i = 0; i < 100 && delivered; ++i) delivered = p.Write(std::string(1 << 16, 'z'));
  EXPECT_FALSE(delivered);
  EXPECT_FALSE(p.Write("more"));
  ProcessResult r = p.Finish();
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_EQ(r.Describe(), "exit status 4: gone");
}

TEST(Subprocess, UnfinishedProcessIsKilledAndReaped) {
  pid_t pid = -1;
  {
    FedProcess p({"sleep", "30"}, std::chrono::seconds(60));
    EXPECT_TRUE(p.Write("x"));
    pid = p.pid();
    ASSERT_EQ(kill(pid, 0), 0);
  }
  EXPECT_EQ(kill(pid, 0), -1);  // killed and reaped: no such process any more
  EXPECT_EQ(errno, ESRCH);
}

TEST(Subprocess, MissingProgramThrows) {
  EXPECT_THROW(RunProcess({"/nonexistent/tool"}), std::runtime_error);
}

}  // namespace
}  // namespace sluice
