// The bridge plugin's network configuration: every key the reference bridge plugin accepts.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "cni-plugins/skel/result.h"
#include "cni-plugins/skel/skel.h"
#include "dataplane/netlink/netlink.h"

namespace sluice::bridge {

struct BridgeConfig {
  std::string bridge = "cni0";
  bool is_gateway = false;
  bool is_default_gateway = false;
  bool force_address = false;
  bool ip_masq = false;
  std::string ip_masq_backend;  // accepted for compatibility; masquerading always uses nftables
  unsigned mtu = 0;
  bool hairpin_mode = false;
  bool promisc_mode = false;
  int vlan = 0;
  std::vector<netlink::BridgeVlan> vlan_trunk;
  bool preserve_default_vlan = false;
  bool mac_spoof_check = false;
  bool enable_dad = false;
  bool disable_container_interface = false;
  bool port_isolation = false;
  std::string ipam_type;  // empty: layer 2 only
  std::optional<cni::Dns> dns;
  std::string mac;  // container interface MAC, from runtimeConfig, args or CNI_ARGS

  bool uses_vlans() const { return vlan != 0 || !vlan_trunk.empty(); }
};

// Reads and validates the config; throws cni::Error naming the key at fault.
BridgeConfig ParseBridgeConfig(const cni::Request& req);

}  // namespace sluice::bridge
