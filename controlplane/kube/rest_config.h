// Everything needed to talk to one API server: where it is, how to trust it, who we are. Built from
// a kubeconfig, from --master, or from the in-cluster service account (kubeconfig.h).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace sluice::kube {

struct TlsConfig {
  bool insecure_skip_verify = false;
  // tls-server-name: the name the server's certificate must carry (and the SNI sent), when it is
  // not the host in the server URL.
  std::string server_name;
  // Trust: a PEM bundle file or PEM text; neither means the system's trust store.
  std::string ca_file;
  std::string ca_pem;
  // Client certificate and key: files or PEM text (an exec plugin may also supply them).
  std::string cert_file;
  std::string cert_pem;
  std::string key_file;
  std::string key_pem;
};

// users[].user.exec of a kubeconfig: a credential plugin (client.authentication.k8s.io).
struct ExecConfig {
  std::string command;  // absolute, relative to the kubeconfig's folder, or looked up in PATH
  std::vector<std::string> args;
  std::vector<std::pair<std::string, std::string>> env;
  std::string api_version;       // client.authentication.k8s.io/v1 or /v1beta1
  std::string interactive_mode;  // Never, IfAvailable, Always (we never have a terminal)
  bool provide_cluster_info = false;
  std::string install_hint;
  std::string origin;  // "kubeconfig /k: users[ci].user.exec", for messages
};

// What an exec plugin is told about the cluster when provideClusterInfo is set.
struct ExecClusterInfo {
  std::string server;
  std::string tls_server_name;
  bool insecure_skip_tls_verify = false;
  std::string ca_pem;
  std::string proxy_url;
  bool disable_compression = false;
};

struct RestConfig {
  std::string server;  // "https://10.0.0.1:6443", possibly with a path prefix
  TlsConfig tls;
  std::string token;       // a static bearer token
  std::string token_file;  // a bearer token re-read every token_file_refresh (rotated tokens)
  std::chrono::seconds token_file_refresh{60};
  std::optional<ExecConfig> exec;
  ExecClusterInfo exec_cluster;  // filled when exec->provide_cluster_info
  std::string proxy_url;
  bool disable_compression = false;
  std::string origin;  // "kubeconfig /root/.kube/config, context kind-kind", "in-cluster"
};

}  // namespace sluice::kube
