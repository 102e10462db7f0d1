// A small HTTP/1.1 server on libmicrohttpd for the proxy's status endpoints: the healthz server,
// the metrics server and one health-check node port server per Service. Exact-path routes and
// an optional fallback for every other path, GET and HEAD only, handlers return the whole
// response.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

struct MHD_Daemon;

namespace sluice::proxy {

struct HttpRequest {
  std::string method;  // "GET" or "HEAD"
  std::string path;    // without the query string
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // beyond Content-Type
};

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;
// Path -> handler; a path matches exactly ("/healthz" does not serve "/healthz/x").
using HttpRoutes = std::map<std::string, HttpHandler>;

// Why a server could not start: the bind address and the kernel's reason.
class HttpServerError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// "IP:port" as kube-proxy's flags take it: "0.0.0.0:10256", "[::]:10249", "127.0.0.1:0"; an
// empty host (":10256") listens on every address of both families, as Go does.
struct BindAddress {
  std::string host;  // "" for any
  uint16_t port = 0;
  // Throws HttpServerError naming the text.
  static BindAddress Parse(std::string_view text);
};

class HttpServer {
 public:
  // Binds and starts serving on MHD's own thread. `name` prefixes errors and logs ("healthz
  // server"). Throws HttpServerError, e.g. "healthz server: bind 0.0.0.0:10256: Address already
  // in use". `fallback`, when set, answers the paths no route matches instead of a 404 (a health
  // check node port answers every path).
  HttpServer(std::string name, std::string_view bind_address, HttpRoutes routes,
             HttpHandler fallback = nullptr);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // The bound port (the ephemeral one when the address asked for port 0).
  uint16_t port() const { return port_; }
  const std::string& name() const { return name_; }

  // Stops accepting, closes connections and waits for a running handler. Idempotent.
  void Stop();

  // What the server answers for `request`, without the network: routing, fallback, 404 and 405.
  HttpResponse Dispatch(const HttpRequest& request) const;

 private:
  std::string name_;
  HttpRoutes routes_;
  HttpHandler fallback_;
  uint16_t port_ = 0;
  MHD_Daemon* daemon_ = nullptr;
};

}  // namespace sluice::proxy
