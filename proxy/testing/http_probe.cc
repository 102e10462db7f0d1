#include "proxy/testing/http_probe.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "common/unique_fd.h"

namespace sluice::proxy::testing {
namespace {

[[noreturn]] void Fail(const std::string& what) {
  throw std::runtime_error("probe: " + what + ": " + std::strerror(errno));
}

}  // namespace

ProbeResponse ParseResponse(const std::string& raw, bool head) {
  ProbeResponse r;
  r.raw = raw;
  size_t header_end = raw.find("\r\n\r\n");
  if (header_end == std::string::npos) throw std::runtime_error("probe: no end of headers");
  size_t line_end = raw.find("\r\n");
  std::string status_line = raw.substr(0, line_end);
  if (status_line.rfind("HTTP/1.1 ", 0) != 0 || status_line.size() < 12) {
    throw std::runtime_error("probe: bad status line: " + status_line);
  }
  r.status = std::stoi(status_line.substr(9, 3));
  size_t pos = line_end + 2;
  while (pos < header_end) {
    size_t end = raw.find("\r\n", pos);
    std::string line = raw.substr(pos, end - pos);
    size_t colon = line.find(':');
    if (colon == std::string::npos) throw std::runtime_error("probe: bad header: " + line);
    std::string name = line.substr(0, colon);
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    std::string value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(' '));
    r.headers[name] = value;
    pos = end + 2;
  }
  r.body = raw.substr(header_end + 4);
  if (head && !r.body.empty()) throw std::runtime_error("probe: body in a HEAD response");
  return r;
}

ProbeResponse Probe(const std::string& host, uint16_t port, const std::string& method,
                    const std::string& path, const std::string& body) {
  bool v6 = host.find(':') != std::string::npos;
  UniqueFd fd(::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) Fail("socket");
  sockaddr_storage addr{};
  socklen_t len;
  if (v6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&addr);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    if (inet_pton(AF_INET6, host.c_str(), &a->sin6_addr) != 1) Fail("address " + host);
    len = sizeof(*a);
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&addr);
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    if (inet_pton(AF_INET, host.c_str(), &a->sin_addr) != 1) Fail("address " + host);
    len = sizeof(*a);
  }
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0) Fail("connect");
  std::string request = method + " " + path + " HTTP/1.1\r\nHost: test\r\nConnection: close\r\n";
  if (!body.empty()) request += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  request += "\r\n" + body;
  for (size_t sent = 0; sent < request.size();) {
    ssize_t n = ::send(fd.get(), request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n < 0) Fail("send");
    sent += static_cast<size_t>(n);
  }
  std::string raw;
  char buf[4096];
  for (;;) {
    pollfd p{fd.get(), POLLIN, 0};
    // A safety net against a hung server, not a timing assumption: answers take microseconds.
    int ready = ::poll(&p, 1, 10000);
    if (ready == 0) throw std::runtime_error("probe: no answer within 10 s");
    if (ready < 0) Fail("poll");
    ssize_t n = ::recv(fd.get(), buf, sizeof(buf), 0);
    if (n < 0) Fail("recv");
    if (n == 0) break;
    raw.append(buf, static_cast<size_t>(n));
  }
  return ParseResponse(raw, method == "HEAD");
}

}  // namespace sluice::proxy::testing
