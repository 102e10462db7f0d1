#include "common/subprocess.h"

#include <gtest/gtest.h>

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

TEST(Subprocess, MissingProgramThrows) {
  EXPECT_THROW(RunProcess({"/nonexistent/tool"}), std::runtime_error);
}

}  // namespace
}  // namespace sluice
