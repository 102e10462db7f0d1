// sluice-agent: the node agent (kube-proxy replacement). See --help.
#include <signal.h>

#include <cstdio>
#include <iostream>

#include "agent/agent.h"
#include "agent/agent_config.h"
#include "common/log.h"

int main(int argc, char** argv) {
  using namespace sluice;
  std::optional<agent::AgentConfig> config;
  try {
    config = agent::ParseCommandLine(argc, argv);
  } catch (const agent::ConfigError& e) {
    std::fprintf(stderr, "sluice-agent: %s\n", e.what());
    return 2;
  }
  if (!config) return 0;  // --help, --version
  log::SetVerbosity(config->verbosity);

  // Signals are taken synchronously below; block them before any thread starts so none of the
  // agent's threads receives them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  if (config->cleanup) {
    try {
      agent::MakeBackend(*config, std::cout)->Cleanup();
      if (config->pod_network) agent::PodNetwork(agent::PodNetworkOptionsOf(*config)).Cleanup();
    } catch (const std::exception& e) {
      SLOG_ERROR << "cleanup: " << e.what();
      return 1;
    }
    return 0;
  }

  try {
    agent::Agent a(std::move(*config), std::cout);
    a.Start();
    int sig = 0;
    sigwait(&stop_signals, &sig);
    SLOG_INFO << "received " << (sig == SIGINT ? "SIGINT" : "SIGTERM") << ", stopping";
    a.Stop();
  } catch (const std::exception& e) {
    SLOG_ERROR << e.what();
    return 1;
  }
  return 0;
}
