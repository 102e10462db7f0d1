// Test helpers for kernel tests: fresh network namespaces that vanish with the test process,
// and running the `ip`/`nft`/`iptables` tools inside them. Never touches the host namespace.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace sluice::nft::testing {

// Forks; the child unshares a new network namespace (loopback up), runs `body` and exits. A gtest
// failure, an exception or a timeout in the child fails the returned assertion. The namespace
// dies with the child, so nothing is left behind whatever happens.
::testing::AssertionResult InFreshNetns(const std::function<void()>& body,
                                        int timeout_seconds = 60);
// InFreshNetns, failing the current test (at the caller's line) if the child failed.
#define SLUICE_IN_FRESH_NETNS(...)                         \
  do {                                                     \
    ::testing::AssertionResult netns_child_result =        \
        ::sluice::nft::testing::InFreshNetns(__VA_ARGS__); \
    EXPECT_TRUE(netns_child_result);                       \
  } while (0)

// Runs argv[0] (PATH lookup) in the calling thread's netns and returns its stdout; throws
// std::runtime_error with its stderr on a non-zero exit.
std::string RunCommand(const std::vector<std::string>& argv);

// A network namespace held open by an fd.
class Netns {
 public:
  // A new namespace; the calling thread stays where it was.
  static Netns Create();
  static Netns Current();
  Netns(Netns&& other) noexcept;
  Netns& operator=(Netns&& other) noexcept;
  Netns(const Netns&) = delete;
  Netns& operator=(const Netns&) = delete;
  ~Netns();

  int fd() const { return fd_; }
  // "/proc/<pid>/fd/<fd>", which `ip link set ... netns <path>` accepts.
  std::string Path() const;
  // Runs a command inside this namespace (in a forked child).
  std::string RunCommand(const std::vector<std::string>& argv) const;

  // Moves the calling thread into the namespace until the scope ends.
  class Scope {
   public:
    explicit Scope(const Netns& target);
    ~Scope();
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    int previous_fd_;
  };

 private:
  explicit Netns(int fd) : fd_(fd) {}
  int fd_ = -1;
};

// Probes with real packets (IPv4). A socket made in `from` sends to `to_ip:port`, where a socket
// made in `at` listens; returns the source address the listener saw, or "" if nothing arrived
// (or no connection was accepted) within `timeout_ms`. Each call uses fresh sockets, so a fresh
// conntrack entry.
std::string UdpSourceSeen(const Netns& from, const Netns& at, const std::string& to_ip,
                          uint16_t port, int timeout_ms = 2000);
std::string TcpSourceSeen(const Netns& from, const Netns& at, const std::string& to_ip,
                          uint16_t port, int timeout_ms = 2000);

// `nft -j list ruleset` and `nft list ruleset` of the calling thread's netns.
std::string NftJson();
std::string NftText();

}  // namespace sluice::nft::testing
