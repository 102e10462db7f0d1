#include "controlplane/kube/testing/fake_http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <stdexcept>

namespace sluice::kube::testing {

namespace {

const char* Reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 410:
      return "Gone";
    case 422:
      return "Unprocessable Entity";
    case 429:
      return "Too Many Requests";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "Status";
  }
}

std::string Decode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size()) {
      out += static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

}  // namespace

bool ResponseWriter::SendAll(std::string_view data) {
  while (!data.empty() && !closed_) {
    ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      closed_ = true;
      return false;
    }
    data.remove_prefix(n);
  }
  return !closed_;
}

void ResponseWriter::Respond(int status, std::string_view body, std::string_view content_type) {
  std::string head = "HTTP/1.1 " + std::to_string(status) + " " + Reason(status) +
                     "\r\nContent-Type: " + std::string(content_type) +
                     "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n";
  SendAll(head);
  SendAll(body);
}

void ResponseWriter::Start(int status, std::string_view content_type) {
  SendAll("HTTP/1.1 " + std::to_string(status) + " " + Reason(status) + "\r\nContent-Type: " +
          std::string(content_type) + "\r\nTransfer-Encoding: chunked\r\n\r\n");
}

bool ResponseWriter::Write(std::string_view data) {
  if (data.empty()) return !closed_;
  char size[32];
  std::snprintf(size, sizeof size, "%zx\r\n", data.size());
  return SendAll(size) && SendAll(data) && SendAll("\r\n");
}

void ResponseWriter::End() { SendAll("0\r\n\r\n"); }

void ResponseWriter::Abort() {
  ::shutdown(fd_, SHUT_RDWR);
  closed_ = true;
}

bool ResponseWriter::Hold(std::chrono::milliseconds max) {
  auto deadline = std::chrono::steady_clock::now() + max;
  while (!closed_ && !stopping_.load() && std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 20) > 0) {
      char c;
      if (::recv(fd_, &c, 1, MSG_PEEK | MSG_DONTWAIT) <= 0) closed_ = true;
    }
  }
  return !closed_ && !stopping_.load();
}

FakeHttpServer::FakeHttpServer(Handler handler) : handler_(std::move(handler)) {
  listen_fd_.Reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (::bind(listen_fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listen_fd_.get(), 64) != 0) {
    throw std::runtime_error(std::string("fake server: ") + std::strerror(errno));
  }
  socklen_t len = sizeof addr;
  ::getsockname(listen_fd_.get(), reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  accept_thread_ = std::thread([this] { Accept(); });
}

FakeHttpServer::~FakeHttpServer() {
  stopping_.store(true);
  ::shutdown(listen_fd_.get(), SHUT_RDWR);
  accept_thread_.join();
  {
    std::lock_guard lock(mu_);
    for (int fd : conn_fds_) ::shutdown(fd, SHUT_RDWR);
  }
  for (auto& t : threads_) t.join();
}

std::vector<HttpRequest> FakeHttpServer::requests() const {
  std::lock_guard lock(mu_);
  return requests_;
}

void FakeHttpServer::Accept() {
  while (!stopping_.load()) {
    int fd = ::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return;
    }
    std::lock_guard lock(mu_);
    if (stopping_.load()) {
      ::close(fd);
      return;
    }
    conn_fds_.push_back(fd);
    ++connections_;
    threads_.emplace_back([this, fd] { Serve(fd); });
  }
}

void FakeHttpServer::Serve(int fd) {
  UniqueFd conn(fd);
  std::string buffer;
  while (!stopping_.load()) {
    size_t end;
    while ((end = buffer.find("\r\n\r\n")) == std::string::npos) {
      char chunk[4096];
      ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
      if (n <= 0) {
        std::lock_guard lock(mu_);
        std::erase(conn_fds_, fd);
        return;
      }
      buffer.append(chunk, n);
    }
    std::string head = buffer.substr(0, end);
    buffer.erase(0, end + 4);
    HttpRequest req;
    size_t line_end = head.find("\r\n");
    std::string request_line = head.substr(0, line_end);
    size_t sp1 = request_line.find(' '), sp2 = request_line.rfind(' ');
    req.method = request_line.substr(0, sp1);
    req.target = request_line.substr(sp1 + 1, sp2 - sp1 - 1);
    size_t qmark = req.target.find('?');
    req.path = req.target.substr(0, qmark);
    if (qmark != std::string::npos) {
      std::string_view q = std::string_view(req.target).substr(qmark + 1);
      while (!q.empty()) {
        size_t amp = q.find('&');
        std::string_view kv = q.substr(0, amp);
        size_t eq = kv.find('=');
        req.query[Decode(kv.substr(0, eq))] =
            eq == std::string_view::npos ? "" : Decode(kv.substr(eq + 1));
        if (amp == std::string_view::npos) break;
        q.remove_prefix(amp + 1);
      }
    }
    size_t pos = line_end;
    while (pos != std::string::npos && pos + 2 < head.size()) {
      size_t next = head.find("\r\n", pos + 2);
      std::string line =
          head.substr(pos + 2, next == std::string::npos ? std::string::npos : next - pos - 2);
      size_t colon = line.find(':');
      if (colon != std::string::npos) {
        std::string name = line.substr(0, colon);
        for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        size_t v = line.find_first_not_of(' ', colon + 1);
        req.headers[name] = v == std::string::npos ? "" : line.substr(v);
      }
      pos = next;
    }
    {
      std::lock_guard lock(mu_);
      requests_.push_back(req);
    }
    ResponseWriter writer(fd, stopping_);
    handler_(req, writer);
    if (writer.closed()) break;
  }
  std::lock_guard lock(mu_);
  std::erase(conn_fds_, fd);
}

}  // namespace sluice::kube::testing
