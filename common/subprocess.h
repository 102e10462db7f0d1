// Running a tool and feeding it on a pipe: argv[0] looked up in PATH, `input` written to its
// stdin while its stdout and stderr are collected, killed after a timeout.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

namespace sluice {

struct ProcessResult {
  int exit_code = -1;   // -1 when it died of a signal
  int signal = 0;       // the signal it died of, 0 otherwise
  bool timed_out = false;
  std::string out;
  std::string err;

  bool ok() const { return exit_code == 0; }
  // "exit status 1: <stderr's last lines>", "killed after 60 s", "signal 11"
  std::string Describe() const;
};

// Throws std::runtime_error when the process cannot be started (no such program, no fds); its
// failures are in the result.
ProcessResult RunProcess(const std::vector<std::string>& argv, std::string_view input = {},
                         std::chrono::milliseconds timeout = std::chrono::seconds(60));

}  // namespace sluice
