// libFuzzer target: CNI stdin configs and results through the same parsers the plugins use
// (skel request parsing, Result, host-local's IPAM config, the bridge config). Any input must
// end in a value or a cni::Error, never a crash, a leak or undefined behaviour.
#include <cstddef>
#include <cstdint>
#include <string>

#include "cni-plugins/bridge/bridge_config.h"
#include "cni-plugins/host-local/host_local.h"
#include "cni-plugins/skel/skel.h"

namespace {

sluice::cni::Environment AddEnvironment() {
  sluice::cni::Environment env;
  env.command = sluice::cni::Command::kAdd;
  env.command_name = "ADD";
  env.container_id = "fuzz";
  env.netns = "/proc/self/ns/net";
  env.ifname = "eth0";
  env.args = {{"IP", "10.0.0.5"}, {"MAC", "02:00:00:00:00:01"}};
  return env;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string input(reinterpret_cast<const char*>(data), size);
  sluice::cni::Plugin plugin;
  plugin.known_args = {"IP", "MAC"};
  try {
    auto req = sluice::cni::ParseRequest(AddEnvironment(), input, plugin);
    try {
      (void)sluice::bridge::ParseBridgeConfig(req);
    } catch (const sluice::cni::Error&) {
    }
    try {
      auto ipam = sluice::hostlocal::ParseIpamConfig(req);
      for (const auto& set : ipam.range_sets) (void)set.Capacity();
    } catch (const sluice::cni::Error&) {
    }
    if (req.prev_result) {
      for (const char* v : {"0.3.1", "1.0.0", "1.1.0"}) {
        auto again = sluice::cni::Result::FromJson(req.prev_result->ToJson(v));
        if (!(again.ips == req.prev_result->ips)) __builtin_trap();  // round trip must hold
      }
    }
  } catch (const sluice::cni::Error&) {
  }
  return 0;
}
