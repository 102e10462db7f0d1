// Client configuration the way kube-proxy finds it: a kubeconfig file (YAML or JSON; the
// KUBECONFIG list merged), --master overriding the server, or the in-cluster service account.
// Errors are ConfigError naming the file and the key.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "controlplane/kube/rest_config.h"

namespace sluice::kube {

struct KubeconfigCluster {
  std::string server;
  std::string tls_server_name;
  bool insecure_skip_tls_verify = false;
  std::string certificate_authority;       // absolute path
  std::string certificate_authority_data;  // decoded PEM
  std::string proxy_url;
  bool disable_compression = false;
  std::string where;  // "kubeconfig /k: clusters[local].cluster"
};

struct KubeconfigUser {
  std::string token;
  std::string token_file;  // absolute path
  std::string client_certificate;
  std::string client_certificate_data;
  std::string client_key;
  std::string client_key_data;
  std::optional<ExecConfig> exec;
  std::string auth_provider;  // name of an auth-provider entry (unsupported; reported on use)
  bool basic_auth = false;    // username/password (removed from Kubernetes in 1.19; ignored)
  std::string where;
};

struct KubeconfigContext {
  std::string cluster;
  std::string user;
  std::string ns;
  std::string where;
};

struct Kubeconfig {
  std::map<std::string, KubeconfigCluster> clusters;
  std::map<std::string, KubeconfigUser> users;
  std::map<std::string, KubeconfigContext> contexts;
  std::string current_context;
  std::string origin;  // the file (or files, ':'-joined) it came from
};

// Parses one kubeconfig document. `origin` names it in errors; relative paths in it (CA, cert and
// key files, tokenFile, an exec command containing '/') are resolved against base_dir.
Kubeconfig ParseKubeconfig(std::string_view text, const std::string& origin,
                           const std::string& base_dir);
Kubeconfig LoadKubeconfigFile(const std::string& path);
// KUBECONFIG semantics: the first file to define a name or the current-context wins; missing
// files are skipped, but at least one must exist.
Kubeconfig LoadKubeconfigFiles(const std::vector<std::string>& paths);

// The context to use (context_override, else current-context) turned into a RestConfig. A non-empty
// master replaces the cluster's server (and allows a kubeconfig without contexts). Checks that the
// files it names can be read.
RestConfig RestConfigFromKubeconfig(const Kubeconfig& config, const std::string& context_override,
                                    const std::string& master);

struct InClusterPaths {
  std::string token_file = "/var/run/secrets/kubernetes.io/serviceaccount/token";
  std::string ca_file = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";
};
// KUBERNETES_SERVICE_HOST/PORT, the service account token (re-read every minute) and CA.
RestConfig InClusterConfig(const InClusterPaths& paths = {});

struct ClientOptions {
  std::string kubeconfig;  // --kubeconfig
  std::string master;      // --master
  std::string context;     // --context
  InClusterPaths in_cluster;
};
// kube-proxy's rules: neither kubeconfig nor master -> in-cluster; otherwise the kubeconfig (the
// given file, else $KUBECONFIG, else ~/.kube/config when present) with master overriding its
// server.
RestConfig BuildRestConfig(const ClientOptions& options);

// Standard base64 (padding required), as Go's encoding/base64.StdEncoding. nullopt if invalid.
std::optional<std::string> DecodeBase64(std::string_view text);
std::string EncodeBase64(std::string_view data);

}  // namespace sluice::kube
