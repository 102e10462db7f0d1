// Errors of the Kubernetes client layer (controlplane/kube). This layer throws; the reflector is
// the edge that catches, logs one line and retries. Every message names what it was about: the
// kubeconfig file and key, the exec plugin, or the request URL.
#pragma once

#include <stdexcept>
#include <string>

#include "controlplane/api/status.h"

namespace sluice::kube {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A kubeconfig or in-cluster setting is missing, malformed or contradictory:
// "kubeconfig /root/.kube/config: users[admin].user.client-key: file /x: No such file or
// directory".
class ConfigError : public Error {
 public:
  using Error::Error;
};

// Credentials could not be had at request time: the exec plugin failed or said nothing usable, the
// token file cannot be read.
class CredentialError : public Error {
 public:
  using Error::Error;
};

// No HTTP answer: connection refused, TLS verification failed, timeout, connection reset mid-body.
class TransportError : public Error {
 public:
  TransportError(const std::string& message, std::string url, int curl_code, bool tls)
      : Error(message), url_(std::move(url)), curl_code_(curl_code), tls_(tls) {}
  const std::string& url() const { return url_; }
  int curl_code() const { return curl_code_; }
  bool tls() const { return tls_; }  // the TLS handshake or the peer's certificate failed

 private:
  std::string url_;
  int curl_code_;
  bool tls_;
};

// The server answered with an error status; status() holds its Status object (or what could be
// made of the body when it sent none).
class ApiError : public Error {
 public:
  ApiError(const std::string& message, std::string url, api::Status status)
      : Error(message), url_(std::move(url)), status_(std::move(status)) {}
  const std::string& url() const { return url_; }
  const api::Status& status() const { return status_; }
  int code() const { return status_.code; }

 private:
  std::string url_;
  api::Status status_;
};

// Stop was requested while a request or a wait was in progress.
class Cancelled : public Error {
 public:
  Cancelled() : Error("cancelled") {}
};

}  // namespace sluice::kube
