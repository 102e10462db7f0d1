#include "proxy/process_metrics.h"

#include <sys/resource.h>
#include <unistd.h>

#include <charconv>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace sluice::proxy {
namespace {

std::optional<std::string> ReadFile(const char* path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

template <typename T>
bool ParseNumber(std::string_view s, T& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

MetricFamilySnapshot Single(const char* name, const char* help, MetricType type, double v) {
  return {name, help, type, {MetricSample{"", {}, v}}};
}

void CollectProcess(std::vector<MetricFamilySnapshot>& out) {
  const long ticks_per_second = sysconf(_SC_CLK_TCK);
  const long page_size = sysconf(_SC_PAGESIZE);
  std::optional<std::string> stat_text = ReadFile("/proc/self/stat");
  std::optional<ProcStat> stat = stat_text ? ParseProcStat(*stat_text) : std::nullopt;
  if (stat && ticks_per_second > 0) {
    double tps = static_cast<double>(ticks_per_second);
    out.push_back(Single(
        "process_cpu_seconds_total", "User and system CPU time this process has used, in seconds.",
        MetricType::kCounter, static_cast<double>(stat->utime_ticks + stat->stime_ticks) / tps));
    out.push_back(Single("process_resident_memory_bytes",
                         "Resident set size of this process, in bytes.", MetricType::kGauge,
                         static_cast<double>(stat->rss_pages) * static_cast<double>(page_size)));
    out.push_back(Single("process_virtual_memory_bytes",
                         "Virtual address space size of this process, in bytes.",
                         MetricType::kGauge, static_cast<double>(stat->vsize_bytes)));
    std::optional<std::string> system_stat = ReadFile("/proc/stat");
    std::optional<uint64_t> boot = system_stat ? ParseBootTime(*system_stat) : std::nullopt;
    if (boot) {
      out.push_back(
          Single("process_start_time_seconds",
                 "When this process started, in seconds since the Unix epoch.", MetricType::kGauge,
                 static_cast<double>(*boot) + static_cast<double>(stat->start_ticks) / tps));
    }
  }
  std::error_code ec;
  size_t fds = 0;
  for (std::filesystem::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end;
       it.increment(ec)) {
    ++fds;
  }
  if (!ec) {
    out.push_back(Single("process_open_fds", "File descriptors this process holds open.",
                         MetricType::kGauge, static_cast<double>(fds)));
  }
  // RLIM_INFINITY is the all-ones value, which is what the Go client reports for "unlimited".
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0) {
    out.push_back(Single("process_max_fds", "Soft limit on the file descriptors of this process.",
                         MetricType::kGauge, static_cast<double>(lim.rlim_cur)));
  }
  if (getrlimit(RLIMIT_AS, &lim) == 0) {
    out.push_back(Single("process_virtual_memory_max_bytes",
                         "Soft limit on the virtual address space of this process, in bytes.",
                         MetricType::kGauge, static_cast<double>(lim.rlim_cur)));
  }
}

}  // namespace

std::optional<ProcStat> ParseProcStat(std::string_view text) {
  // "pid (comm) state ppid ...": comm may contain anything, so cut at the last ')'.
  size_t close = text.rfind(')');
  if (close == std::string_view::npos) return std::nullopt;
  std::vector<std::string_view> fields;  // fields[0] is field 3 (state) of proc(5)
  std::string_view rest = text.substr(close + 1);
  while (!rest.empty()) {
    size_t start = rest.find_first_not_of(" \n");
    if (start == std::string_view::npos) break;
    rest.remove_prefix(start);
    size_t end = rest.find_first_of(" \n");
    fields.push_back(rest.substr(0, end));
    rest.remove_prefix(end == std::string_view::npos ? rest.size() : end);
  }
  if (fields.size() < 22) return std::nullopt;
  ProcStat s;
  // proc(5) fields 14 utime, 15 stime, 22 starttime, 23 vsize, 24 rss.
  if (!ParseNumber(fields[11], s.utime_ticks) || !ParseNumber(fields[12], s.stime_ticks) ||
      !ParseNumber(fields[19], s.start_ticks) || !ParseNumber(fields[20], s.vsize_bytes) ||
      !ParseNumber(fields[21], s.rss_pages)) {
    return std::nullopt;
  }
  return s;
}

std::optional<uint64_t> ParseBootTime(std::string_view proc_stat) {
  size_t pos = 0;
  while (pos < proc_stat.size()) {
    size_t end = proc_stat.find('\n', pos);
    std::string_view line =
        proc_stat.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
    if (line.substr(0, 6) == "btime ") {
      uint64_t v = 0;
      if (ParseNumber(line.substr(6), v)) return v;
      return std::nullopt;
    }
    if (end == std::string_view::npos) break;
    pos = end + 1;
  }
  return std::nullopt;
}

void RegisterProcessMetrics(Registry& registry) {
  registry.AddCollector({"process_cpu_seconds_total", "process_resident_memory_bytes",
                         "process_virtual_memory_bytes", "process_start_time_seconds",
                         "process_open_fds", "process_max_fds", "process_virtual_memory_max_bytes"},
                        CollectProcess);
}

}  // namespace sluice::proxy
