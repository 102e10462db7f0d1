// The host-local IPAM plugin: configuration and the CNI operations.
#pragma once

#include <string>
#include <vector>

#include "cni-plugins/host-local/range_set.h"
#include "cni-plugins/skel/skel.h"

namespace sluice::hostlocal {

inline constexpr const char* kDefaultDataDir = "/var/lib/cni/networks";

struct IpamConfig {
  std::vector<RangeSet> range_sets;
  std::vector<cni::Route> routes;
  std::string data_dir = kDefaultDataDir;
  cni::Dns dns;  // from resolvConf
  std::vector<IpAddress> requested;  // runtimeConfig.ips, args.cni.ips, CNI_ARGS IP
};

// Reads the "ipam" section and the request's runtime inputs. Throws cni::Error naming the key.
IpamConfig ParseIpamConfig(const cni::Request& req);
cni::Dns ParseResolvConf(const std::string& path);

cni::Result Add(const cni::Request& req);
void Del(const cni::Request& req);
void Check(const cni::Request& req);
void Gc(const cni::Request& req);
void Status(const cni::Request& req);

cni::Plugin MakePlugin();

}  // namespace sluice::hostlocal
