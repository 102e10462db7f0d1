#include "controlplane/kube/kubeconfig.h"

#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "common/log.h"
#include "controlplane/kube/errors.h"

namespace sluice::kube {

namespace {

using Json = nlohmann::json;

// YAML becomes the same tree as JSON. Scalars stay strings: each key's reader decides what they
// mean (as sigs.k8s.io/yaml does with the target type), so `token: 12345` is the string "12345".
Json YamlToJson(const YAML::Node& node, const std::string& origin) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return nullptr;
    case YAML::NodeType::Scalar:
      return node.Scalar();
    case YAML::NodeType::Sequence: {
      Json out = Json::array();
      for (const auto& item : node) out.push_back(YamlToJson(item, origin));
      return out;
    }
    case YAML::NodeType::Map: {
      Json out = Json::object();
      for (const auto& kv : node) {
        if (!kv.first.IsScalar()) {
          throw ConfigError("kubeconfig " + origin + ": line " +
                            std::to_string(kv.first.Mark().line + 1) + ": keys must be strings");
        }
        out[kv.first.Scalar()] = YamlToJson(kv.second, origin);
      }
      return out;
    }
  }
  return nullptr;
}

Json ParseDocument(std::string_view text, const std::string& origin) {
  size_t first = text.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) throw ConfigError("kubeconfig " + origin + ": empty file");
  if (text[first] == '{') {
    try {
      return Json::parse(text);
    } catch (const Json::parse_error& e) {
      throw ConfigError("kubeconfig " + origin + ": invalid JSON: " + e.what());
    }
  }
  try {
    return YamlToJson(YAML::Load(std::string(text)), origin);
  } catch (const YAML::Exception& e) {
    throw ConfigError("kubeconfig " + origin + ": invalid YAML: line " +
                      std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
}

// Typed reads that name the key: "<where>.<key>: must be a string".
class Reader {
 public:
  Reader(const Json& obj, std::string where) : obj_(obj), where_(std::move(where)) {}

  const std::string& where() const { return where_; }
  std::string Path(std::string_view key) const {
    bool top = where_.size() >= 2 && where_.compare(where_.size() - 2, 2, ": ") == 0;
    return where_ + (top ? "" : ".") + std::string(key);
  }

  const Json* Find(std::string_view key) const {
    if (!obj_.is_object()) return nullptr;
    auto it = obj_.find(key);
    if (it == obj_.end() || it->is_null()) return nullptr;
    return &*it;
  }
  std::string String(std::string_view key) const {
    const Json* v = Find(key);
    if (!v) return "";
    if (!v->is_string()) throw ConfigError(Path(key) + ": must be a string");
    return v->get<std::string>();
  }
  bool Bool(std::string_view key) const {
    const Json* v = Find(key);
    if (!v) return false;
    if (v->is_boolean()) return v->get<bool>();
    if (v->is_string()) {
      const auto& s = v->get_ref<const std::string&>();
      if (s == "true" || s == "True" || s == "TRUE") return true;
      if (s == "false" || s == "False" || s == "FALSE" || s.empty()) return false;
    }
    throw ConfigError(Path(key) + ": must be true or false");
  }
  const Json* Object(std::string_view key) const {
    const Json* v = Find(key);
    if (v && !v->is_object()) throw ConfigError(Path(key) + ": must be a map");
    return v;
  }
  const Json* Array(std::string_view key) const {
    const Json* v = Find(key);
    if (v && !v->is_array()) throw ConfigError(Path(key) + ": must be a list");
    return v;
  }
  std::vector<std::string> Strings(std::string_view key) const {
    std::vector<std::string> out;
    const Json* arr = Array(key);
    if (!arr) return out;
    for (size_t i = 0; i < arr->size(); ++i) {
      const Json& v = (*arr)[i];
      if (!v.is_string()) {
        throw ConfigError(Path(key) + "[" + std::to_string(i) + "]: must be a string");
      }
      out.push_back(v.get<std::string>());
    }
    return out;
  }

 private:
  const Json& obj_;
  std::string where_;
};

std::string ResolvePath(const std::string& path, const std::string& base_dir) {
  if (path.empty() || path[0] == '/' || base_dir.empty()) return path;
  if (path[0] == '~' && (path.size() == 1 || path[1] == '/')) {
    const char* home = std::getenv("HOME");
    if (home) return std::string(home) + path.substr(1);
  }
  return base_dir + "/" + path;
}

std::string Base64Field(const Reader& r, std::string_view key) {
  std::string text = r.String(key);
  if (text.empty()) return "";
  auto decoded = DecodeBase64(text);
  if (!decoded) throw ConfigError(r.Path(key) + ": not valid base64");
  return *decoded;
}

// Calls fn(name, reader_of_the_inner_object) for each entry of a named list such as
// clusters: [{name: local, cluster: {...}}].
template <typename Fn>
void ForEachNamed(const Reader& top, std::string_view list_key, std::string_view inner_key, Fn fn) {
  const Json* list = top.Array(list_key);
  if (!list) return;
  std::set<std::string> seen;
  for (size_t i = 0; i < list->size(); ++i) {
    std::string at = top.where() + std::string(list_key) + "[" + std::to_string(i) + "]";
    Reader entry((*list)[i], at);
    if (!(*list)[i].is_object()) throw ConfigError(at + ": must be a map");
    std::string name = entry.String("name");
    if (name.empty()) throw ConfigError(at + ".name: missing");
    if (!seen.insert(name).second) {
      throw ConfigError(at + ": duplicate name \"" + name + "\" in " + std::string(list_key));
    }
    std::string where =
        top.where() + std::string(list_key) + "[" + name + "]." + std::string(inner_key);
    static const Json kEmpty = Json::object();
    const Json* inner = entry.Object(inner_key);
    fn(name, Reader(inner ? *inner : kEmpty, where));
  }
}

ExecConfig ParseExec(const Reader& r, const std::string& base_dir) {
  ExecConfig e;
  e.origin = r.where();
  e.command = r.String("command");
  if (e.command.empty()) throw ConfigError(r.Path("command") + ": missing");
  if (e.command.find('/') != std::string::npos) e.command = ResolvePath(e.command, base_dir);
  e.args = r.Strings("args");
  if (const Json* env = r.Array("env")) {
    for (size_t i = 0; i < env->size(); ++i) {
      Reader item((*env)[i], r.Path("env") + "[" + std::to_string(i) + "]");
      std::string name = item.String("name");
      if (name.empty()) throw ConfigError(item.Path("name") + ": missing");
      e.env.emplace_back(name, item.String("value"));
    }
  }
  e.api_version = r.String("apiVersion");
  if (e.api_version.empty()) throw ConfigError(r.Path("apiVersion") + ": missing");
  if (e.api_version == "client.authentication.k8s.io/v1alpha1") {
    throw ConfigError(r.Path("apiVersion") +
                      ": client.authentication.k8s.io/v1alpha1 is no longer supported; use "
                      "client.authentication.k8s.io/v1");
  }
  if (e.api_version != "client.authentication.k8s.io/v1" &&
      e.api_version != "client.authentication.k8s.io/v1beta1") {
    throw ConfigError(r.Path("apiVersion") + ": unsupported \"" + e.api_version +
                      "\" (want client.authentication.k8s.io/v1 or v1beta1)");
  }
  e.interactive_mode = r.String("interactiveMode");
  if (e.interactive_mode.empty()) {
    if (e.api_version == "client.authentication.k8s.io/v1") {
      throw ConfigError(r.Path("interactiveMode") +
                        ": must be set for client.authentication.k8s.io/v1 (Never, IfAvailable "
                        "or Always)");
    }
    e.interactive_mode = "IfAvailable";
  } else if (e.interactive_mode != "Never" && e.interactive_mode != "IfAvailable" &&
             e.interactive_mode != "Always") {
    throw ConfigError(r.Path("interactiveMode") + ": \"" + e.interactive_mode +
                      "\" is not one of Never, IfAvailable, Always");
  }
  e.provide_cluster_info = r.Bool("provideClusterInfo");
  e.install_hint = r.String("installHint");
  return e;
}

std::optional<std::string> ReadWholeFile(const std::string& path, std::string* error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = std::strerror(errno);
    return std::nullopt;
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) {
    *error = std::strerror(errno);
    return std::nullopt;
  }
  return ss.str();
}

void CheckReadable(const std::string& path, const std::string& key_path) {
  std::string error;
  if (!ReadWholeFile(path, &error)) {
    throw ConfigError(key_path + ": cannot read " + path + ": " + error);
  }
}

std::string DirName(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string AbsoluteDir(const std::string& path) {
  std::string dir = DirName(path);
  if (!dir.empty() && dir[0] == '/') return dir;
  char* cwd = ::getcwd(nullptr, 0);
  if (!cwd) return dir;
  std::string out = std::string(cwd) + (dir == "." ? "" : "/" + dir);
  std::free(cwd);
  return out;
}

}  // namespace

std::optional<std::string> DecodeBase64(std::string_view text) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  // Go's decoder skips newlines; PEM pasted with line breaks is common.
  std::string clean;
  clean.reserve(text.size());
  for (char c : text) {
    if (c != '\n' && c != '\r') clean += c;
  }
  if (clean.size() % 4 != 0) return std::nullopt;
  std::string out;
  out.reserve(clean.size() / 4 * 3);
  for (size_t i = 0; i < clean.size(); i += 4) {
    int v[4];
    int pad = 0;
    for (int j = 0; j < 4; ++j) {
      char c = clean[i + j];
      if (c == '=') {
        if (i + 4 != clean.size() || j < 2) return std::nullopt;
        v[j] = 0;
        ++pad;
      } else {
        if (pad) return std::nullopt;  // data after padding
        v[j] = value(c);
        if (v[j] < 0) return std::nullopt;
      }
    }
    uint32_t n = (v[0] << 18) | (v[1] << 12) | (v[2] << 6) | v[3];
    out += static_cast<char>((n >> 16) & 0xff);
    if (pad < 2) out += static_cast<char>((n >> 8) & 0xff);
    if (pad < 1) out += static_cast<char>(n & 0xff);
  }
  return out;
}

std::string EncodeBase64(std::string_view data) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  for (size_t i = 0; i < data.size(); i += 3) {
    uint32_t n = static_cast<unsigned char>(data[i]) << 16;
    if (i + 1 < data.size()) n |= static_cast<unsigned char>(data[i + 1]) << 8;
    if (i + 2 < data.size()) n |= static_cast<unsigned char>(data[i + 2]);
    out += kAlphabet[(n >> 18) & 63];
    out += kAlphabet[(n >> 12) & 63];
    out += i + 1 < data.size() ? kAlphabet[(n >> 6) & 63] : '=';
    out += i + 2 < data.size() ? kAlphabet[n & 63] : '=';
  }
  return out;
}

Kubeconfig ParseKubeconfig(std::string_view text, const std::string& origin,
                           const std::string& base_dir) {
  Json doc = ParseDocument(text, origin);
  if (doc.is_null()) doc = Json::object();  // a YAML file of comments only
  std::string prefix = "kubeconfig " + origin + ": ";
  if (!doc.is_object()) throw ConfigError(prefix + "must be a map at the top level");
  Reader top(doc, prefix);
  Kubeconfig out;
  out.origin = origin;
  if (std::string kind = top.String("kind"); !kind.empty() && kind != "Config") {
    throw ConfigError(prefix + "kind: \"" + kind + "\" is not Config");
  }
  out.current_context = top.String("current-context");

  ForEachNamed(top, "clusters", "cluster", [&](const std::string& name, const Reader& r) {
    KubeconfigCluster c;
    c.where = r.where();
    c.server = r.String("server");
    c.tls_server_name = r.String("tls-server-name");
    c.insecure_skip_tls_verify = r.Bool("insecure-skip-tls-verify");
    c.certificate_authority = ResolvePath(r.String("certificate-authority"), base_dir);
    c.certificate_authority_data = Base64Field(r, "certificate-authority-data");
    c.proxy_url = r.String("proxy-url");
    c.disable_compression = r.Bool("disable-compression");
    out.clusters.emplace(name, std::move(c));
  });
  ForEachNamed(top, "users", "user", [&](const std::string& name, const Reader& r) {
    KubeconfigUser u;
    u.where = r.where();
    u.token = r.String("token");
    u.token_file = ResolvePath(r.String("tokenFile"), base_dir);
    u.client_certificate = ResolvePath(r.String("client-certificate"), base_dir);
    u.client_certificate_data = Base64Field(r, "client-certificate-data");
    u.client_key = ResolvePath(r.String("client-key"), base_dir);
    u.client_key_data = Base64Field(r, "client-key-data");
    if (const Json* exec = r.Object("exec"))
      u.exec = ParseExec(Reader(*exec, r.Path("exec")), base_dir);
    if (const Json* ap = r.Object("auth-provider")) {
      u.auth_provider = Reader(*ap, r.Path("auth-provider")).String("name");
      if (u.auth_provider.empty()) u.auth_provider = "(unnamed)";
    }
    u.basic_auth = !r.String("username").empty() || !r.String("password").empty();
    out.users.emplace(name, std::move(u));
  });
  ForEachNamed(top, "contexts", "context", [&](const std::string& name, const Reader& r) {
    KubeconfigContext c;
    c.where = r.where();
    c.cluster = r.String("cluster");
    c.user = r.String("user");
    c.ns = r.String("namespace");
    out.contexts.emplace(name, std::move(c));
  });
  return out;
}

Kubeconfig LoadKubeconfigFile(const std::string& path) {
  std::string error;
  auto text = ReadWholeFile(path, &error);
  if (!text) throw ConfigError("kubeconfig " + path + ": cannot read: " + error);
  return ParseKubeconfig(*text, path, AbsoluteDir(path));
}

Kubeconfig LoadKubeconfigFiles(const std::vector<std::string>& paths) {
  Kubeconfig merged;
  std::vector<std::string> used;
  for (const auto& path : paths) {
    if (path.empty()) continue;
    if (::access(path.c_str(), F_OK) != 0) continue;
    Kubeconfig one = LoadKubeconfigFile(path);
    used.push_back(path);
    if (merged.current_context.empty()) merged.current_context = one.current_context;
    merged.clusters.merge(one.clusters);  // merge() keeps existing keys: the first file wins
    merged.users.merge(one.users);
    merged.contexts.merge(one.contexts);
  }
  if (used.empty()) {
    std::string all;
    for (const auto& p : paths) all += (all.empty() ? "" : ":") + p;
    throw ConfigError("kubeconfig " + all + ": no such file");
  }
  for (const auto& p : used) merged.origin += (merged.origin.empty() ? "" : ":") + p;
  return merged;
}

RestConfig RestConfigFromKubeconfig(const Kubeconfig& config, const std::string& context_override,
                                    const std::string& master) {
  std::string prefix = "kubeconfig " + config.origin + ": ";
  std::string context_name = context_override.empty() ? config.current_context : context_override;
  const KubeconfigContext* context = nullptr;
  if (!context_name.empty()) {
    auto it = config.contexts.find(context_name);
    if (it == config.contexts.end()) {
      throw ConfigError(prefix + (context_override.empty() ? "current-context" : "--context") +
                        ": no context named \"" + context_name + "\"");
    }
    context = &it->second;
  } else if (master.empty()) {
    throw ConfigError(prefix + "current-context: not set (and no --context or --master given)");
  }

  static const KubeconfigCluster kNoCluster;
  static const KubeconfigUser kNoUser;
  const KubeconfigCluster* cluster = &kNoCluster;
  const KubeconfigUser* user = &kNoUser;
  if (context && !context->cluster.empty()) {
    auto it = config.clusters.find(context->cluster);
    if (it == config.clusters.end()) {
      throw ConfigError(context->where + ".cluster: no cluster named \"" + context->cluster + "\"");
    }
    cluster = &it->second;
  } else if (master.empty()) {
    throw ConfigError(prefix + "contexts[" + context_name + "].context.cluster: missing");
  }
  if (context && !context->user.empty()) {
    auto it = config.users.find(context->user);
    if (it == config.users.end()) {
      throw ConfigError(context->where + ".user: no user named \"" + context->user + "\"");
    }
    user = &it->second;
  }

  RestConfig rc;
  rc.origin = "kubeconfig " + config.origin +
              (context_name.empty() ? std::string() : ", context " + context_name);
  std::string cluster_where = cluster->where.empty() ? prefix + "cluster" : cluster->where;

  // TLS.
  rc.tls.insecure_skip_verify = cluster->insecure_skip_tls_verify;
  rc.tls.server_name = cluster->tls_server_name;
  if (!cluster->certificate_authority_data.empty()) {
    rc.tls.ca_pem = cluster->certificate_authority_data;
  } else if (!cluster->certificate_authority.empty()) {
    CheckReadable(cluster->certificate_authority, cluster_where + ".certificate-authority");
    rc.tls.ca_file = cluster->certificate_authority;
  }
  if (rc.tls.insecure_skip_verify && (!rc.tls.ca_pem.empty() || !rc.tls.ca_file.empty())) {
    throw ConfigError(cluster_where +
                      ": insecure-skip-tls-verify cannot be combined with certificate-authority "
                      "(a root certificate with the insecure flag is not allowed)");
  }
  if (!user->client_certificate_data.empty()) {
    rc.tls.cert_pem = user->client_certificate_data;
  } else if (!user->client_certificate.empty()) {
    CheckReadable(user->client_certificate, user->where + ".client-certificate");
    rc.tls.cert_file = user->client_certificate;
  }
  if (!user->client_key_data.empty()) {
    rc.tls.key_pem = user->client_key_data;
  } else if (!user->client_key.empty()) {
    CheckReadable(user->client_key, user->where + ".client-key");
    rc.tls.key_file = user->client_key;
  }
  bool has_cert = !rc.tls.cert_pem.empty() || !rc.tls.cert_file.empty();
  bool has_key = !rc.tls.key_pem.empty() || !rc.tls.key_file.empty();
  if (has_cert != has_key) {
    throw ConfigError(user->where + (has_cert
                                         ? ".client-key: missing (client-certificate is set)"
                                         : ".client-certificate: missing (client-key is set)"));
  }

  // Server.
  rc.server = master.empty() ? cluster->server : master;
  if (rc.server.empty()) throw ConfigError(cluster_where + ".server: missing");
  if (rc.server.find("://") == std::string::npos) {
    // client-go: https when any TLS setting is present, else http.
    bool tls = !rc.tls.ca_pem.empty() || !rc.tls.ca_file.empty() || has_cert ||
               rc.tls.insecure_skip_verify;
    rc.server = (tls ? "https://" : "http://") + rc.server;
  } else if (rc.server.rfind("https://", 0) != 0 && rc.server.rfind("http://", 0) != 0) {
    throw ConfigError((master.empty() ? cluster_where + ".server" : std::string("--master")) +
                      ": \"" + rc.server + "\" is not an http or https URL");
  }
  while (rc.server.size() > 8 && rc.server.back() == '/') rc.server.pop_back();
  rc.proxy_url = cluster->proxy_url;
  rc.disable_compression = cluster->disable_compression;

  // Who we are.
  if (!user->auth_provider.empty()) {
    throw ConfigError(user->where + ".auth-provider: \"" + user->auth_provider +
                      "\" is not supported; use an exec credential plugin");
  }
  if (user->basic_auth) {
    SLOG_WARN << user->where << ": username/password ignored (basic authentication was removed "
              << "from Kubernetes in 1.19)";
  }
  int auth_kinds = !user->token.empty() + !user->token_file.empty() + user->exec.has_value();
  if (auth_kinds > 1) {
    SLOG_WARN << user->where << ": more than one of token, tokenFile and exec set; using "
              << (!user->token.empty() ? "token" : "tokenFile");
  }
  if (!user->token.empty()) {
    rc.token = user->token;
  } else if (!user->token_file.empty()) {
    CheckReadable(user->token_file, user->where + ".tokenFile");
    rc.token_file = user->token_file;
  } else if (user->exec) {
    rc.exec = user->exec;
    if (rc.exec->provide_cluster_info) {
      rc.exec_cluster.server = rc.server;
      rc.exec_cluster.tls_server_name = rc.tls.server_name;
      rc.exec_cluster.insecure_skip_tls_verify = rc.tls.insecure_skip_verify;
      rc.exec_cluster.proxy_url = rc.proxy_url;
      rc.exec_cluster.disable_compression = rc.disable_compression;
      if (!rc.tls.ca_pem.empty()) {
        rc.exec_cluster.ca_pem = rc.tls.ca_pem;
      } else if (!rc.tls.ca_file.empty()) {
        std::string error;
        rc.exec_cluster.ca_pem = ReadWholeFile(rc.tls.ca_file, &error).value_or("");
      }
    }
  }
  return rc;
}

RestConfig InClusterConfig(const InClusterPaths& paths) {
  const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
  const char* port = std::getenv("KUBERNETES_SERVICE_PORT");
  if (!host || !*host || !port || !*port) {
    throw ConfigError(
        "unable to load in-cluster configuration, KUBERNETES_SERVICE_HOST and "
        "KUBERNETES_SERVICE_PORT must be defined");
  }
  RestConfig rc;
  rc.origin = "in-cluster";
  std::string h = host;
  if (h.find(':') != std::string::npos && h.front() != '[') h = "[" + h + "]";  // IPv6
  rc.server = "https://" + h + ":" + port;
  std::string error;
  if (!ReadWholeFile(paths.token_file, &error)) {
    throw ConfigError("in-cluster configuration: service account token " + paths.token_file + ": " +
                      error);
  }
  rc.token_file = paths.token_file;
  if (ReadWholeFile(paths.ca_file, &error)) {
    rc.tls.ca_file = paths.ca_file;
  } else {
    SLOG_ERROR << "in-cluster configuration: CA " << paths.ca_file << ": " << error
               << "; verifying the API server against the system's trust store";
  }
  return rc;
}

RestConfig BuildRestConfig(const ClientOptions& options) {
  if (options.kubeconfig.empty() && options.master.empty()) {
    SLOG_INFO << "Neither kubeconfig file nor master URL was specified, using the in-cluster "
                 "configuration";
    return InClusterConfig(options.in_cluster);
  }
  if (!options.kubeconfig.empty()) {
    return RestConfigFromKubeconfig(LoadKubeconfigFile(options.kubeconfig), options.context,
                                    options.master);
  }
  // Only --master: the default kubeconfig locations may still supply credentials.
  std::vector<std::string> paths;
  if (const char* env = std::getenv("KUBECONFIG"); env && *env) {
    std::string list = env;
    size_t start = 0;
    while (start <= list.size()) {
      size_t colon = list.find(':', start);
      if (colon == std::string::npos) colon = list.size();
      paths.push_back(list.substr(start, colon - start));
      start = colon + 1;
    }
  } else if (const char* home = std::getenv("HOME"); home && *home) {
    paths.push_back(std::string(home) + "/.kube/config");
  }
  bool any = false;
  for (const auto& p : paths) any = any || (!p.empty() && ::access(p.c_str(), F_OK) == 0);
  if (!any) {
    RestConfig rc =
        RestConfigFromKubeconfig(Kubeconfig{.origin = "(none)"}, options.context, options.master);
    rc.origin = "--master " + options.master;
    return rc;
  }
  return RestConfigFromKubeconfig(LoadKubeconfigFiles(paths), options.context, options.master);
}

}  // namespace sluice::kube
