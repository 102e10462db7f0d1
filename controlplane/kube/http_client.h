// HTTPS to the API server over libcurl. One HttpClient is one connection's worth of state (a curl
// easy handle in its own multi handle, so keep-alive reuses the connection); use one per thread.
// Every request is cancellable through a std::stop_token: the stop wakes curl's poll at once.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <stop_token>
#include <string>
#include <string_view>

#include "controlplane/kube/credentials.h"
#include "controlplane/kube/rest_config.h"

namespace sluice::kube {

// A RestConfig with the credentials every request made with it shares.
struct ApiConnection {
  RestConfig config;
  std::shared_ptr<Credentials> credentials;

  static ApiConnection Open(RestConfig config) {
    auto credentials = std::make_shared<Credentials>(config);
    return {std::move(config), std::move(credentials)};
  }
};

struct HttpResponse {
  long status = 0;
  std::string content_type;
  std::string body;  // the whole body; for Stream, only that of a non-2xx answer
  bool ok() const { return status >= 200 && status < 300; }
};

struct HttpOptions {
  std::chrono::milliseconds connect_timeout{10000};
  std::string user_agent = "sluice/0.1 (linux) kube-client";
};

class HttpClient {
 public:
  explicit HttpClient(ApiConnection connection, HttpOptions options = {});
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // GET `path` (with its query) relative to the server URL. Any HTTP status is returned; a
  // transport failure (connect, TLS, timeout, reset) throws TransportError, a stop Cancelled,
  // credentials that cannot be had CredentialError. A 401 is retried once when the credentials
  // may have changed (exec plugin re-run, token file rotated).
  HttpResponse Get(std::string_view path, std::chrono::milliseconds timeout,
                   std::stop_token stop = {});

  // Like Get, but a 2xx body goes to on_chunk as it arrives instead of into the response;
  // on_chunk returns false to stop reading (the call then returns normally). An exception thrown
  // by on_chunk ends the transfer and propagates. on_tick, when given, is called about once a
  // second while the transfer is open, data or not; false stops it the same way.
  HttpResponse Stream(std::string_view path, std::chrono::milliseconds timeout,
                      std::stop_token stop, const std::function<bool(std::string_view)>& on_chunk,
                      const std::function<bool()>& on_tick = {});

  // The URL a path is requested at (for messages).
  std::string Url(std::string_view path) const;
  const RestConfig& config() const { return connection_.config; }

 private:
  struct Curl;
  HttpResponse Perform(std::string_view path, std::chrono::milliseconds timeout,
                       std::stop_token stop, const std::function<bool(std::string_view)>* on_chunk,
                       const std::function<bool()>* on_tick);
  HttpResponse PerformOnce(std::string_view path, std::chrono::milliseconds timeout,
                           std::stop_token stop,
                           const std::function<bool(std::string_view)>* on_chunk,
                           const std::function<bool()>* on_tick,
                           const Credentials::Snapshot& creds);

  ApiConnection connection_;
  HttpOptions options_;
  std::string base_url_;    // server URL, host replaced by tls-server-name when set
  std::string connect_to_;  // "name:port:host:port" when tls-server-name is set
  std::unique_ptr<Curl> curl_;
};

}  // namespace sluice::kube
