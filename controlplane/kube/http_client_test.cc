#include "controlplane/kube/http_client.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "controlplane/kube/errors.h"
#include "controlplane/kube/testing/fake_http_server.h"

namespace sluice::kube {
namespace {

using testing::FakeHttpServer;
using testing::HttpRequest;
using testing::ResponseWriter;
using namespace std::chrono_literals;

ApiConnection Connect(const std::string& server, const std::string& token = "") {
  RestConfig rc;
  rc.server = server;
  rc.token = token;
  rc.origin = "test";
  return ApiConnection::Open(rc);
}

TEST(HttpClientTest, GetSendsHeadersAndReusesTheConnection) {
  FakeHttpServer server([](const HttpRequest& req, ResponseWriter& w) {
    w.Respond(200, "{\"path\":\"" + req.path + "\"}");
  });
  HttpClient client(Connect(server.url(), "s3cret"));
  HttpResponse r = client.Get("/api/v1/services?limit=500", 5s);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "{\"path\":\"/api/v1/services\"}");
  EXPECT_EQ(r.content_type, "application/json");
  r = client.Get("/api/v1/nodes", 5s);
  EXPECT_EQ(r.body, "{\"path\":\"/api/v1/nodes\"}");
  auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].target, "/api/v1/services?limit=500");
  EXPECT_EQ(reqs[0].query.at("limit"), "500");
  EXPECT_EQ(reqs[0].headers.at("accept"), "application/json");
  EXPECT_EQ(reqs[0].headers.at("authorization"), "Bearer s3cret");
  EXPECT_NE(reqs[0].headers.at("user-agent").find("sluice"), std::string::npos);
  EXPECT_EQ(server.connections(), 1);  // keep-alive
}

TEST(HttpClientTest, ErrorStatusIsReturnedWithItsBody) {
  FakeHttpServer server([](const HttpRequest&, ResponseWriter& w) {
    w.Respond(410, R"({"kind":"Status","code":410,"reason":"Expired"})");
  });
  HttpClient client(Connect(server.url()));
  HttpResponse r = client.Get("/api/v1/services", 5s);
  EXPECT_EQ(r.status, 410);
  EXPECT_FALSE(r.ok());
  EXPECT_NE(r.body.find("Expired"), std::string::npos);
  EXPECT_EQ(server.requests()[0].headers.count("authorization"), 0u);
}

TEST(HttpClientTest, StreamDeliversChunksAsTheyComeAndStopsWhenTold) {
  FakeHttpServer server([](const HttpRequest&, ResponseWriter& w) {
    w.Start(200);
    w.Write("{\"a\":");
    std::this_thread::sleep_for(50ms);
    w.Write("1}\n{\"b\":2}\n");
    w.Hold(5s);
    w.End();
  });
  HttpClient client(Connect(server.url()));
  std::string got;
  auto start = std::chrono::steady_clock::now();
  HttpResponse r = client.Stream("/w", 10s, {}, [&](std::string_view d) {
    got.append(d);
    return got.find("{\"b\":2}\n") == std::string::npos;  // enough
  });
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(got, "{\"a\":1}\n{\"b\":2}\n");
  EXPECT_TRUE(r.body.empty());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
}

TEST(HttpClientTest, StreamErrorStatusKeepsTheBody) {
  FakeHttpServer server([](const HttpRequest&, ResponseWriter& w) {
    w.Respond(422, R"({"kind":"Status","code":422,"reason":"Invalid"})");
  });
  HttpClient client(Connect(server.url()));
  bool called = false;
  HttpResponse r = client.Stream("/w", 5s, {}, [&](std::string_view) { return called = true; });
  EXPECT_EQ(r.status, 422);
  EXPECT_FALSE(called);
  EXPECT_NE(r.body.find("Invalid"), std::string::npos);
}

TEST(HttpClientTest, StopCancelsAnIdleStreamAtOnce) {
  FakeHttpServer server([](const HttpRequest&, ResponseWriter& w) {
    w.Start(200);
    w.Hold(20s);
  });
  HttpClient client(Connect(server.url()));
  std::stop_source stop;
  std::thread stopper([&] {
    std::this_thread::sleep_for(200ms);
    stop.request_stop();
  });
  auto start = std::chrono::steady_clock::now();
  EXPECT_THROW(client.Stream("/w", 60s, stop.get_token(), [](std::string_view) { return true; }),
               Cancelled);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 900ms);
  stopper.join();
}

TEST(HttpClientTest, TickCanEndAStream) {
  FakeHttpServer server([](const HttpRequest&, ResponseWriter& w) {
    w.Start(200);
    w.Hold(20s);
  });
  HttpClient client(Connect(server.url()));
  int ticks = 0;
  HttpResponse r = client.Stream(
      "/w", 60s, {}, [](std::string_view) { return true; }, [&] { return ++ticks < 2; });
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(ticks, 2);
}

TEST(HttpClientTest, ConnectionRefusedAndTimeoutAreTransportErrors) {
  int port;
  {
    FakeHttpServer gone([](const HttpRequest&, ResponseWriter&) {});
    port = gone.port();
  }
  HttpClient refused(Connect("http://127.0.0.1:" + std::to_string(port)));
  try {
    refused.Get("/api/v1/services", 5s);
    ADD_FAILURE();
  } catch (const TransportError& e) {
    EXPECT_NE(std::string(e.what()).find("GET http://127.0.0.1:" + std::to_string(port) +
                                         "/api/v1/services: "),
              std::string::npos)
        << e.what();
    EXPECT_FALSE(e.tls());
  }
  FakeHttpServer slow([](const HttpRequest&, ResponseWriter& w) { w.Hold(5s); });
  HttpClient client(Connect(slow.url()));
  try {
    client.Get("/slow", 300ms);
    ADD_FAILURE();
  } catch (const TransportError& e) {
    EXPECT_NE(std::string(e.what()).find("timed out"), std::string::npos) << e.what();
  }
}

TEST(HttpClientTest, BrokenChunkedBodyIsATransportError) {
  FakeHttpServer server([](const HttpRequest&, ResponseWriter& w) {
    w.Start(200);
    w.Write("{\"a\":1}\n{\"b\"");
    w.Abort();
  });
  HttpClient client(Connect(server.url()));
  std::string got;
  EXPECT_THROW(client.Stream("/w", 5s, {},
                             [&](std::string_view d) {
                               got.append(d);
                               return true;
                             }),
               TransportError);
  EXPECT_EQ(got, "{\"a\":1}\n{\"b\"");
}

TEST(HttpClientTest, ExecPluginRerunAfter401) {
  char tmpl[] = "/tmp/kube-http-XXXXXX";
  std::string dir = ::mkdtemp(tmpl);
  RestConfig rc;
  ExecConfig e;
  e.command = std::string(KUBE_TESTDATA) + "/exec-plugin.sh";
  e.args = {"token"};
  e.api_version = "client.authentication.k8s.io/v1";
  e.interactive_mode = "Never";
  e.env = {{"EXEC_COUNT_FILE", dir + "/count"}};
  rc.exec = e;
  int calls = 0;
  FakeHttpServer server([&](const HttpRequest&, ResponseWriter& w) {
    if (++calls == 1) {
      w.Respond(401, R"({"kind":"Status","code":401,"reason":"Unauthorized"})");
    } else {
      w.Respond(200, "{}");
    }
  });
  rc.server = server.url();
  HttpClient client(ApiConnection::Open(rc));
  EXPECT_EQ(client.Get("/api", 5s).status, 200);
  auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[1].headers.at("authorization"), "Bearer exec-token");
  std::ifstream count(dir + "/count");
  int runs = 0;
  for (std::string l; std::getline(count, l);) ++runs;
  EXPECT_EQ(runs, 2);
  std::filesystem::remove_all(dir);
}

TEST(HttpClientTest, TlsServerNameRewritesTheUrlHost) {
  RestConfig rc;
  rc.server = "https://127.0.0.1:6443/prefix";
  rc.tls.server_name = "kubernetes";
  HttpClient client(ApiConnection::Open(rc));
  EXPECT_EQ(client.Url("/api/v1/services"), "https://kubernetes:6443/prefix/api/v1/services");
  RestConfig plain;
  plain.server = "https://10.0.0.1:6443";
  EXPECT_EQ(HttpClient(ApiConnection::Open(plain)).Url("/api"), "https://10.0.0.1:6443/api");
}

}  // namespace
}  // namespace sluice::kube
