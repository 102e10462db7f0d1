#include "proxy/service_health.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <nlohmann/json.hpp>
#include <stdexcept>

#include "common/unique_fd.h"
#include "proxy/proxy_health.h"
#include "proxy/testing/http_probe.h"

namespace sluice::proxy {
namespace {

using nlohmann::json;
using testing::ParseResponse;
using testing::Probe;
using testing::ProbeResponse;
using Entry = ServiceHealthServers::Entry;
using std::chrono::seconds;

sockaddr_in Loopback4(uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

// `n` distinct ports nothing listens on: the kernel picks them on every IPv4 address (all held
// until the last is picked, so none repeats), then we let them go.
std::vector<uint16_t> FreePorts(size_t n) {
  std::vector<UniqueFd> held;
  std::vector<uint16_t> ports;
  for (size_t i = 0; i < n; ++i) {
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0)
      throw std::runtime_error("bind port 0");
    socklen_t len = sizeof(a);
    if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&a), &len) != 0)
      throw std::runtime_error("getsockname");
    ports.push_back(ntohs(a.sin_port));
    held.push_back(std::move(fd));
  }
  return ports;
}
uint16_t FreePort() { return FreePorts(1)[0]; }

// Holds `port` with a listening socket, as another process would.
UniqueFd Occupy(int family, uint16_t port) {
  UniqueFd fd(::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_storage s{};
  socklen_t len;
  if (family == AF_INET) {
    *reinterpret_cast<sockaddr_in*>(&s) = Loopback4(port);
    len = sizeof(sockaddr_in);
  } else {
    auto* a = reinterpret_cast<sockaddr_in6*>(&s);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    a->sin6_addr = in6addr_loopback;
    len = sizeof(sockaddr_in6);
  }
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&s), len) != 0 || ::listen(fd.get(), 1) != 0)
    throw std::runtime_error("occupy port " + std::to_string(port));
  return fd;
}

bool HaveIpv6Loopback() {
  UniqueFd fd(::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return false;
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_addr = in6addr_loopback;
  return ::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
}

// The probe's error when nothing listens, or "" when something answered.
std::string ProbeError(const std::string& host, uint16_t port) {
  try {
    Probe(host, port, "GET", "/");
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}
constexpr const char* kRefused = "probe: connect: Connection refused";

// Sends one request on an already connected socket and reads the answer to EOF.
ProbeResponse RequestOn(const UniqueFd& fd) {
  std::string request = "GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n";
  if (::send(fd.get(), request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    throw std::runtime_error("send");
  }
  std::string raw;
  char buf[4096];
  for (;;) {
    pollfd p{fd.get(), POLLIN, 0};
    if (::poll(&p, 1, 10000) != 1) throw std::runtime_error("no answer within 10 s");
    ssize_t n = ::recv(fd.get(), buf, sizeof(buf), 0);
    if (n < 0) throw std::runtime_error("recv");
    if (n == 0) break;
    raw.append(buf, static_cast<size_t>(n));
  }
  return ParseResponse(raw, false);
}

// Both readings move together, as in proxy_health_test.
struct FakeHealthClock {
  HealthInstant now{std::chrono::steady_clock::time_point(seconds(1000)),
                    std::chrono::system_clock::time_point(seconds(1714564800))};
  void Advance(std::chrono::nanoseconds d) {
    now.monotonic += d;
    now.wall += std::chrono::duration_cast<std::chrono::system_clock::duration>(d);
  }
  HealthClock Fn() {
    return [this] { return now; };
  }
};

TEST(ServiceHealthResponseTest, KubeProxysBodyStatusAndHeaders) {
  HttpResponse r = ServiceHealthResponse({"default", "web", 2}, true);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "application/json");
  EXPECT_EQ(r.body,
            "{\n\t\"service\": {\n\t\t\"namespace\": \"default\",\n\t\t\"name\": \"web\"\n\t},\n"
            "\t\"localEndpoints\": 2,\n\t\"serviceProxyHealthy\": true\n}");
  using Headers = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(r.headers, (Headers{{"X-Content-Type-Options", "nosniff"},
                                {"X-Load-Balancing-Endpoint-Weight", "2"}}));

  EXPECT_EQ(ServiceHealthResponse({"default", "web", 0}, true).status, 503);
  HttpResponse sick = ServiceHealthResponse({"default", "web", 2}, false);
  EXPECT_EQ(sick.status, 503);
  EXPECT_EQ(json::parse(sick.body)["serviceProxyHealthy"], false);
}

TEST(ServiceHealthServersTest, AnswersEveryPathWithTheCountAndHealth) {
  ServiceHealthServers servers({"127.0.0.1"}, nullptr);  // no ProxyHealth: healthy
  uint16_t port = FreePort();
  EXPECT_TRUE(servers.Sync({{port, {"default", "web", 3}}}).empty());
  EXPECT_EQ(servers.ServingPorts(), std::vector<uint16_t>{port});

  for (const char* path : {"/", "/healthz", "/any/path?at=all"}) {
    ProbeResponse r = Probe("127.0.0.1", port, "GET", path);
    EXPECT_EQ(r.status, 200) << path;
    EXPECT_EQ(r.headers["content-type"], "application/json") << path;
    EXPECT_EQ(r.headers["x-content-type-options"], "nosniff") << path;
    EXPECT_EQ(r.headers["x-load-balancing-endpoint-weight"], "3") << path;
    json body = json::parse(r.body);
    EXPECT_EQ(body["service"]["namespace"], "default");
    EXPECT_EQ(body["service"]["name"], "web");
    EXPECT_EQ(body["localEndpoints"], 3);
    EXPECT_EQ(body["serviceProxyHealthy"], true);
  }
  ProbeResponse head = Probe("127.0.0.1", port, "HEAD", "/");  // throws on a body
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.headers["x-load-balancing-endpoint-weight"], "3");
  EXPECT_EQ(Probe("127.0.0.1", port, "POST", "/", "x").status, 405);  // HttpServer's rule
}

TEST(ServiceHealthServersTest, NoLocalEndpointsIs503) {
  ServiceHealthServers servers({"127.0.0.1"}, nullptr);
  uint16_t port = FreePort();
  ASSERT_TRUE(servers.Sync({{port, {"default", "web", 0}}}).empty());
  ProbeResponse r = Probe("127.0.0.1", port, "GET", "/");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.headers["x-load-balancing-endpoint-weight"], "0");
  EXPECT_EQ(json::parse(r.body)["localEndpoints"], 0);
  EXPECT_EQ(json::parse(r.body)["serviceProxyHealthy"], true);
}

TEST(ServiceHealthServersTest, UnhealthyProxyIs503DespiteEndpoints) {
  FakeHealthClock clock;
  ProxyHealth health(seconds(60), nullptr, clock.Fn());
  health.Updated(IpFamily::kV4);
  ServiceHealthServers servers({"127.0.0.1"}, &health);
  uint16_t port = FreePort();
  ASSERT_TRUE(servers.Sync({{port, {"default", "web", 2}}}).empty());
  EXPECT_EQ(Probe("127.0.0.1", port, "GET", "/").status, 200);

  health.QueuedUpdate(IpFamily::kV4);
  clock.Advance(seconds(61));  // a change waited past the timeout
  ProbeResponse r = Probe("127.0.0.1", port, "GET", "/");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.headers["x-load-balancing-endpoint-weight"], "2");
  EXPECT_EQ(json::parse(r.body)["serviceProxyHealthy"], false);
  EXPECT_EQ(json::parse(r.body)["localEndpoints"], 2);

  health.Updated(IpFamily::kV4);
  EXPECT_EQ(Probe("127.0.0.1", port, "GET", "/").status, 200);
}

TEST(ServiceHealthServersTest, CountChangesWithoutReopening) {
  ServiceHealthServers servers({"127.0.0.1"}, nullptr);
  uint16_t port = FreePort();
  ASSERT_TRUE(servers.Sync({{port, {"default", "web", 1}}}).empty());
  // A connection made before the update: a reopened server would have dropped it.
  UniqueFd early(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a = Loopback4(port);
  ASSERT_EQ(::connect(early.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);

  ASSERT_TRUE(servers.Sync({{port, {"default", "web", 0}}}).empty());
  ProbeResponse r = RequestOn(early);
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.headers["x-load-balancing-endpoint-weight"], "0");

  ASSERT_TRUE(servers.Sync({{port, {"default", "web", 5}}}).empty());
  r = Probe("127.0.0.1", port, "GET", "/");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(json::parse(r.body)["localEndpoints"], 5);
}

TEST(ServiceHealthServersTest, TwoServicesAndRemovedPortsRefuse) {
  ServiceHealthServers servers({"127.0.0.1"}, nullptr);
  std::vector<uint16_t> ports = FreePorts(2);
  uint16_t web = ports[0];
  uint16_t db = ports[1];
  ASSERT_TRUE(servers.Sync({{web, {"shop", "web", 2}}, {db, {"data", "db", 0}}}).empty());
  json web_body = json::parse(Probe("127.0.0.1", web, "GET", "/").body);
  EXPECT_EQ(web_body["service"], (json{{"namespace", "shop"}, {"name", "web"}}));
  ProbeResponse db_answer = Probe("127.0.0.1", db, "GET", "/");
  EXPECT_EQ(db_answer.status, 503);
  EXPECT_EQ(json::parse(db_answer.body)["service"], (json{{"namespace", "data"}, {"name", "db"}}));

  ASSERT_TRUE(servers.Sync({{db, {"data", "db", 1}}}).empty());
  EXPECT_EQ(ProbeError("127.0.0.1", web), kRefused);
  EXPECT_EQ(Probe("127.0.0.1", db, "GET", "/").status, 200);
  EXPECT_EQ(servers.ServingPorts(), std::vector<uint16_t>{db});

  ASSERT_TRUE(servers.Sync({}).empty());
  EXPECT_EQ(ProbeError("127.0.0.1", db), kRefused);
  EXPECT_TRUE(servers.ServingPorts().empty());
}

TEST(ServiceHealthServersTest, APortInUseFailsAloneAndIsRetriedNextSync) {
  ServiceHealthServers servers({"127.0.0.1"}, nullptr);
  std::vector<uint16_t> ports = FreePorts(2);
  uint16_t busy = ports[0];
  uint16_t other = ports[1];
  UniqueFd blocker = Occupy(AF_INET, busy);
  const std::map<uint16_t, Entry> wanted = {{busy, {"shop", "web", 1}}, {other, {"data", "db", 1}}};

  std::vector<ServiceHealthFailure> failures = servers.Sync(wanted);
  ASSERT_EQ(failures.size(), 1u);
  EXPECT_EQ(failures[0].port, busy);
  EXPECT_EQ(failures[0].namespace_name, "shop");
  EXPECT_EQ(failures[0].name, "web");
  EXPECT_EQ(failures[0].error, "Service shop/web health check: bind 127.0.0.1:" +
                                   std::to_string(busy) + ": Address already in use");
  EXPECT_EQ(Probe("127.0.0.1", other, "GET", "/").status, 200);
  EXPECT_EQ(servers.ServingPorts(), std::vector<uint16_t>{other});
  EXPECT_EQ(servers.Sync(wanted).size(), 1u);  // still held: tried and failed again

  blocker.Reset();
  EXPECT_TRUE(servers.Sync(wanted).empty());
  ProbeResponse r = Probe("127.0.0.1", busy, "GET", "/");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(json::parse(r.body)["service"]["name"], "web");
  EXPECT_EQ(servers.ServingPorts(),
            (std::vector<uint16_t>{std::min(busy, other), std::max(busy, other)}));
}

TEST(ServiceHealthServersTest, AnotherServiceOnThePortIsServedUnderItsName) {
  ServiceHealthServers servers({"127.0.0.1"}, nullptr);
  uint16_t port = FreePort();
  ASSERT_TRUE(servers.Sync({{port, {"shop", "old", 1}}}).empty());
  ASSERT_TRUE(servers.Sync({{port, {"shop", "new", 4}}}).empty());
  json body = json::parse(Probe("127.0.0.1", port, "GET", "/").body);
  EXPECT_EQ(body["service"]["name"], "new");
  EXPECT_EQ(body["localEndpoints"], 4);
}

TEST(ServiceHealthServersTest, EveryHostOrNone) {
  if (!HaveIpv6Loopback()) GTEST_SKIP() << "no IPv6 loopback here";
  ServiceHealthServers servers({"::1", "127.0.0.1"}, nullptr);
  std::vector<uint16_t> ports = FreePorts(2);
  uint16_t port = ports[0];
  uint16_t half = ports[1];
  ASSERT_TRUE(servers.Sync({{port, {"shop", "web", 1}}}).empty());
  EXPECT_EQ(Probe("127.0.0.1", port, "GET", "/").status, 200);
  EXPECT_EQ(Probe("::1", port, "GET", "/").status, 200);

  // Busy on one host: the port is not served on the other either, as in kube-proxy.
  UniqueFd blocker = Occupy(AF_INET6, half);
  std::vector<ServiceHealthFailure> failures = servers.Sync({{half, {"shop", "half", 1}}});
  ASSERT_EQ(failures.size(), 1u);
  EXPECT_EQ(failures[0].error, "Service shop/half health check: bind [::1]:" +
                                   std::to_string(half) + ": Address already in use");
  EXPECT_EQ(ProbeError("127.0.0.1", half), kRefused);
  EXPECT_EQ(ProbeError("127.0.0.1", port), kRefused);  // no longer wanted
  blocker.Reset();
  EXPECT_TRUE(servers.Sync({{half, {"shop", "half", 1}}}).empty());
  EXPECT_EQ(Probe("127.0.0.1", half, "GET", "/").status, 200);
  EXPECT_EQ(Probe("::1", half, "GET", "/").status, 200);
}

TEST(ServiceHealthServersTest, NoHostsMeansEveryAddress) {
  ServiceHealthServers servers({}, nullptr);
  uint16_t port = FreePort();
  ASSERT_TRUE(servers.Sync({{port, {"shop", "web", 1}}}).empty());
  EXPECT_EQ(Probe("127.0.0.1", port, "GET", "/").status, 200);
  if (HaveIpv6Loopback()) {
    EXPECT_EQ(Probe("::1", port, "GET", "/").status, 200);
  }
}

TEST(ServiceHealthServersTest, PortZeroIsAFailure) {
  ServiceHealthServers servers({"127.0.0.1"}, nullptr);
  std::vector<ServiceHealthFailure> failures = servers.Sync({{0, {"shop", "web", 1}}});
  ASSERT_EQ(failures.size(), 1u);
  EXPECT_EQ(failures[0].error, "Service shop/web health check: no port");
  EXPECT_TRUE(servers.ServingPorts().empty());
}

TEST(ServiceHealthServersTest, RejectsHostsThatAreNotAddresses) {
  EXPECT_THROW(ServiceHealthServers({"node-1"}, nullptr), HttpServerError);
  EXPECT_THROW(ServiceHealthServers({"127.0.0.1", "[::1]"}, nullptr), HttpServerError);
  try {
    ServiceHealthServers servers({"node-1"}, nullptr);
  } catch (const HttpServerError& e) {
    EXPECT_STREQ(e.what(),
                 "health check node port address: bind address \"node-1:0\": want an IPv4 "
                 "address or [IPv6]");
  }
}

TEST(ServiceHealthServersTest, DestructionClosesEveryPort) {
  uint16_t port = FreePort();
  {
    ServiceHealthServers servers({"127.0.0.1"}, nullptr);
    ASSERT_TRUE(servers.Sync({{port, {"shop", "web", 1}}}).empty());
    EXPECT_EQ(Probe("127.0.0.1", port, "GET", "/").status, 200);
  }
  EXPECT_EQ(ProbeError("127.0.0.1", port), kRefused);
}

}  // namespace
}  // namespace sluice::proxy
