// The standard process_* metrics of Prometheus clients, read from /proc at scrape time:
// process_cpu_seconds_total, process_resident_memory_bytes, process_virtual_memory_bytes,
// process_virtual_memory_max_bytes, process_start_time_seconds, process_open_fds,
// process_max_fds. Values the kernel cannot give are left out of that scrape.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "proxy/metrics.h"

namespace sluice::proxy {

// The fields of /proc/<pid>/stat the metrics need (units as the kernel gives them).
struct ProcStat {
  uint64_t utime_ticks = 0;
  uint64_t stime_ticks = 0;
  uint64_t start_ticks = 0;  // since boot
  uint64_t vsize_bytes = 0;
  int64_t rss_pages = 0;
};

// Parses /proc/<pid>/stat; the command name may hold spaces and parentheses.
std::optional<ProcStat> ParseProcStat(std::string_view text);
// The "btime" line of /proc/stat: boot time in seconds since the epoch.
std::optional<uint64_t> ParseBootTime(std::string_view proc_stat);

// Adds a collector producing the process_* families to `registry`.
void RegisterProcessMetrics(Registry& registry);

}  // namespace sluice::proxy
