// One executable for every Sluice CNI plugin, installed under each plugin's name (hard links).
// It picks the plugin from the name it was run as, and when a plugin delegates to another one
// (bridge -> host-local) that resolves to this same file, the delegate runs in-process instead
// of paying for another process start.
#include <cstring>
#include <iostream>
#include <string_view>

#include "cni-plugins/bridge/bridge.h"
#include "cni-plugins/host-local/host_local.h"
#include "cni-plugins/loopback/loopback.h"

int main(int argc, char** argv) {
  using namespace sluice;
  const cni::Plugin bridge = bridge::MakePlugin();
  const cni::Plugin host_local = hostlocal::MakePlugin();
  const cni::Plugin loopback = loopback::MakePlugin();
  cni::RegisterInProcess("bridge", &bridge);
  cni::RegisterInProcess("host-local", &host_local);
  cni::RegisterInProcess("loopback", &loopback);

  std::string_view name = argc > 0 ? argv[0] : "";
  if (auto slash = name.rfind('/'); slash != std::string_view::npos) name.remove_prefix(slash + 1);
  if (const cni::Plugin* plugin = cni::FindInProcess(name)) return cni::Run(*plugin);
  std::cerr << "sluice-cni: run as bridge, host-local or loopback (a link to this file), not as \""
            << name << "\"\n";
  return 2;
}
