#include "dataplane/nft/netns_testing.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <stdexcept>

namespace sluice::nft::testing {
namespace {

std::string Errno(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

void BringUpLoopback() {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error(Errno("socket"));
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  if (ioctl(fd, SIOCGIFFLAGS, &ifr) == 0) {
    ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
    ioctl(fd, SIOCSIFFLAGS, &ifr);
  }
  close(fd);
}

// Reads both pipes to the end without letting either fill up.
void Drain(int out_fd, int err_fd, std::string& out, std::string& err) {
  pollfd fds[2] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}};
  std::string* sinks[2] = {&out, &err};
  int open_count = 2;
  char buf[4096];
  while (open_count > 0) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error(Errno("poll"));
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      ssize_t n = read(fds[i].fd, buf, sizeof(buf));
      if (n > 0) {
        sinks[i]->append(buf, static_cast<size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        fds[i].fd = -1;
        --open_count;
      }
    }
  }
}

std::string RunWithSetup(const std::vector<std::string>& argv, int netns_fd) {
  int out[2], err[2];
  if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) {
    throw std::runtime_error(Errno("pipe"));
  }
  pid_t pid = fork();
  if (pid < 0) throw std::runtime_error(Errno("fork"));
  if (pid == 0) {
    dup2(out[1], STDOUT_FILENO);
    dup2(err[1], STDERR_FILENO);
    if (netns_fd >= 0 && setns(netns_fd, CLONE_NEWNET) != 0) {
      std::fprintf(stderr, "setns: %s\n", std::strerror(errno));
      _exit(126);
    }
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    std::fprintf(stderr, "exec %s: %s\n", args[0], std::strerror(errno));
    _exit(127);
  }
  close(out[1]);
  close(err[1]);
  std::string stdout_text, stderr_text;
  Drain(out[0], err[0], stdout_text, stderr_text);
  close(out[0]);
  close(err[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::string command;
    for (const std::string& a : argv) command += (command.empty() ? "" : " ") + a;
    throw std::runtime_error("`" + command + "` failed (status " + std::to_string(status) +
                             "): " + stderr_text);
  }
  return stdout_text;
}

}  // namespace

::testing::AssertionResult InFreshNetns(const std::function<void()>& body, int timeout_seconds) {
  std::fflush(stdout);
  std::fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) return ::testing::AssertionFailure() << Errno("fork");
  if (pid == 0) {
    int code = 0;
    alarm(static_cast<unsigned>(timeout_seconds));
    try {
      if (unshare(CLONE_NEWNET) != 0) throw std::runtime_error(Errno("unshare(CLONE_NEWNET)"));
      // Never run a body that might write sysctls or rules in the parent's namespace.
      struct stat mine = {};
      struct stat parents = {};
      if (stat("/proc/thread-self/ns/net", &mine) != 0 ||
          stat(("/proc/" + std::to_string(getppid()) + "/ns/net").c_str(), &parents) != 0 ||
          mine.st_ino == parents.st_ino) {
        std::fprintf(stderr, "not in a fresh network namespace; refusing to run the test body\n");
        _exit(3);
      }
      BringUpLoopback();
      body();
      if (::testing::Test::HasFailure()) code = 1;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "exception in the test netns: %s\n", e.what());
      code = 2;
    }
#if defined(__SANITIZE_ADDRESS__)
    // _exit skips LeakSanitizer's exit-time check, and the code under test ran here.
    if (code == 0 && __lsan_do_recoverable_leak_check() != 0) code = 4;
#endif
    std::fflush(stdout);
    std::fflush(stderr);
    _exit(code);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return ::testing::AssertionSuccess();
  if (WIFSIGNALED(status)) {
    return ::testing::AssertionFailure() << "netns child killed by signal " << WTERMSIG(status)
                                         << (WTERMSIG(status) == SIGALRM ? " (timeout)" : "");
  }
  return ::testing::AssertionFailure()
         << "netns child failed with exit status " << WEXITSTATUS(status)
         << " (its failures are printed above)";
}

std::string RunCommand(const std::vector<std::string>& argv) { return RunWithSetup(argv, -1); }

Netns Netns::Create() {
  Netns previous = Current();
  if (unshare(CLONE_NEWNET) != 0) throw std::runtime_error(Errno("unshare(CLONE_NEWNET)"));
  Netns created = Current();
  if (setns(previous.fd(), CLONE_NEWNET) != 0) throw std::runtime_error(Errno("setns back"));
  {
    Scope inside(created);
    BringUpLoopback();
  }
  return created;
}

Netns Netns::Current() {
  int fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error(Errno("open /proc/thread-self/ns/net"));
  return Netns(fd);
}

Netns::Netns(Netns&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }

Netns& Netns::operator=(Netns&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) close(fd_);
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

Netns::~Netns() {
  if (fd_ >= 0) close(fd_);
}

std::string Netns::Path() const {
  return "/proc/" + std::to_string(getpid()) + "/fd/" + std::to_string(fd_);
}

std::string Netns::RunCommand(const std::vector<std::string>& argv) const {
  return RunWithSetup(argv, fd_);
}

Netns::Scope::Scope(const Netns& target) {
  previous_fd_ = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (previous_fd_ < 0) throw std::runtime_error(Errno("open /proc/thread-self/ns/net"));
  if (setns(target.fd(), CLONE_NEWNET) != 0) {
    close(previous_fd_);
    throw std::runtime_error(Errno("setns"));
  }
}

Netns::Scope::~Scope() {
  if (setns(previous_fd_, CLONE_NEWNET) != 0) {
    std::fprintf(stderr, "setns back: %s\n", std::strerror(errno));
    std::abort();  // continuing in the wrong namespace could touch the host's
  }
  close(previous_fd_);
}

namespace {

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {
    if (fd_ < 0) throw std::runtime_error(Errno("socket"));
  }
  ~Fd() { close(fd_); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

sockaddr_in Endpoint(const std::string& ip, uint16_t port) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  if (inet_pton(AF_INET, ip.c_str(), &sa.sin_addr) != 1) {
    throw std::invalid_argument("bad IPv4 address " + ip);
  }
  return sa;
}

bool Readable(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  return poll(&p, 1, timeout_ms) == 1;
}

std::string Text(const sockaddr_in& sa) {
  char text[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &sa.sin_addr, text, sizeof(text));
  return text;
}

}  // namespace

std::string UdpSourceSeen(const Netns& from, const Netns& at, const std::string& to_ip,
                          uint16_t port, int timeout_ms) {
  const sockaddr_in target = Endpoint(to_ip, port);
  auto make = [](const Netns& ns) {
    Netns::Scope scope(ns);  // a socket belongs to the namespace it was made in
    return std::make_unique<Fd>(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  };
  std::unique_ptr<Fd> receiver = make(at);
  if (bind(receiver->get(), reinterpret_cast<const sockaddr*>(&target), sizeof(target)) != 0) {
    throw std::runtime_error(Errno("bind"));
  }
  std::unique_ptr<Fd> sender = make(from);
  if (sendto(sender->get(), "probe", 5, 0, reinterpret_cast<const sockaddr*>(&target),
             sizeof(target)) != 5) {
    throw std::runtime_error(Errno("sendto"));
  }
  if (!Readable(receiver->get(), timeout_ms)) return "";
  char buf[16];
  sockaddr_in source{};
  socklen_t len = sizeof(source);
  if (recvfrom(receiver->get(), buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&source), &len) <
      0) {
    throw std::runtime_error(Errno("recvfrom"));
  }
  return Text(source);
}

std::string TcpSourceSeen(const Netns& from, const Netns& at, const std::string& to_ip,
                          uint16_t port, int timeout_ms) {
  const sockaddr_in target = Endpoint(to_ip, port);
  auto make = [](const Netns& ns) {
    Netns::Scope scope(ns);
    return std::make_unique<Fd>(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  };
  std::unique_ptr<Fd> listener = make(at);
  int one = 1;
  setsockopt(listener->get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(listener->get(), reinterpret_cast<const sockaddr*>(&target), sizeof(target)) != 0 ||
      listen(listener->get(), 4) != 0) {
    throw std::runtime_error(Errno("bind/listen"));
  }
  std::unique_ptr<Fd> client = make(from);
  // The kernel completes the handshake for the listener, so a blocking connect in this same
  // thread is fine; SO_SNDTIMEO bounds it.
  timeval timeout{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  setsockopt(client->get(), SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
  if (connect(client->get(), reinterpret_cast<const sockaddr*>(&target), sizeof(target)) != 0) {
    return "";
  }
  if (!Readable(listener->get(), timeout_ms)) return "";
  sockaddr_in peer{};
  socklen_t len = sizeof(peer);
  Fd accepted(accept4(listener->get(), reinterpret_cast<sockaddr*>(&peer), &len, SOCK_CLOEXEC));
  return Text(peer);
}

std::string NftJson() { return RunCommand({"nft", "-j", "list", "ruleset"}); }
std::string NftText() { return RunCommand({"nft", "list", "ruleset"}); }

}  // namespace sluice::nft::testing
