#include "common/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

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

ProcessResult RunProcess(const std::vector<std::string>& argv, std::string_view input,
                         std::chrono::milliseconds timeout) {
  if (argv.empty()) throw std::invalid_argument("RunProcess: empty argv");
  const std::string& what = argv[0];
  UniqueFd in_r, in_w, out_r, out_w, err_r, err_w;
  MakePipe(in_r, in_w, what);
  MakePipe(out_r, out_w, what);
  MakePipe(err_r, err_w, what);

  SpawnActions actions;
  posix_spawn_file_actions_adddup2(actions.get(), in_r.get(), 0);
  posix_spawn_file_actions_adddup2(actions.get(), out_w.get(), 1);
  posix_spawn_file_actions_adddup2(actions.get(), err_w.get(), 2);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  const int rc = posix_spawnp(&pid, what.c_str(), actions.get(), nullptr, args.data(), environ);
  if (rc != 0) throw std::runtime_error("cannot run " + what + ": " + std::strerror(rc));
  in_r = UniqueFd();
  out_w = UniqueFd();
  err_w = UniqueFd();

  ProcessResult result;
  size_t written = 0;
  if (input.empty()) in_w = UniqueFd();
  for (int fd : {in_w.get(), out_r.get(), err_r.get()}) {
    if (fd >= 0) fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  char buf[65536];
  while (out_r.valid() || err_r.valid()) {
    pollfd fds[3];
    nfds_t n = 0;
    if (in_w.valid()) fds[n++] = {in_w.get(), POLLOUT, 0};
    if (out_r.valid()) fds[n++] = {out_r.get(), POLLIN, 0};
    if (err_r.valid()) fds[n++] = {err_r.get(), POLLIN, 0};
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      result.timed_out = true;
      kill(pid, SIGKILL);
      break;
    }
    const int ready = poll(fds, n, static_cast<int>(std::min<int64_t>(left.count(), 1000)));
    if (ready < 0 && errno != EINTR) break;
    for (nfds_t i = 0; i < n && ready > 0; ++i) {
      if (fds[i].revents == 0) continue;
      if (fds[i].fd == in_w.get()) {
        ssize_t k = WriteNoSigpipe(in_w.get(), input.data() + written, input.size() - written);
        if (k > 0) written += static_cast<size_t>(k);
        if ((k < 0 && errno != EAGAIN && errno != EINTR) || written == input.size()) {
          in_w = UniqueFd();  // done, or the tool stopped reading (EPIPE): EOF for it
        }
        continue;
      }
      UniqueFd& src = fds[i].fd == out_r.get() ? out_r : err_r;
      std::string& dst = fds[i].fd == out_r.get() ? result.out : result.err;
      ssize_t k = read(src.get(), buf, sizeof buf);
      if (k > 0) {
        dst.append(buf, static_cast<size_t>(k));
      } else if (k == 0 || (errno != EAGAIN && errno != EINTR)) {
        src = UniqueFd();
      }
    }
  }
  in_w = UniqueFd();
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.signal = WTERMSIG(status);
  }
  return result;
}

}  // namespace sluice
