#include "proxy/http_server.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <optional>

#include "common/ip_address.h"
#include "common/log.h"
#include "common/unique_fd.h"

namespace sluice::proxy {
namespace {

// Idle keep-alive connections are dropped after this long: probers reconnect, and a client that
// stops reading cannot hold a slot forever.
constexpr unsigned kConnectionTimeoutSeconds = 60;

std::string ErrnoText(int err) { return std::strerror(err); }

bool ParsePort(std::string_view text, uint16_t& port) {
  if (text.empty() || text.size() > 5) return false;
  unsigned v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<unsigned>(c - '0');
  }
  if (v > 65535) return false;
  port = static_cast<uint16_t>(v);
  return true;
}

void LogFromMhd(void* cls, const char* format, va_list args) {
  char buf[512];
  std::vsnprintf(buf, sizeof(buf), format, args);
  std::string_view msg(buf);
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == '\r')) msg.remove_suffix(1);
  SLOG_WARN << static_cast<const HttpServer*>(cls)->name() << ": " << msg;
}

MHD_Result OnRequest(void* cls, MHD_Connection* connection, const char* url, const char* method,
                     const char* /*version*/, const char* /*upload_data*/, size_t* upload_data_size,
                     void** request_state) {
  // MHD calls once for the headers, then for every piece of body, then once more with no
  // data: answer on the last call, after discarding any body a client sent.
  static int headers_seen;
  if (*request_state == nullptr) {
    *request_state = &headers_seen;
    return MHD_YES;
  }
  if (*upload_data_size != 0) {
    *upload_data_size = 0;
    return MHD_YES;
  }
  const auto* server = static_cast<const HttpServer*>(cls);
  HttpResponse r = server->Dispatch(HttpRequest{method, url});
  MHD_Response* response = MHD_create_response_from_buffer(
      r.body.size(), r.body.empty() ? nullptr : r.body.data(), MHD_RESPMEM_MUST_COPY);
  if (response == nullptr) return MHD_NO;  // out of memory: MHD drops the connection
  MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, r.content_type.c_str());
  for (const auto& [name, value] : r.headers) {
    MHD_add_response_header(response, name.c_str(), value.c_str());
  }
  // HEAD: MHD sends the headers (Content-Length included) and leaves the body out.
  MHD_Result queued = MHD_queue_response(connection, static_cast<unsigned>(r.status), response);
  MHD_destroy_response(response);
  return queued;
}

}  // namespace

BindAddress BindAddress::Parse(std::string_view text) {
  auto fail = [&](const char* why) {
    return HttpServerError("bind address \"" + std::string(text) + "\": " + why);
  };
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) throw fail("want IP:port");
  std::string_view host = text.substr(0, colon);
  BindAddress out;
  if (!ParsePort(text.substr(colon + 1), out.port)) throw fail("invalid port");
  if (host.empty()) return out;
  if (host.front() == '[') {
    if (host.size() < 2 || host.back() != ']') throw fail("unbalanced brackets");
    host = host.substr(1, host.size() - 2);
    std::optional<IpAddress> ip = IpAddress::Parse(host);
    if (!ip || ip->is_v4()) throw fail("not an IPv6 address in brackets");
  } else {
    std::optional<IpAddress> ip = IpAddress::Parse(host);
    if (!ip || !ip->is_v4()) throw fail("want an IPv4 address or [IPv6]");
  }
  out.host = std::string(host);
  return out;
}

HttpServer::HttpServer(std::string name, std::string_view bind_address, HttpRoutes routes,
                       HttpHandler fallback)
    : name_(std::move(name)), routes_(std::move(routes)), fallback_(std::move(fallback)) {
  const std::string address(bind_address);
  BindAddress bind;
  try {
    bind = BindAddress::Parse(bind_address);
  } catch (const HttpServerError& e) {
    throw HttpServerError(name_ + ": " + e.what());
  }
  // An empty host is both families on one socket (IPV6_V6ONLY off), like Go's ":port".
  IpAddress ip = bind.host.empty() ? IpAddress::MustParse("::") : IpAddress::MustParse(bind.host);
  sockaddr_storage storage{};
  socklen_t length = 0;
  if (ip.is_v4()) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&storage);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(bind.port);
    sin->sin_addr = ip.v4();
    length = sizeof(sockaddr_in);
  } else {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&storage);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(bind.port);
    sin6->sin6_addr = ip.v6();
    length = sizeof(sockaddr_in6);
  }

  // We bind the socket ourselves so a failure carries the kernel's reason; MHD only serves it.
  auto fail = [&](const char* step) {
    return HttpServerError(name_ + ": " + step + " " + address + ": " + ErrnoText(errno));
  };
  UniqueFd fd(::socket(ip.af(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) throw fail("socket");
  int on = 1;
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0)
    throw fail("setsockopt");
  if (!ip.is_v4()) {
    // Go listens dual-stack on the IPv6 wildcard; a specific IPv6 address is IPv6 either way.
    int v6only = 0;
    if (::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only)) != 0) {
      throw fail("setsockopt");
    }
  }
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&storage), length) != 0) throw fail("bind");
  if (::listen(fd.get(), SOMAXCONN) != 0) throw fail("listen");
  sockaddr_storage bound{};
  socklen_t bound_length = sizeof(bound);
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&bound), &bound_length) != 0) {
    throw fail("getsockname");
  }
  port_ = ntohs(bound.ss_family == AF_INET ? reinterpret_cast<sockaddr_in*>(&bound)->sin_port
                                           : reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);

  // One internal polling thread (epoll when available) for all connections, rather than a
  // thread per connection: every handler answers from memory in microseconds, while load
  // balancer health checkers and Prometheus hold idle keep-alive connections that would each
  // pin a thread.
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG;
  if (!ip.is_v4()) flags |= MHD_USE_IPv6;
  daemon_ = MHD_start_daemon(
      flags, 0, nullptr, nullptr, &OnRequest, this, MHD_OPTION_EXTERNAL_LOGGER, &LogFromMhd, this,
      MHD_OPTION_LISTEN_SOCKET, static_cast<MHD_socket>(fd.get()), MHD_OPTION_CONNECTION_TIMEOUT,
      kConnectionTimeoutSeconds, MHD_OPTION_END);
  // MHD owns the listen socket from here and MHD_stop_daemon closes it. Whether a failed start
  // closes it is not documented: we let go of it either way (at worst a leak on a path where the
  // proxy exits), never risking a double close of a reused descriptor.
  fd.Release();
  if (daemon_ == nullptr) {
    throw HttpServerError(name_ + ": serve " + address + ": libmicrohttpd failed to start");
  }
  SLOG_INFO << name_ << ": serving on " << address << " (port " << port_ << ")";
}

HttpServer::~HttpServer() { Stop(); }

void HttpServer::Stop() {
  if (daemon_ == nullptr) return;
  MHD_stop_daemon(daemon_);
  daemon_ = nullptr;
}

HttpResponse HttpServer::Dispatch(const HttpRequest& request) const {
  const HttpHandler* handler = nullptr;
  if (auto route = routes_.find(request.path); route != routes_.end()) {
    handler = &route->second;
  } else if (fallback_) {
    handler = &fallback_;
  } else {
    return {404,
            "text/plain; charset=utf-8",
            "404 page not found\n",
            {{"X-Content-Type-Options", "nosniff"}}};
  }
  if (request.method != "GET" && request.method != "HEAD") {
    return {405,
            "text/plain; charset=utf-8",
            "Method Not Allowed\n",
            {{"Allow", "GET, HEAD"}, {"X-Content-Type-Options", "nosniff"}}};
  }
  try {
    return (*handler)(request);
  } catch (const std::exception& e) {
    SLOG_ERROR << name_ << ": " << request.method << " " << request.path << ": " << e.what();
  } catch (...) {
    SLOG_ERROR << name_ << ": " << request.method << " " << request.path << ": unknown exception";
  }
  return {500,
          "text/plain; charset=utf-8",
          "Internal Server Error\n",
          {{"X-Content-Type-Options", "nosniff"}}};
}

}  // namespace sluice::proxy
