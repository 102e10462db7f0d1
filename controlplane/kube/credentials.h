// Who we are to the API server, as of now: a static token, a token file re-read every minute (bound
// service account tokens rotate), or an exec plugin's credential cached until it expires or the
// server answers 401. Shared by every request of one RestConfig; thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>

#include "controlplane/kube/exec_credential.h"
#include "controlplane/kube/rest_config.h"

namespace sluice::kube {

class Credentials {
 public:
  using Clock = std::function<std::chrono::system_clock::time_point()>;

  struct Snapshot {
    std::string bearer_token;  // empty: none
    // A client certificate from an exec plugin (files or data from the kubeconfig are TLS config).
    std::string client_certificate_pem;
    std::string client_key_pem;
    uint64_t generation = 0;  // changes each time the exec plugin is run
  };

  explicit Credentials(const RestConfig& config, Clock clock = &std::chrono::system_clock::now);

  // Throws CredentialError when the exec plugin fails or the token file was never readable.
  Snapshot Current();
  // A request made with `used` got 401: drop the exec credential (if still the same one) so the
  // next Current() runs the plugin again. True when a retry may get different credentials.
  bool Unauthorized(const Snapshot& used);

 private:
  std::string TokenFromFile(std::chrono::system_clock::time_point now);

  std::string token_;
  std::string token_file_;
  std::chrono::seconds token_file_refresh_;
  std::optional<ExecConfig> exec_;
  ExecClusterInfo exec_cluster_;
  Clock clock_;

  std::mutex mu_;
  std::string file_token_;
  std::optional<std::chrono::system_clock::time_point> file_read_at_;
  std::optional<ExecCredential> exec_credential_;
  uint64_t generation_ = 0;
};

}  // namespace sluice::kube
