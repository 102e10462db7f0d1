// Running a tool and feeding it on a pipe: argv[0] looked up in PATH, the input written to its
// stdin while its stdout and stderr are collected, killed after a timeout.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "common/unique_fd.h"

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

// Thrown when a process cannot be started; code() is the errno posix_spawn gave.
class SpawnError : public std::runtime_error {
 public:
  SpawnError(const std::string& what, int code) : std::runtime_error(what), code_(code) {}
  int code() const { return code_; }

 private:
  int code_;
};

struct ProcessOptions {
  std::chrono::milliseconds timeout = std::chrono::seconds(60);
  // The child's environment, "NAME=value" each; nullopt: ours.
  std::optional<std::vector<std::string>> env;
  // Output kept per stream; what is beyond is read and dropped (a tool cannot fill our memory).
  size_t max_stdout = std::numeric_limits<size_t>::max();
  size_t max_stderr = std::numeric_limits<size_t>::max();
};

// A running tool fed piece by piece, so that input can be produced while the tool already reads
// it: Write() returns once its piece is in the pipe (collecting the tool's output meanwhile, so a
// tool that writes while it reads cannot stall us), Finish() closes the tool's stdin and waits.
// The timeout counts from the start. The constructor throws SpawnError when the process cannot be
// started (no such program) and std::runtime_error without fds; the process's own failures are
// in Finish()'s result.
class FedProcess {
 public:
  FedProcess(const std::vector<std::string>& argv, const ProcessOptions& options);
  FedProcess(const std::vector<std::string>& argv, std::chrono::milliseconds timeout)
      : FedProcess(argv, ProcessOptions{.timeout = timeout}) {}
  ~FedProcess();  // a process not finished is killed and reaped
  FedProcess(const FedProcess&) = delete;
  FedProcess& operator=(const FedProcess&) = delete;

  // False once input can no longer be delivered (the tool closed its stdin or exited, or the
  // timeout passed and it was killed): later pieces are dropped, Finish() says what happened.
  bool Write(std::string_view data);
  ProcessResult Finish();
  pid_t pid() const { return pid_; }

 private:
  // Polls until `data` is in the pipe (or cannot be), or, when stdin is closed, until both
  // outputs are.
  void Pump(std::string_view data);

  pid_t pid_ = -1;
  UniqueFd in_, out_, err_;
  std::chrono::steady_clock::time_point deadline_;
  size_t max_stdout_, max_stderr_;
  ProcessResult result_;
  bool finished_ = false;
};

// FedProcess with all of `input` at once.
ProcessResult RunProcess(const std::vector<std::string>& argv, std::string_view input,
                         const ProcessOptions& options);
ProcessResult RunProcess(const std::vector<std::string>& argv, std::string_view input = {},
                         std::chrono::milliseconds timeout = std::chrono::seconds(60));

}  // namespace sluice
