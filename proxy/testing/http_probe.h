// A raw-socket HTTP/1.1 client for the proxy's server tests: one request per connection, the
// response read to EOF and split into status, headers and body. No HTTP library in the way, so
// the tests see exactly what went over the wire.
#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace sluice::proxy::testing {

struct ProbeResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  std::string raw;
};

// Sends `method path` to host:port (host "127.0.0.1" or "::1") with "Connection: close" and
// `body` if non-empty. Throws std::runtime_error on a socket error or a malformed response.
ProbeResponse Probe(const std::string& host, uint16_t port, const std::string& method,
                    const std::string& path, const std::string& body = "");

// Parses a complete response (for HEAD, a body is never expected).
ProbeResponse ParseResponse(const std::string& raw, bool head);

}  // namespace sluice::proxy::testing
