#include "cni-plugins/bridge/bridge_config.h"

#include "cni-plugins/skel/config_reader.h"

namespace sluice::bridge {
namespace {

using cni::Error;
using nlohmann::json;

uint16_t VlanId(int64_t v, const std::string& key) {
  if (v < 1 || v > 4094) {
    throw Error(cni::kInvalidConfig,
                "config key \"" + key + "\": VLAN id " + std::to_string(v) + " must be in 1..4094");
  }
  return static_cast<uint16_t>(v);
}

std::vector<netlink::BridgeVlan> ParseTrunk(const json& list) {
  std::vector<netlink::BridgeVlan> out;
  for (const auto& entry : list) {
    if (!entry.is_object()) throw Error(cni::kDecodeFailure, "vlanTrunk: each entry must be an object");
    auto id = cni::OptInt(entry, "id");
    auto min = cni::OptInt(entry, "minID");
    auto max = cni::OptInt(entry, "maxID");
    if (id) {
      out.push_back({.vid = VlanId(*id, "vlanTrunk[].id")});
    } else if (min && max) {
      uint16_t lo = VlanId(*min, "vlanTrunk[].minID");
      uint16_t hi = VlanId(*max, "vlanTrunk[].maxID");
      if (hi < lo) {
        throw Error(cni::kInvalidConfig, "vlanTrunk: minID " + std::to_string(lo) +
                                             " is greater than maxID " + std::to_string(hi));
      }
      out.push_back({.vid = lo, .vid_end = hi});
    } else {
      throw Error(cni::kInvalidConfig, "vlanTrunk: each entry needs \"id\" or both \"minID\" and \"maxID\"");
    }
  }
  return out;
}

}  // namespace

BridgeConfig ParseBridgeConfig(const cni::Request& req) {
  const json& c = req.config;
  BridgeConfig cfg;
  if (auto b = cni::OptString(c, "bridge"); b && !b->empty()) cfg.bridge = *b;
  if (cfg.bridge.size() > 15) {
    throw Error(cni::kInvalidConfig, "config key \"bridge\": name \"" + cfg.bridge + "\" is longer than 15 bytes");
  }
  cfg.is_default_gateway = cni::GetBool(c, "isDefaultGateway", false);
  cfg.is_gateway = cni::GetBool(c, "isGateway", false) || cfg.is_default_gateway;
  cfg.force_address = cni::GetBool(c, "forceAddress", false);
  cfg.ip_masq = cni::GetBool(c, "ipMasq", false);
  cfg.ip_masq_backend = cni::GetString(c, "ipMasqBackend");
  if (!cfg.ip_masq_backend.empty() && cfg.ip_masq_backend != "iptables" &&
      cfg.ip_masq_backend != "nftables") {
    throw Error(cni::kInvalidConfig, "config key \"ipMasqBackend\": unknown backend \"" +
                                         cfg.ip_masq_backend + "\" (want iptables or nftables)");
  }
  if (auto mtu = cni::OptInt(c, "mtu")) {
    if (*mtu < 0 || *mtu > 65535) {
      throw Error(cni::kInvalidConfig, "config key \"mtu\": " + std::to_string(*mtu) + " is out of range");
    }
    cfg.mtu = static_cast<unsigned>(*mtu);
  }
  cfg.hairpin_mode = cni::GetBool(c, "hairpinMode", false);
  cfg.promisc_mode = cni::GetBool(c, "promiscMode", false);
  if (cfg.hairpin_mode && cfg.promisc_mode) {
    throw Error(cni::kInvalidConfig, "cannot set hairpin mode and promiscuous mode at the same time");
  }
  if (auto vlan = cni::OptInt(c, "vlan")) {
    if (*vlan < 0 || *vlan > 4094) {
      throw Error(cni::kInvalidConfig, "config key \"vlan\": " + std::to_string(*vlan) +
                                           " must be in 0..4094");
    }
    cfg.vlan = static_cast<int>(*vlan);
  }
  if (const json* trunk = cni::OptArray(c, "vlanTrunk")) cfg.vlan_trunk = ParseTrunk(*trunk);
  if (cfg.vlan != 0 && !cfg.vlan_trunk.empty()) {
    for (const auto& t : cfg.vlan_trunk) {
      if (cfg.vlan >= t.vid && cfg.vlan <= std::max(t.vid, t.vid_end)) {
        throw Error(cni::kInvalidConfig, "vlan " + std::to_string(cfg.vlan) + " is also in vlanTrunk");
      }
    }
  }
  cfg.preserve_default_vlan = cni::GetBool(c, "preserveDefaultVlan", false);
  cfg.mac_spoof_check = cni::GetBool(c, "macspoofchk", false);
  cfg.enable_dad = cni::GetBool(c, "enabledad", false);
  cfg.disable_container_interface = cni::GetBool(c, "disableContainerInterface", false);
  cfg.port_isolation = cni::GetBool(c, "portIsolation", false);
  if (const json* ipam = cni::OptObject(c, "ipam")) cfg.ipam_type = cni::GetString(*ipam, "type");
  if (cfg.disable_container_interface && !cfg.ipam_type.empty()) {
    throw Error(cni::kInvalidConfig,
                "disableContainerInterface=true cannot be combined with an IPAM plugin (ipam.type \"" +
                    cfg.ipam_type + "\")");
  }
  if (const json* dns = cni::OptObject(c, "dns")) {
    cni::Dns d = cni::DnsFromJson(*dns, "config key \"dns\"");
    if (!d.empty()) cfg.dns = d;
  }

  // Container MAC, highest precedence first: runtimeConfig.mac, args.cni.mac, CNI_ARGS MAC.
  if (auto mac = cni::OptString(req.runtime_config, "mac")) {
    cfg.mac = *mac;
  } else if (const json* args = cni::OptObject(c, "args")) {
    if (const json* cni_args = cni::OptObject(*args, "cni")) cfg.mac = cni::GetString(*cni_args, "mac");
  }
  if (cfg.mac.empty()) {
    if (auto it = req.env.args.find("MAC"); it != req.env.args.end()) cfg.mac = it->second;
  }
  return cfg;
}

}  // namespace sluice::bridge
