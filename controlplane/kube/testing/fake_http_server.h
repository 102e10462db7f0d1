// A small HTTP/1.1 server on 127.0.0.1 for unit tests of the client: one thread per connection,
// keep-alive, chunked responses written as the handler goes, abrupt closes on demand. Every request
// is recorded.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/unique_fd.h"

namespace sluice::kube::testing {

struct HttpRequest {
  std::string method;
  std::string target;  // path and query as sent
  std::string path;
  std::map<std::string, std::string> query;    // decoded
  std::map<std::string, std::string> headers;  // lower-case names
};

class ResponseWriter {
 public:
  explicit ResponseWriter(int fd, const std::atomic<bool>& stopping)
      : fd_(fd), stopping_(stopping) {}
  // A complete response with Content-Length.
  void Respond(int status, std::string_view body,
               std::string_view content_type = "application/json");
  // A chunked response: Start, Write*, End (or Abort to drop the connection mid-body).
  void Start(int status, std::string_view content_type = "application/json");
  bool Write(std::string_view data);  // one chunk; false once the client is gone
  void End();
  void Abort();
  // Waits until the client disconnects, the server stops, or `max` passes. True if still open.
  bool Hold(std::chrono::milliseconds max);
  bool closed() const { return closed_; }

 private:
  bool SendAll(std::string_view data);
  int fd_;
  const std::atomic<bool>& stopping_;
  bool closed_ = false;
};

class FakeHttpServer {
 public:
  using Handler = std::function<void(const HttpRequest&, ResponseWriter&)>;
  explicit FakeHttpServer(Handler handler);
  ~FakeHttpServer();
  FakeHttpServer(const FakeHttpServer&) = delete;
  FakeHttpServer& operator=(const FakeHttpServer&) = delete;

  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::vector<HttpRequest> requests() const;
  int connections() const { return connections_.load(); }  // accepted so far
  bool stopping() const { return stopping_.load(); }

 private:
  void Accept();
  void Serve(int fd);

  Handler handler_;
  UniqueFd listen_fd_;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> connections_{0};
  mutable std::mutex mu_;
  std::vector<HttpRequest> requests_;
  std::vector<int> conn_fds_;
  std::vector<std::thread> threads_;
  std::thread accept_thread_;
};

}  // namespace sluice::kube::testing
