#include "controlplane/kube/exec_credential.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <nlohmann/json.hpp>
#include <vector>

#include "common/unique_fd.h"
#include "controlplane/kube/errors.h"
#include "controlplane/kube/kubeconfig.h"

extern char** environ;

namespace sluice::kube {

namespace {

using Json = nlohmann::json;

constexpr size_t kMaxStdout = 1u << 20;
constexpr size_t kMaxStderr = 64u << 10;

std::string Name(const ExecConfig& exec) { return "exec plugin " + exec.command; }

// A spawned child that is killed and reaped if we leave before it exits.
class ChildProcess {
 public:
  explicit ChildProcess(pid_t pid) : pid_(pid) {}
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int status;
      while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
    }
  }
  // Blocks until it exits; returns the wait status.
  int Wait() {
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    return status;
  }

 private:
  pid_t pid_;
};

// Owns a posix_spawn_file_actions_t.
class SpawnActions {
 public:
  SpawnActions() { posix_spawn_file_actions_init(&actions_); }
  ~SpawnActions() { posix_spawn_file_actions_destroy(&actions_); }
  SpawnActions(const SpawnActions&) = delete;
  SpawnActions& operator=(const SpawnActions&) = delete;
  posix_spawn_file_actions_t* get() { return &actions_; }

 private:
  posix_spawn_file_actions_t actions_;
};

std::string LastLine(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  auto nl = text.rfind('\n');
  if (nl != std::string::npos) text = text.substr(nl + 1);
  if (text.size() > 300) text = text.substr(0, 300) + "...";
  return text;
}

int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

}  // namespace

std::optional<std::chrono::system_clock::time_point> ParseRfc3339(std::string_view t) {
  auto digits = [&](size_t pos, size_t n, int* out) {
    if (pos + n > t.size()) return false;
    int v = 0;
    for (size_t i = pos; i < pos + n; ++i) {
      if (t[i] < '0' || t[i] > '9') return false;
      v = v * 10 + (t[i] - '0');
    }
    *out = v;
    return true;
  };
  int year, mon, day, hour, min, sec;
  if (!digits(0, 4, &year) || t.size() < 20 || t[4] != '-' || !digits(5, 2, &mon) || t[7] != '-' ||
      !digits(8, 2, &day) || (t[10] != 'T' && t[10] != 't') || !digits(11, 2, &hour) ||
      t[13] != ':' || !digits(14, 2, &min) || t[16] != ':' || !digits(17, 2, &sec)) {
    return std::nullopt;
  }
  if (mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60) {
    return std::nullopt;
  }
  size_t pos = 19;
  int64_t nanos = 0;
  if (pos < t.size() && t[pos] == '.') {
    ++pos;
    int64_t scale = 100000000;
    size_t start = pos;
    while (pos < t.size() && t[pos] >= '0' && t[pos] <= '9') {
      nanos += (t[pos] - '0') * scale;
      scale /= 10;
      ++pos;
    }
    if (pos == start) return std::nullopt;
  }
  int64_t offset = 0;
  if (pos < t.size() && (t[pos] == 'Z' || t[pos] == 'z')) {
    ++pos;
  } else if (pos < t.size() && (t[pos] == '+' || t[pos] == '-')) {
    int oh, om;
    if (!digits(pos + 1, 2, &oh) || pos + 3 >= t.size() || t[pos + 3] != ':' ||
        !digits(pos + 4, 2, &om) || oh > 23 || om > 59) {
      return std::nullopt;
    }
    offset = (oh * 3600 + om * 60) * (t[pos] == '+' ? 1 : -1);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != t.size()) return std::nullopt;
  int64_t secs = DaysFromCivil(year, mon, day) * 86400 + hour * 3600 + min * 60 + sec - offset;
  return std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(
          std::chrono::seconds(secs) + std::chrono::nanoseconds(nanos)));
}

std::string ExecInfoJson(const ExecConfig& exec, const ExecClusterInfo& cluster) {
  Json spec = {{"interactive", false}};
  if (exec.provide_cluster_info) {
    Json c = {{"server", cluster.server}};
    if (!cluster.tls_server_name.empty()) c["tls-server-name"] = cluster.tls_server_name;
    if (cluster.insecure_skip_tls_verify) c["insecure-skip-tls-verify"] = true;
    if (!cluster.ca_pem.empty()) c["certificate-authority-data"] = EncodeBase64(cluster.ca_pem);
    if (!cluster.proxy_url.empty()) c["proxy-url"] = cluster.proxy_url;
    if (cluster.disable_compression) c["disable-compression"] = true;
    spec["cluster"] = std::move(c);
  }
  Json info = {{"apiVersion", exec.api_version}, {"kind", "ExecCredential"}, {"spec", spec}};
  return info.dump();
}

ExecCredential ParseExecCredential(std::string_view output, const ExecConfig& exec) {
  Json doc = Json::parse(output, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object()) {
    throw CredentialError(Name(exec) + ": output is not an ExecCredential JSON object");
  }
  auto str = [&](const Json& o, const char* key) -> std::string {
    auto it = o.find(key);
    if (it == o.end() || it->is_null()) return "";
    if (!it->is_string()) {
      throw CredentialError(Name(exec) + ": ExecCredential " + key + ": must be a string");
    }
    return it->get<std::string>();
  };
  std::string kind = str(doc, "kind");
  if (kind != "ExecCredential") {
    throw CredentialError(Name(exec) + ": output has kind \"" + kind + "\", want ExecCredential");
  }
  std::string version = str(doc, "apiVersion");
  if (version != exec.api_version) {
    throw CredentialError(Name(exec) + ": configured for " + exec.api_version +
                          " but the plugin returned \"" + version + "\"");
  }
  auto status = doc.find("status");
  if (status == doc.end() || !status->is_object()) {
    throw CredentialError(Name(exec) + ": ExecCredential has no status");
  }
  ExecCredential cred;
  cred.token = str(*status, "token");
  cred.client_certificate_pem = str(*status, "clientCertificateData");
  cred.client_key_pem = str(*status, "clientKeyData");
  if (cred.client_certificate_pem.empty() != cred.client_key_pem.empty()) {
    throw CredentialError(Name(exec) + ": status has " +
                          (cred.client_key_pem.empty()
                               ? "clientCertificateData without clientKeyData"
                               : "clientKeyData without clientCertificateData"));
  }
  if (cred.token.empty() && cred.client_certificate_pem.empty()) {
    throw CredentialError(Name(exec) + ": status has neither a token nor a client certificate");
  }
  if (std::string exp = str(*status, "expirationTimestamp"); !exp.empty()) {
    cred.expiration = ParseRfc3339(exp);
    if (!cred.expiration) {
      throw CredentialError(Name(exec) + ": status.expirationTimestamp \"" + exp +
                            "\" is not an RFC 3339 time");
    }
  }
  return cred;
}

ExecCredential RunExecPlugin(const ExecConfig& exec, const ExecClusterInfo& cluster,
                             std::chrono::milliseconds timeout) {
  if (exec.interactive_mode == "Always") {
    throw CredentialError(Name(exec) +
                          ": interactiveMode Always needs a terminal, and we have "
                          "none (" +
                          exec.origin + ")");
  }
  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
    throw CredentialError(Name(exec) + ": pipe: " + std::strerror(errno));
  }
  UniqueFd out_r(out_pipe[0]), out_w(out_pipe[1]);
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    throw CredentialError(Name(exec) + ": pipe: " + std::strerror(errno));
  }
  UniqueFd err_r(err_pipe[0]), err_w(err_pipe[1]);

  SpawnActions actions;
  posix_spawn_file_actions_addopen(actions.get(), 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(actions.get(), out_w.get(), 1);
  posix_spawn_file_actions_adddup2(actions.get(), err_w.get(), 2);

  // argv and envp: our environment, then the plugin's env entries, then KUBERNETES_EXEC_INFO.
  std::vector<std::string> args{exec.command};
  args.insert(args.end(), exec.args.begin(), exec.args.end());
  std::vector<std::string> env;
  auto overridden = [&](std::string_view entry) {
    auto eq = entry.find('=');
    std::string_view name = entry.substr(0, eq);
    if (name == "KUBERNETES_EXEC_INFO") return true;
    for (const auto& [n, v] : exec.env) {
      if (n == name) return true;
    }
    return false;
  };
  for (char** e = environ; e && *e; ++e) {
    if (!overridden(*e)) env.emplace_back(*e);
  }
  for (const auto& [n, v] : exec.env) env.push_back(n + "=" + v);
  env.push_back("KUBERNETES_EXEC_INFO=" + ExecInfoJson(exec, cluster));
  std::vector<char*> argv, envp;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);

  pid_t pid = -1;
  bool has_slash = exec.command.find('/') != std::string::npos;
  int rc = has_slash ? posix_spawn(&pid, exec.command.c_str(), actions.get(), nullptr, argv.data(),
                                   envp.data())
                     : posix_spawnp(&pid, exec.command.c_str(), actions.get(), nullptr, argv.data(),
                                    envp.data());
  if (rc != 0) {
    std::string msg = Name(exec) + ": cannot run: " + std::strerror(rc);
    if (!exec.install_hint.empty()) msg += "; " + exec.install_hint;
    throw CredentialError(msg + " (" + exec.origin + ")");
  }
  ChildProcess child(pid);
  out_w.Reset();
  err_w.Reset();

  std::string out, err;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (out_r.valid() || err_r.valid()) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      throw CredentialError(Name(exec) + ": no answer within " +
                            std::to_string(timeout.count() / 1000) + " s");
    }
    pollfd fds[2];
    int n = 0;
    if (out_r.valid()) fds[n++] = {out_r.get(), POLLIN, 0};
    if (err_r.valid()) fds[n++] = {err_r.get(), POLLIN, 0};
    int ready = ::poll(fds, n, static_cast<int>(left.count()));
    if (ready < 0 && errno != EINTR) {
      throw CredentialError(Name(exec) + ": poll: " + std::strerror(errno));
    }
    for (int i = 0; i < n && ready > 0; ++i) {
      if (!fds[i].revents) continue;
      bool is_out = out_r.valid() && fds[i].fd == out_r.get();
      std::string& buf = is_out ? out : err;
      char chunk[4096];
      ssize_t got = ::read(fds[i].fd, chunk, sizeof chunk);
      if (got > 0) {
        size_t limit = is_out ? kMaxStdout : kMaxStderr;
        if (buf.size() < limit) buf.append(chunk, std::min<size_t>(got, limit - buf.size()));
      } else if (got == 0 || errno != EINTR) {
        (is_out ? out_r : err_r).Reset();
      }
    }
  }
  int status = child.Wait();
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::string how = WIFEXITED(status) ? "exit status " + std::to_string(WEXITSTATUS(status))
                                        : "killed by signal " + std::to_string(WTERMSIG(status));
    std::string msg = Name(exec) + ": " + how;
    if (std::string line = LastLine(err); !line.empty()) msg += ": " + line;
    if (!exec.install_hint.empty() && WIFEXITED(status) && WEXITSTATUS(status) == 127) {
      msg += "; " + exec.install_hint;
    }
    throw CredentialError(msg);
  }
  return ParseExecCredential(out, exec);
}

}  // namespace sluice::kube
