// Kubeconfig documents (YAML or JSON) through the parser and the resolution of every context they
// name. Only ConfigError may come out; nothing runs (exec plugins are not started here).
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/log.h"
#include "controlplane/kube/errors.h"
#include "controlplane/kube/kubeconfig.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static bool quiet = [] {
    sluice::log::SetMinLevel(sluice::log::Level::kError);
    return true;
  }();
  (void)quiet;
  std::string text(reinterpret_cast<const char*>(data), size);
  try {
    sluice::kube::Kubeconfig k = sluice::kube::ParseKubeconfig(text, "fuzz", "/nonexistent");
    std::vector<std::string> contexts{""};
    for (const auto& [name, c] : k.contexts) contexts.push_back(name);
    for (const auto& name : contexts) {
      for (const char* master : {"", "https://127.0.0.1:1"}) {
        try {
          sluice::kube::RestConfigFromKubeconfig(k, name, master);
        } catch (const sluice::kube::ConfigError&) {
        }
      }
    }
  } catch (const sluice::kube::ConfigError&) {
  }
  sluice::kube::DecodeBase64(text);
  return 0;
}
