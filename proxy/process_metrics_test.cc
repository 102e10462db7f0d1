#include "proxy/process_metrics.h"

#include <gtest/gtest.h>
#include <sys/resource.h>

#include <chrono>
#include <map>

namespace sluice::proxy {
namespace {

TEST(ProcessMetricsTest, ParsesProcStatWithAnAwkwardCommandName) {
  // proc(5) fields 1..24; the command holds spaces and a ") (" to fool a naive split.
  const std::string line =
      "4242 (sluice ) (proxy) S 1 4242 4242 0 -1 4194560 900 0 0 0 "
      "250 75 0 0 20 0 9 0 123456 987654321 2048 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 "
      "17 1 0 0 0 0 0\n";
  std::optional<ProcStat> s = ParseProcStat(line);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->utime_ticks, 250u);
  EXPECT_EQ(s->stime_ticks, 75u);
  EXPECT_EQ(s->start_ticks, 123456u);
  EXPECT_EQ(s->vsize_bytes, 987654321u);
  EXPECT_EQ(s->rss_pages, 2048);
  EXPECT_FALSE(ParseProcStat("4242 (x) S 1 2 3"));
  EXPECT_FALSE(ParseProcStat("no parenthesis"));
}

TEST(ProcessMetricsTest, ParsesBootTime) {
  EXPECT_EQ(ParseBootTime("cpu  1 2 3\nintr 5\nbtime 1700000000\nprocesses 9\n"), 1700000000u);
  EXPECT_FALSE(ParseBootTime("cpu 1\n"));
  EXPECT_FALSE(ParseBootTime("btime x\n"));
}

TEST(ProcessMetricsTest, ReportsThisProcess) {
  Registry r;
  RegisterProcessMetrics(r);
  std::map<std::string, MetricFamilySnapshot> got;
  for (auto& f : r.Gather()) got[f.name] = f;
  for (const char* name : {"process_cpu_seconds_total", "process_resident_memory_bytes",
                           "process_virtual_memory_bytes", "process_virtual_memory_max_bytes",
                           "process_start_time_seconds", "process_open_fds", "process_max_fds"}) {
    ASSERT_TRUE(got.count(name)) << name;
    ASSERT_EQ(got[name].samples.size(), 1u) << name;
  }
  EXPECT_EQ(got["process_cpu_seconds_total"].type, MetricType::kCounter);
  EXPECT_GE(got["process_cpu_seconds_total"].samples[0].value, 0);
  EXPECT_GT(got["process_resident_memory_bytes"].samples[0].value, 0);
  EXPECT_GE(got["process_virtual_memory_bytes"].samples[0].value,
            got["process_resident_memory_bytes"].samples[0].value);
  EXPECT_GE(got["process_open_fds"].samples[0].value, 3);  // stdin, stdout, stderr at least
  rlimit nofile{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &nofile), 0);
  EXPECT_EQ(got["process_max_fds"].samples[0].value, static_cast<double>(nofile.rlim_cur));
  // Started before now, and not before the epoch of this century.
  double now = UnixSeconds(std::chrono::system_clock::now());
  double start = got["process_start_time_seconds"].samples[0].value;
  EXPECT_LE(start, now + 1);
  EXPECT_GT(start, 946684800);
}

}  // namespace
}  // namespace sluice::proxy
