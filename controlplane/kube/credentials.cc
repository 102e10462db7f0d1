#include "controlplane/kube/credentials.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "common/log.h"
#include "controlplane/kube/errors.h"

namespace sluice::kube {

Credentials::Credentials(const RestConfig& config, Clock clock)
    : token_(config.token),
      token_file_(config.token_file),
      token_file_refresh_(config.token_file_refresh),
      exec_(config.exec),
      exec_cluster_(config.exec_cluster),
      clock_(std::move(clock)) {}

std::string Credentials::TokenFromFile(std::chrono::system_clock::time_point now) {
  if (file_read_at_ && now - *file_read_at_ < token_file_refresh_) return file_token_;
  std::ifstream in(token_file_, std::ios::binary);
  std::ostringstream text;
  if (in) text << in.rdbuf();
  if (!in || in.bad()) {
    std::string error = std::strerror(errno);
    if (file_token_.empty()) {
      throw CredentialError("token file " + token_file_ + ": " + error);
    }
    SLOG_WARN << "token file " << token_file_ << ": " << error << "; using the token read before";
    file_read_at_ = now;
    return file_token_;
  }
  std::string token = text.str();
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r' || token.back() == ' ')) {
    token.pop_back();
  }
  file_token_ = token;
  file_read_at_ = now;
  return file_token_;
}

Credentials::Snapshot Credentials::Current() {
  std::lock_guard lock(mu_);
  Snapshot s;
  if (!token_.empty()) {
    s.bearer_token = token_;
  } else if (!token_file_.empty()) {
    s.bearer_token = TokenFromFile(clock_());
  } else if (exec_) {
    auto now = clock_();
    if (!exec_credential_ ||
        (exec_credential_->expiration && now >= *exec_credential_->expiration)) {
      // Holding the lock while the plugin runs: concurrent requests wait for its one answer.
      exec_credential_ = RunExecPlugin(*exec_, exec_cluster_);
      ++generation_;
    }
    s.bearer_token = exec_credential_->token;
    s.client_certificate_pem = exec_credential_->client_certificate_pem;
    s.client_key_pem = exec_credential_->client_key_pem;
  }
  s.generation = generation_;
  return s;
}

bool Credentials::Unauthorized(const Snapshot& used) {
  std::lock_guard lock(mu_);
  if (exec_) {
    if (used.generation == generation_) exec_credential_.reset();
    return true;
  }
  if (!token_file_.empty()) {
    // The file may hold a newer token than the one we read less than a minute ago.
    file_read_at_.reset();
    try {
      return TokenFromFile(clock_()) != used.bearer_token;
    } catch (const CredentialError&) {
      return false;
    }
  }
  return false;
}

}  // namespace sluice::kube
