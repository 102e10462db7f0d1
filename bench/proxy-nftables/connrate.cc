// sluice-connrate: new TCP connections per second, the connection-rate figure of
// bench/proxy-nftables (README.md). Two roles, each run inside its own network namespace:
//
//   sluice-connrate server --port P [--threads N]
//       accepts on 0.0.0.0:P and closes at once (one SO_REUSEPORT listener per thread);
//       prints "listening" when ready and runs until killed.
//   sluice-connrate client --to IP:PORT --seconds S [--parallel N] [--from IP]
//       N threads, each a loop of socket + connect + close for S seconds; prints one JSON line
//       with the count and the rate.
//
// Both sides close with SO_LINGER 0 (a reset, no TIME_WAIT), so a client can open connections
// for as long as it likes without running out of ephemeral ports.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/unique_fd.h"

namespace sluice::bench {
namespace {

[[noreturn]] void Usage() {
  std::fprintf(stderr,
               "usage: sluice-connrate server --port P [--threads N]\n"
               "       sluice-connrate client --to IP:PORT --seconds S [--parallel N] "
               "[--from IP]\n");
  std::exit(2);
}

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "sluice-connrate: %s: %s\n", what.c_str(), std::strerror(errno));
  std::exit(1);
}

struct Flags {
  std::map<std::string, std::string> values;
  std::string Get(const std::string& name, const std::string& fallback = "") const {
    auto it = values.find(name);
    return it == values.end() ? fallback : it->second;
  }
  long Number(const std::string& name, long fallback) const {
    auto it = values.find(name);
    if (it == values.end()) return fallback;
    char* end = nullptr;
    long v = std::strtol(it->second.c_str(), &end, 10);
    if (*end != '\0' || v <= 0) Usage();
    return v;
  }
};

Flags ParseFlags(int argc, char** argv, int first) {
  Flags f;
  for (int i = first; i < argc; i += 2) {
    if (std::strncmp(argv[i], "--", 2) != 0 || i + 1 >= argc) Usage();
    f.values[argv[i] + 2] = argv[i + 1];
  }
  return f;
}

sockaddr_in ParseAddress(const std::string& text, uint16_t default_port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  std::string ip = text;
  uint16_t port = default_port;
  if (auto colon = text.rfind(':'); colon != std::string::npos) {
    ip = text.substr(0, colon);
    port = static_cast<uint16_t>(std::atoi(text.c_str() + colon + 1));
  }
  if (inet_pton(AF_INET, ip.c_str(), &a.sin_addr) != 1 || port == 0) Usage();
  a.sin_port = htons(port);
  return a;
}

void SetLingerZero(int fd) {
  linger l{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
}

int Server(const Flags& flags) {
  const sockaddr_in addr = ParseAddress("0.0.0.0", static_cast<uint16_t>(flags.Number("port", 0)));
  const long threads = flags.Number("threads", 2);
  std::vector<UniqueFd> listeners;
  for (long i = 0; i < threads; ++i) {
    UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd.valid()) Fail("socket");
    int one = 1;
    setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd.get(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) Fail("bind");
    if (listen(fd.get(), 4096) != 0) Fail("listen");
    listeners.push_back(std::move(fd));
  }
  std::vector<std::thread> workers;
  for (auto& l : listeners) {
    workers.emplace_back([fd = l.get()] {
      for (;;) {
        UniqueFd conn(accept4(fd, nullptr, nullptr, SOCK_CLOEXEC));
        if (conn.valid()) SetLingerZero(conn.get());
      }
    });
  }
  std::printf("listening on port %u, %ld threads\n", ntohs(addr.sin_port), threads);
  std::fflush(stdout);
  for (auto& w : workers) w.join();
  return 0;
}

int Client(const Flags& flags) {
  const sockaddr_in to = ParseAddress(flags.Get("to"), 0);
  const double seconds = static_cast<double>(flags.Number("seconds", 3));
  const long parallel = flags.Number("parallel", 1);
  const std::string from_text = flags.Get("from");
  const bool bind_from = !from_text.empty();
  const sockaddr_in from = bind_from ? ParseAddress(from_text + ":1", 0) : sockaddr_in{};

  std::atomic<uint64_t> total{0};
  std::mutex errors_mutex;
  std::map<std::string, uint64_t> errors;
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + std::chrono::duration<double>(seconds);
  std::vector<std::thread> workers;
  for (long t = 0; t < parallel; ++t) {
    workers.emplace_back([&] {
      uint64_t done = 0;
      std::map<std::string, uint64_t> failed;
      const timeval timeout{1, 0};  // a lost SYN shows as an error, not a 1 s stall per retry
      while (std::chrono::steady_clock::now() < deadline) {
        UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (!fd.valid()) Fail("socket");
        SetLingerZero(fd.get());
        setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
        if (bind_from) {
          // The port is picked at connect(), against the whole 4-tuple.
          int one = 1;
          setsockopt(fd.get(), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
          sockaddr_in src = from;
          src.sin_port = 0;
          if (bind(fd.get(), reinterpret_cast<const sockaddr*>(&src), sizeof src) != 0) {
            Fail("bind " + from_text);
          }
        }
        if (connect(fd.get(), reinterpret_cast<const sockaddr*>(&to), sizeof to) == 0) {
          ++done;
        } else {
          ++failed[strerrorname_np(errno) ? strerrorname_np(errno) : std::to_string(errno)];
        }
      }
      total += done;
      std::lock_guard lock(errors_mutex);
      for (const auto& [name, n] : failed) errors[name] += n;
    });
  }
  for (auto& w : workers) w.join();
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::string error_json;
  for (const auto& [name, n] : errors) {
    error_json += (error_json.empty() ? "\"" : ", \"") + name + "\": " + std::to_string(n);
  }
  std::printf(
      "{\"to\": \"%s\", \"parallel\": %ld, \"seconds\": %.3f, \"connections\": %llu, "
      "\"per_second\": %.1f, \"errors\": {%s}}\n",
      flags.Get("to").c_str(), parallel, elapsed, static_cast<unsigned long long>(total.load()),
      static_cast<double>(total.load()) / elapsed, error_json.c_str());
  return 0;
}

}  // namespace
}  // namespace sluice::bench

int main(int argc, char** argv) {
  if (argc < 2) sluice::bench::Usage();
  const std::string role = argv[1];
  const auto flags = sluice::bench::ParseFlags(argc, argv, 2);
  if (role == "server") return sluice::bench::Server(flags);
  if (role == "client") return sluice::bench::Client(flags);
  sluice::bench::Usage();
}
