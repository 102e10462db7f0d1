// Exec credential plugins (client.authentication.k8s.io v1 and v1beta1): run the command a
// kubeconfig names, non-interactively, with KUBERNETES_EXEC_INFO in its environment, and read the
// ExecCredential it prints. Failures are CredentialError naming the plugin.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "controlplane/kube/rest_config.h"

namespace sluice::kube {

struct ExecCredential {
  std::string token;
  std::string client_certificate_pem;
  std::string client_key_pem;
  // Use until then; nullopt: until the server answers 401.
  std::optional<std::chrono::system_clock::time_point> expiration;
};

// The KUBERNETES_EXEC_INFO value: the ExecCredential request with spec.interactive=false and,
// when exec.provide_cluster_info, spec.cluster.
std::string ExecInfoJson(const ExecConfig& exec, const ExecClusterInfo& cluster);

// What the plugin printed on stdout, checked against the configured apiVersion.
ExecCredential ParseExecCredential(std::string_view output, const ExecConfig& exec);

ExecCredential RunExecPlugin(const ExecConfig& exec, const ExecClusterInfo& cluster,
                             std::chrono::milliseconds timeout = std::chrono::seconds(60));

// "2024-05-01T11:00:00Z", "2024-05-01T11:00:00.5+02:00". nullopt if malformed.
std::optional<std::chrono::system_clock::time_point> ParseRfc3339(std::string_view text);

}  // namespace sluice::kube
