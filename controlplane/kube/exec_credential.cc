#include "controlplane/kube/exec_credential.h"

#include <cstring>
#include <ctime>
#include <nlohmann/json.hpp>
#include <vector>

#include "common/subprocess.h"
#include "controlplane/kube/errors.h"
#include "controlplane/kube/kubeconfig.h"

extern char** environ;

namespace sluice::kube {

namespace {

using Json = nlohmann::json;

constexpr size_t kMaxStdout = 1u << 20;
constexpr size_t kMaxStderr = 64u << 10;

std::string Name(const ExecConfig& exec) { return "exec plugin " + exec.command; }

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
  // argv and envp: our environment, then the plugin's env entries, then KUBERNETES_EXEC_INFO.
  std::vector<std::string> argv{exec.command};
  argv.insert(argv.end(), exec.args.begin(), exec.args.end());
  ProcessOptions options;
  options.timeout = timeout;
  options.max_stdout = kMaxStdout;
  options.max_stderr = kMaxStderr;
  std::vector<std::string>& env = options.env.emplace();
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

  ProcessResult r;
  try {
    r = RunProcess(argv, {}, options);  // stdin: at its end at once
  } catch (const SpawnError& e) {
    std::string msg = Name(exec) + ": cannot run: " + std::strerror(e.code());
    if (!exec.install_hint.empty()) msg += "; " + exec.install_hint;
    throw CredentialError(msg + " (" + exec.origin + ")");
  } catch (const std::exception& e) {
    throw CredentialError(Name(exec) + ": " + e.what());
  }
  if (r.timed_out) {
    throw CredentialError(Name(exec) + ": no answer within " +
                          std::to_string(timeout.count() / 1000) + " s");
  }
  if (!r.ok()) {
    std::string msg = Name(exec) + ": " +
                      (r.signal ? "killed by signal " + std::to_string(r.signal)
                                : "exit status " + std::to_string(r.exit_code));
    if (std::string line = LastLine(r.err); !line.empty()) msg += ": " + line;
    if (!exec.install_hint.empty() && r.exit_code == 127) msg += "; " + exec.install_hint;
    throw CredentialError(msg);
  }
  const std::string& out = r.out;
  return ParseExecCredential(out, exec);
}

}  // namespace sluice::kube
