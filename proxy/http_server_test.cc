#include "proxy/http_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <atomic>
#include <cstring>

#include "common/unique_fd.h"
#include "proxy/testing/http_probe.h"

namespace sluice::proxy {
namespace {

using testing::Probe;

HttpRoutes TestRoutes(std::atomic<int>* calls = nullptr) {
  HttpRoutes routes;
  routes["/hello"] = [calls](const HttpRequest& r) {
    if (calls) ++*calls;
    return HttpResponse{200,
                        "application/json",
                        "{\"method\":\"" + r.method + "\"}",
                        {{"X-Test", "yes"}, {"X-Content-Type-Options", "nosniff"}}};
  };
  routes["/unavailable"] = [](const HttpRequest&) {
    return HttpResponse{503, "text/plain; charset=utf-8", "down", {}};
  };
  routes["/throws"] = [](const HttpRequest&) -> HttpResponse {
    throw std::runtime_error("handler broke");
  };
  routes["/empty"] = [](const HttpRequest&) { return HttpResponse{200, "text/plain", "", {}}; };
  return routes;
}

bool HaveIpv6Loopback() {
  UniqueFd fd(::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return false;
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_addr = in6addr_loopback;
  return ::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
}

TEST(BindAddressTest, ParsesKubeProxyForms) {
  BindAddress a = BindAddress::Parse("0.0.0.0:10256");
  EXPECT_EQ(a.host, "0.0.0.0");
  EXPECT_EQ(a.port, 10256);
  a = BindAddress::Parse("[::]:10249");
  EXPECT_EQ(a.host, "::");
  EXPECT_EQ(a.port, 10249);
  a = BindAddress::Parse(":0");
  EXPECT_EQ(a.host, "");
  EXPECT_EQ(a.port, 0);
  for (const char* bad : {"", "10256", "0.0.0.0", "0.0.0.0:", "0.0.0.0:65536", "0.0.0.0:x",
                          "::1:80", "[::1:80", "[10.0.0.1]:80", "host:80", "[::1]:-1"}) {
    EXPECT_THROW(BindAddress::Parse(bad), HttpServerError) << bad;
  }
  try {
    BindAddress::Parse("nope:1");
  } catch (const HttpServerError& e) {
    EXPECT_STREQ(e.what(), "bind address \"nope:1\": want an IPv4 address or [IPv6]");
  }
}

TEST(HttpServerTest, ServesGetWithHeadersAndBody) {
  HttpServer server("test server", "127.0.0.1:0", TestRoutes());
  ASSERT_NE(server.port(), 0);
  auto r = Probe("127.0.0.1", server.port(), "GET", "/hello");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "{\"method\":\"GET\"}");
  EXPECT_EQ(r.headers["content-type"], "application/json");
  EXPECT_EQ(r.headers["content-length"], "16");
  EXPECT_EQ(r.headers["x-test"], "yes");
  EXPECT_EQ(r.headers["x-content-type-options"], "nosniff");

  auto down = Probe("127.0.0.1", server.port(), "GET", "/unavailable");
  EXPECT_EQ(down.status, 503);
  EXPECT_EQ(down.body, "down");
  auto empty = Probe("127.0.0.1", server.port(), "GET", "/empty");
  EXPECT_EQ(empty.status, 200);
  EXPECT_EQ(empty.body, "");
  EXPECT_EQ(empty.headers["content-length"], "0");
}

TEST(HttpServerTest, HeadHasHeadersButNoBody) {
  std::atomic<int> calls{0};
  HttpServer server("test server", "127.0.0.1:0", TestRoutes(&calls));
  auto r = Probe("127.0.0.1", server.port(), "HEAD", "/hello");  // throws if a body came
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.headers["content-type"], "application/json");
  EXPECT_EQ(r.headers["content-length"], "17");  // what GET would send: {"method":"HEAD"}
  EXPECT_EQ(calls.load(), 1);
}

TEST(HttpServerTest, UnknownPathIs404AndQueryIsIgnored) {
  HttpServer server("test server", "127.0.0.1:0", TestRoutes());
  auto r = Probe("127.0.0.1", server.port(), "GET", "/nope");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.body, "404 page not found\n");
  EXPECT_EQ(Probe("127.0.0.1", server.port(), "GET", "/hello/").status, 404);  // exact paths
  EXPECT_EQ(Probe("127.0.0.1", server.port(), "GET", "/hello?verbose=1").status, 200);
}

TEST(HttpServerTest, OtherMethodsAre405) {
  std::atomic<int> calls{0};
  HttpServer server("test server", "127.0.0.1:0", TestRoutes(&calls));
  for (const char* method : {"POST", "PUT", "DELETE", "OPTIONS", "PATCH"}) {
    auto r = Probe("127.0.0.1", server.port(), method, "/hello", "some body");
    EXPECT_EQ(r.status, 405) << method;
    EXPECT_EQ(r.headers["allow"], "GET, HEAD") << method;
  }
  EXPECT_EQ(calls.load(), 0);
}

TEST(HttpServerTest, AThrowingHandlerIs500AndTheServerGoesOn) {
  HttpServer server("test server", "127.0.0.1:0", TestRoutes());
  EXPECT_EQ(Probe("127.0.0.1", server.port(), "GET", "/throws").status, 500);
  EXPECT_EQ(Probe("127.0.0.1", server.port(), "GET", "/hello").status, 200);
}

TEST(HttpServerTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  HttpServer server("test server", "127.0.0.1:0", TestRoutes());
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(server.port());
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  std::string two =
      "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n"
      "GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
  ASSERT_EQ(::send(fd.get(), two.data(), two.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(two.size()));
  std::string raw;
  char buf[4096];
  for (;;) {
    pollfd p{fd.get(), POLLIN, 0};
    ASSERT_EQ(::poll(&p, 1, 10000), 1);
    ssize_t n = ::recv(fd.get(), buf, sizeof(buf), 0);
    ASSERT_GE(n, 0);
    if (n == 0) break;
    raw.append(buf, static_cast<size_t>(n));
  }
  size_t first = raw.find("HTTP/1.1 200");
  ASSERT_NE(first, std::string::npos);
  EXPECT_NE(raw.find("HTTP/1.1 200", first + 1), std::string::npos) << raw;
}

TEST(HttpServerTest, BindFailureNamesTheAddressAndTheReason) {
  // Hold a listening socket on an ephemeral port, then ask the server for the same port.
  UniqueFd holder(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(holder.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  ASSERT_EQ(::listen(holder.get(), 1), 0);
  socklen_t len = sizeof(a);
  ASSERT_EQ(::getsockname(holder.get(), reinterpret_cast<sockaddr*>(&a), &len), 0);
  std::string address = "127.0.0.1:" + std::to_string(ntohs(a.sin_port));
  try {
    HttpServer server("healthz server", address, TestRoutes());
    FAIL() << "bound a port in use";
  } catch (const HttpServerError& e) {
    EXPECT_EQ(std::string(e.what()),
              "healthz server: bind " + address + ": Address already in use");
  }
  try {
    HttpServer server("healthz server", "10.1.2.3", TestRoutes());
    FAIL() << "accepted an address without a port";
  } catch (const HttpServerError& e) {
    EXPECT_STREQ(e.what(), "healthz server: bind address \"10.1.2.3\": want IP:port");
  }
}

TEST(HttpServerTest, StopClosesTheListener) {
  auto server = std::make_unique<HttpServer>("test server", "127.0.0.1:0", TestRoutes());
  uint16_t port = server->port();
  EXPECT_EQ(Probe("127.0.0.1", port, "GET", "/hello").status, 200);
  server->Stop();
  server->Stop();  // idempotent
  EXPECT_THROW(Probe("127.0.0.1", port, "GET", "/hello"), std::runtime_error);
  server.reset();
  // The port is free again.
  HttpServer again("test server", "127.0.0.1:" + std::to_string(port), TestRoutes());
  EXPECT_EQ(again.port(), port);
}

TEST(HttpServerTest, ServesIpv6AndDualStack) {
  if (!HaveIpv6Loopback()) GTEST_SKIP() << "no IPv6 loopback here";
  HttpServer v6("test server", "[::1]:0", TestRoutes());
  EXPECT_EQ(Probe("::1", v6.port(), "GET", "/hello").status, 200);
  HttpServer any("test server", ":0", TestRoutes());  // both families, like Go's ":port"
  EXPECT_EQ(Probe("::1", any.port(), "GET", "/hello").status, 200);
  EXPECT_EQ(Probe("127.0.0.1", any.port(), "GET", "/hello").status, 200);
  HttpServer wildcard("test server", "[::]:0", TestRoutes());
  EXPECT_EQ(Probe("127.0.0.1", wildcard.port(), "GET", "/hello").status, 200);
}

TEST(HttpServerTest, FallbackAnswersEveryOtherPath) {
  std::atomic<int> calls{0};
  HttpServer server("test server", "127.0.0.1:0", TestRoutes(), [&calls](const HttpRequest& r) {
    ++calls;
    return HttpResponse{200, "text/plain", "fallback " + r.path, {}};
  });
  EXPECT_EQ(Probe("127.0.0.1", server.port(), "GET", "/hello").body, "{\"method\":\"GET\"}");
  auto r = Probe("127.0.0.1", server.port(), "GET", "/nope/deeper?x=1");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "fallback /nope/deeper");
  EXPECT_EQ(Probe("127.0.0.1", server.port(), "HEAD", "/").status, 200);
  EXPECT_EQ(server.Dispatch({"POST", "/nope"}).status, 405);  // still GET and HEAD only
  EXPECT_EQ(calls.load(), 2);
}

TEST(HttpServerTest, DispatchWithoutTheNetwork) {
  HttpServer server("test server", "127.0.0.1:0", TestRoutes());
  EXPECT_EQ(server.Dispatch({"GET", "/hello"}).status, 200);
  EXPECT_EQ(server.Dispatch({"POST", "/hello"}).status, 405);
  EXPECT_EQ(server.Dispatch({"POST", "/nope"}).status, 404);
}

}  // namespace
}  // namespace sluice::proxy
