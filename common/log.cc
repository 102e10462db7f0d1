#include "common/log.h"

#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <ctime>

namespace sluice::log {
namespace {
std::atomic<Level> min_level{Level::kInfo};
std::atomic<int> verbosity{0};
}  // namespace

void SetMinLevel(Level level) { min_level.store(level); }
void SetVerbosity(int v) { verbosity.store(v); }
bool VerbosityAtLeast(int level) { return level <= verbosity.load(std::memory_order_relaxed); }

void Write(Level level, const char* file, int line, std::string_view message) {
  if (level < min_level.load()) return;
  static constexpr char kLetters[] = {'I', 'W', 'E'};
  timeval tv{};
  gettimeofday(&tv, nullptr);
  tm t{};
  localtime_r(&tv.tv_sec, &t);
  std::string_view base(file);
  if (auto slash = base.rfind('/'); slash != std::string_view::npos) base.remove_prefix(slash + 1);
  // One fprintf per line so concurrent writers do not interleave within a line.
  std::fprintf(stderr, "%c%02d%02d %02d:%02d:%02d.%06ld %d %.*s:%d] %.*s\n",
               kLetters[static_cast<int>(level)], t.tm_mon + 1, t.tm_mday, t.tm_hour, t.tm_min,
               t.tm_sec, static_cast<long>(tv.tv_usec), static_cast<int>(getpid()),
               static_cast<int>(base.size()), base.data(), line, static_cast<int>(message.size()),
               message.data());
}

}  // namespace sluice::log
