// klog-style logging to stderr: "I1125 14:50:25.123456 <pid> file:line] message".
#pragma once

#include <sstream>
#include <string_view>

namespace sluice::log {

enum class Level { kInfo, kWarning, kError };

// Lines below this level are dropped (default: info).
void SetMinLevel(Level level);
// klog's -v: SLOG_V(n) info lines are written only when n <= the verbosity (default 0).
void SetVerbosity(int verbosity);
bool VerbosityAtLeast(int level);
void Write(Level level, const char* file, int line, std::string_view message);

class Line {
 public:
  Line(Level level, const char* file, int line) : level_(level), file_(file), line_(line) {}
  ~Line() { Write(level_, file_, line_, stream_.str()); }
  template <typename T>
  Line& operator<<(const T& value) {
    stream_ << value;
    return *this;
  }

 private:
  Level level_;
  const char* file_;
  int line_;
  std::ostringstream stream_;
};

}  // namespace sluice::log

#define SLOG_INFO ::sluice::log::Line(::sluice::log::Level::kInfo, __FILE__, __LINE__)
#define SLOG_WARN ::sluice::log::Line(::sluice::log::Level::kWarning, __FILE__, __LINE__)
#define SLOG_V(n)                            \
  if (!::sluice::log::VerbosityAtLeast(n)) { \
  } else                                     \
    SLOG_INFO
#define SLOG_ERROR ::sluice::log::Line(::sluice::log::Level::kError, __FILE__, __LINE__)
