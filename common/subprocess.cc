#include "common/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "common/unique_fd.h"

extern char** environ;

namespace sluice {

namespace {

class SpawnActions {
 public:
  SpawnActions() { posix_spawn_file_actions_init(&actions_); }
  ~SpawnActions() { posix_spawn_file_actions_destroy(&actions_); }
  SpawnActions(const SpawnActions&) = delete;
  SpawnActions& operator=(const SpawnActions&) = delete;
  posix_spawn_file_actions_t* get() { return &actions_; }

 private:
  posix_spawn_file_actions_t actions_;
};

void MakePipe(UniqueFd& read_end, UniqueFd& write_end, const std::string& what) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    throw std::runtime_error(what + ": pipe: " + std::strerror(errno));
  }
  read_end = UniqueFd(fds[0]);
  write_end = UniqueFd(fds[1]);
}

std::string LastLines(const std::string& text, size_t max_chars) {
  std::string t = text;
  while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) t.pop_back();
  if (t.size() > max_chars) t = "..." + t.substr(t.size() - max_chars);
  return t;
}

// write() to a pipe whose reader is gone, as EPIPE rather than a SIGPIPE that kills the caller:
// the signal is blocked in this thread for the call and a pending one consumed.
ssize_t WriteNoSigpipe(int fd, const char* data, size_t size) {
  sigset_t pipe_only, old;
  sigemptyset(&pipe_only);
  sigaddset(&pipe_only, SIGPIPE);
  sigset_t pending;
  sigpending(&pending);
  const bool was_pending = sigismember(&pending, SIGPIPE) == 1;
  pthread_sigmask(SIG_BLOCK, &pipe_only, &old);
  ssize_t k = write(fd, data, size);
  const int saved = errno;
  if (k < 0 && saved == EPIPE && !was_pending) {
    timespec zero{0, 0};
    while (sigtimedwait(&pipe_only, nullptr, &zero) < 0 && errno == EINTR) {
    }
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  errno = saved;
  return k;
}

}  // namespace

std::string ProcessResult::Describe() const {
  if (timed_out) return "killed after the timeout";
  std::string text = signal ? "killed by signal " + std::to_string(signal)
                            : "exit status " + std::to_string(exit_code);
  const std::string detail = LastLines(err.empty() ? out : err, 600);
  if (!detail.empty()) text += ": " + detail;
  return text;
}

FedProcess::FedProcess(const std::vector<std::string>& argv, const ProcessOptions& options)
    : deadline_(std::chrono::steady_clock::now() + options.timeout),
      max_stdout_(options.max_stdout),
      max_stderr_(options.max_stderr) {
  if (argv.empty()) throw std::invalid_argument("RunProcess: empty argv");
  const std::string& what = argv[0];
  UniqueFd in_r, out_w, err_w;
  MakePipe(in_r, in_, what);
  MakePipe(out_, out_w, what);
  MakePipe(err_, err_w, what);

  SpawnActions actions;
  posix_spawn_file_actions_adddup2(actions.get(), in_r.get(), 0);
  posix_spawn_file_actions_adddup2(actions.get(), out_w.get(), 1);
  posix_spawn_file_actions_adddup2(actions.get(), err_w.get(), 2);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<char*> env;
  if (options.env) {
    for (const auto& e : *options.env) env.push_back(const_cast<char*>(e.c_str()));
    env.push_back(nullptr);
  }
  // posix_spawnp looks a name up in PATH and takes a path with a slash as it is.
  const int rc = posix_spawnp(&pid_, what.c_str(), actions.get(), nullptr, args.data(),
                              options.env ? env.data() : environ);
  if (rc != 0) throw SpawnError("cannot run " + what + ": " + std::strerror(rc), rc);
  for (int fd : {in_.get(), out_.get(), err_.get()}) {
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  }
  // A larger pipe lets a fast producer get further ahead of a slow reader (best effort: the
  // kernel caps it at fs.pipe-max-size).
  fcntl(in_.get(), F_SETPIPE_SZ, 1 << 20);
}

FedProcess::~FedProcess() {
  if (finished_) return;
  kill(pid_, SIGKILL);
  while (waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
  }
}

bool FedProcess::Write(std::string_view data) {
  if (!in_.valid()) return false;
  Pump(data);
  return in_.valid();
}

void FedProcess::Pump(std::string_view data) {
  size_t written = 0;
  char buf[65536];
  const bool writing = in_.valid();
  while (writing ? in_.valid() && written < data.size() : out_.valid() || err_.valid()) {
    pollfd fds[3];
    nfds_t n = 0;
    if (in_.valid()) fds[n++] = {in_.get(), POLLOUT, 0};
    if (out_.valid()) fds[n++] = {out_.get(), POLLIN, 0};
    if (err_.valid()) fds[n++] = {err_.get(), POLLIN, 0};
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline_ - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      result_.timed_out = true;
      kill(pid_, SIGKILL);
      in_ = UniqueFd();
      out_ = UniqueFd();
      err_ = UniqueFd();
      return;
    }
    const int ready = poll(fds, n, static_cast<int>(std::min<int64_t>(left.count(), 1000)));
    if (ready < 0 && errno != EINTR) {
      in_ = UniqueFd();
      out_ = UniqueFd();
      err_ = UniqueFd();
      return;
    }
    for (nfds_t i = 0; i < n && ready > 0; ++i) {
      if (fds[i].revents == 0) continue;
      if (fds[i].fd == in_.get()) {
        ssize_t k = WriteNoSigpipe(in_.get(), data.data() + written, data.size() - written);
        if (k > 0) written += static_cast<size_t>(k);
        // The tool stopped reading (EPIPE): no more input for it.
        if (k < 0 && errno != EAGAIN && errno != EINTR) in_ = UniqueFd();
        continue;
      }
      const bool is_out = fds[i].fd == out_.get();
      UniqueFd& src = is_out ? out_ : err_;
      std::string& dst = is_out ? result_.out : result_.err;
      const size_t limit = is_out ? max_stdout_ : max_stderr_;
      ssize_t k = read(src.get(), buf, sizeof buf);
      if (k > 0) {
        if (dst.size() < limit) {
          dst.append(buf, std::min(static_cast<size_t>(k), limit - dst.size()));
        }
      } else if (k == 0 || (errno != EAGAIN && errno != EINTR)) {
        src = UniqueFd();
      }
    }
  }
}

ProcessResult FedProcess::Finish() {
  if (finished_) throw std::logic_error("FedProcess::Finish called twice");
  in_ = UniqueFd();  // EOF for the tool
  Pump({});
  int status = 0;
  while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  finished_ = true;
  if (WIFEXITED(status)) {
    result_.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result_.signal = WTERMSIG(status);
  }
  return std::move(result_);
}

ProcessResult RunProcess(const std::vector<std::string>& argv, std::string_view input,
                         const ProcessOptions& options) {
  FedProcess process(argv, options);
  if (!input.empty()) process.Write(input);
  return process.Finish();
}

ProcessResult RunProcess(const std::vector<std::string>& argv, std::string_view input,
                         std::chrono::milliseconds timeout) {
  return RunProcess(argv, input, ProcessOptions{.timeout = timeout});
}

}  // namespace sluice
