#include "cni-plugins/bridge/bridge.h"

#include <linux/rtnetlink.h>
#include <sys/random.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "cni-plugins/bridge/bridge_config.h"
#include "dataplane/netlink/netlink.h"
#include "dataplane/nft/mac_spoof_check.h"
#include "dataplane/nft/pod_masquerade.h"

namespace sluice::bridge {
namespace {

using cni::Error;
namespace nl = sluice::netlink;

// Kernel and file system failures become an error naming what was being done.
template <typename Fn>
auto Step(const std::string& what, Fn&& fn) {
  try {
    return fn();
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(cni::kInternal, what + ": " + e.what());
  }
}

std::string RandomVethName() {
  uint8_t b[4];
  if (getrandom(b, sizeof(b), 0) != sizeof(b)) throw Error(cni::kInternal, "getrandom failed");
  char name[16];
  std::snprintf(name, sizeof(name), "veth%02x%02x%02x%02x", b[0], b[1], b[2], b[3]);
  return name;
}

nl::Netns OpenPodNetns(const cni::Request& req) {
  try {
    return nl::Netns::Open(req.env.netns);
  } catch (const nl::NetlinkError& e) {
    throw Error(cni::kInvalidEnvironment, std::string("CNI_NETNS: ") + e.what());
  }
}

void SysctlBestEffort(const std::string& name, const std::string& value) {
  // Hosts with IPv6 disabled lack the ipv6 tree: not an error for the plugin.
  try {
    nl::WriteSysctl(name, value);
  } catch (const nl::NetlinkError&) {
  }
}

void EnsureSysctl(const std::string& name, const std::string& value) {
  if (nl::ReadSysctl(name) != value) nl::WriteSysctl(name, value);
}

nl::LinkInfo EnsureBridge(const nl::Socket& node, const BridgeConfig& cfg) {
  auto br = nl::FindLink(node, cfg.bridge);
  if (br && br->kind != "bridge") {
    throw Error(cni::kInvalidConfig, "\"" + cfg.bridge + "\" already exists but is not a bridge",
                "it is a " + (br->kind.empty() ? std::string("plain device") : br->kind));
  }
  if (!br) {
    try {
      nl::CreateBridge(node, cfg.bridge, cfg.mtu, cfg.uses_vlans());
    } catch (const nl::NetlinkError& e) {
      if (e.sys_errno() == EOPNOTSUPP && cfg.uses_vlans()) {
        throw Error(cni::kInternal, "cannot create bridge \"" + cfg.bridge +
                                        "\" with VLAN filtering: the kernel lacks "
                                        "CONFIG_BRIDGE_VLAN_FILTERING");
      }
      if (!e.exists()) throw;  // another ADD created it first
    }
    br = nl::GetLink(node, cfg.bridge);
    if (br->kind != "bridge") {
      throw Error(cni::kInvalidConfig, "\"" + cfg.bridge + "\" already exists but is not a bridge");
    }
    // A bridge must not take router advertisements from pods.
    SysctlBestEffort("net/ipv6/conf/" + cfg.bridge + "/accept_ra", "0");
  } else if (cfg.uses_vlans()) {
    nl::SetBridgeVlanFiltering(node, br->index, true);
  }
  if (!br->admin_up) nl::SetLinkUp(node, br->index, true);
  if (cfg.promisc_mode && !br->promisc) nl::SetPromisc(node, br->index, true);
  return *br;
}

// Puts the gateway address on the bridge, as the reference does: one IPv4 address per bridge
// (a different one is replaced only with forceAddress), IPv6 addresses must not overlap.
void EnsureGatewayAddress(const nl::Socket& node, const BridgeConfig& cfg, const nl::LinkInfo& br,
                          const IpPrefix& gw) {
  bool present = false;
  for (const auto& a : nl::ListAddresses(node, br.index)) {
    if (a.prefix.family() != gw.family()) continue;
    if (a.prefix == gw) {
      present = true;
      continue;
    }
    if (!gw.address().is_v4()) {
      if (a.prefix.address().ToString().starts_with("fe80:")) continue;  // link-local
      if (!a.prefix.Overlaps(gw)) continue;
    }
    if (!cfg.force_address) {
      throw Error(cni::kInternal, "\"" + cfg.bridge + "\" already has an IP address different from " +
                                      gw.ToString(),
                  "it holds " + a.prefix.ToString() + "; set forceAddress to replace it");
    }
    nl::DeleteAddress(node, br.index, a.prefix);
  }
  if (present) return;
  try {
    nl::AddAddress(node, br.index, gw, /*no_dad=*/true);
  } catch (const nl::NetlinkError& e) {
    if (!e.exists()) throw;  // a concurrent ADD won the race
  }
  // Pin the bridge MAC: otherwise it follows the lowest port MAC and changes as pods come and go.
  nl::SetMac(node, br.index, br.mac);
}

// The gateway of each family: the IPAM's, or the subnet's first address like the reference.
void FillGateways(cni::Result& result) {
  for (auto& ip : result.ips) {
    if (!ip.gateway) ip.gateway = ip.address.NetworkAddress().Next();
  }
}

std::optional<IpAddress> GatewayFor(const cni::Result& result, IpFamily family) {
  for (const auto& ip : result.ips) {
    if (ip.address.family() == family && ip.gateway) return ip.gateway;
  }
  return std::nullopt;
}

void WaitOperUp(const nl::Socket& node, int index, const std::string& name) {
  // The port forwards once both ends are up; usually at once, allow up to 2 s like the reference.
  auto delay = std::chrono::microseconds(200);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  for (;;) {
    auto link = nl::FindLink(node, index);
    if (link && link->oper_up) return;
    if (std::chrono::steady_clock::now() > deadline) {
      throw Error(cni::kInternal, "bridge port " + name + " did not come up (operstate not UP)");
    }
    std::this_thread::sleep_for(delay);
    delay = std::min(delay * 2, std::chrono::microseconds(100000));
  }
}

nft::CniAttachment MasqAttachment(const cni::Request& req) {
  return {req.name, req.env.container_id, req.env.ifname};
}

nft::MacAddress MustParseMac(const std::string& text) {
  auto mac = nft::ParseMac(text);
  if (!mac) throw Error(cni::kInternal, "cannot read MAC address \"" + text + "\"");
  return *mac;
}

// Everything ADD does after IPAM succeeded; on failure the caller undoes IPAM and the veth.
struct AddState {
  std::string host_name;
  bool veth_created = false;
  bool masq_added = false;
  bool spoof_check_added = false;
  std::optional<nft::NftSocket> nft;
  nft::NftSocket& nft_socket() {
    if (!nft) nft.emplace();
    return *nft;
  }
};

cni::Result AddWithIpam(const cni::Request& req, const BridgeConfig& cfg, const nl::Netns& pod,
                        const nl::Socket& node, const nl::Socket& pod_sock, const nl::LinkInfo& br,
                        cni::Result result, AddState& state) {
  if (cfg.is_gateway) FillGateways(result);
  if (cfg.is_default_gateway) {
    for (IpFamily f : {IpFamily::kV4, IpFamily::kV6}) {
      auto gw = GatewayFor(result, f);
      if (!gw) continue;
      bool has_default = std::any_of(result.routes.begin(), result.routes.end(), [&](const cni::Route& r) {
        return r.dst.length() == 0 && r.dst.family() == f && r.gw;
      });
      if (!has_default) {
        result.routes.push_back({IpPrefix(f == IpFamily::kV4 ? IpAddress::MustParse("0.0.0.0")
                                                             : IpAddress::MustParse("::"), 0),
                                 *gw, {}, {}, {}, {}, {}});
      }
    }
  }

  // Masquerade first, on a socket the caller keeps open to the end: closing an nftables socket
  // waits for the kernel to release the committed transaction (an RCU grace period), and that
  // wait then overlaps the link work below instead of adding to it.
  if (cfg.ip_masq && !result.ips.empty()) {
    std::vector<nft::MasqueradeAddress> pods;
    for (const auto& ip : result.ips) pods.push_back({ip.address.address(), ip.address.Network()});
    state.masq_added = true;
    nft::PodMasquerade(state.nft_socket()).Add(MasqAttachment(req), pods);
  }

  // The veth pair: container end made directly inside the pod's namespace.
  for (int attempt = 0;; ++attempt) {
    state.host_name = RandomVethName();
    try {
      nl::CreateVeth(node, {.name = req.env.ifname, .peer_name = state.host_name, .mtu = cfg.mtu,
                            .mac = cfg.mac, .netns = &pod});
      break;
    } catch (const nl::NetlinkError& e) {
      if (!e.exists() || attempt == 3) throw;
      if (nl::FindLink(pod_sock, req.env.ifname)) {
        throw Error(cni::kInternal, "container veth name provided (" + req.env.ifname + ") already exists");
      }
    }
  }
  state.veth_created = true;

  nl::LinkInfo host = nl::GetLink(node, state.host_name);
  nl::SetMaster(node, host.index, br.index);
  if (cfg.hairpin_mode || cfg.port_isolation) {
    nl::SetBridgePort(node, host.index, {.hairpin = cfg.hairpin_mode ? std::optional(true) : std::nullopt,
                                         .isolated = cfg.port_isolation ? std::optional(true) : std::nullopt});
  }
  if (cfg.uses_vlans()) {
    std::vector<nl::BridgeVlan> vlans = cfg.vlan_trunk;
    if (cfg.vlan) vlans.push_back({.vid = static_cast<uint16_t>(cfg.vlan), .pvid = true, .untagged = true});
    nl::SetBridgeVlans(node, host.index, vlans);
    if (!cfg.preserve_default_vlan && cfg.vlan != 1) nl::SetBridgeVlans(node, host.index, {{.vid = 1}}, true);
  }
  nl::SetLinkUp(node, host.index, true);

  nl::LinkInfo ctr = nl::GetLink(pod_sock, req.env.ifname);
  if (cfg.mac_spoof_check) {
    state.spoof_check_added = true;
    nft::MacSpoofCheck(state.nft_socket()).Add(MasqAttachment(req), state.host_name, MustParseMac(ctr.mac));
  }
  {
    nl::NetnsScope in_pod(pod);
    const std::string conf6 = "net/ipv6/conf/" + req.env.ifname + "/";
    if (cfg.enable_dad) {
      SysctlBestEffort(conf6 + "enhanced_dad", "1");
      SysctlBestEffort(conf6 + "accept_dad", "1");
    } else {
      SysctlBestEffort(conf6 + "accept_dad", "0");
    }
    SysctlBestEffort("net/ipv4/conf/" + req.env.ifname + "/arp_notify", "1");
  }
  if (!cfg.disable_container_interface) {
    nl::SetLinkUp(pod_sock, ctr.index, true);
    for (const auto& ip : result.ips) {
      nl::AddAddress(pod_sock, ctr.index, ip.address, !cfg.enable_dad);
    }
    for (const auto& r : result.routes) {
      nl::Route route{.dst = r.dst.Network(), .gw = r.gw, .index = ctr.index};
      if (!route.gw) route.gw = GatewayFor(result, r.dst.family());
      if (r.mtu) route.mtu = static_cast<unsigned>(*r.mtu);
      if (r.advmss) route.advmss = static_cast<unsigned>(*r.advmss);
      if (r.priority) route.metric = static_cast<uint32_t>(*r.priority);
      if (r.table) route.table = *r.table;
      if (r.scope) route.scope = *r.scope;
      try {
        nl::AddRoute(pod_sock, route);
      } catch (const nl::NetlinkError& e) {
        if (!e.exists()) throw;
      }
    }
  }

  if (cfg.is_gateway) {
    for (const auto& ip : result.ips) {
      EnsureGatewayAddress(node, cfg, br, IpPrefix(*ip.gateway, ip.address.length()));
      if (ip.address.address().is_v4()) {
        EnsureSysctl("net/ipv4/ip_forward", "1");
      } else {
        EnsureSysctl("net/ipv6/conf/all/forwarding", "1");
      }
    }
  }
  if (!cfg.disable_container_interface) WaitOperUp(node, host.index, state.host_name);

  // Interfaces in the reference's order: bridge, host veth, container veth.
  nl::LinkInfo br_now = nl::GetLink(node, cfg.bridge);
  host = nl::GetLink(node, state.host_name);
  ctr = nl::GetLink(pod_sock, req.env.ifname);
  result.interfaces = {{.name = br_now.name, .mac = br_now.mac},
                       {.name = host.name, .mac = host.mac},
                       {.name = ctr.name, .mac = ctr.mac, .sandbox = req.env.netns}};
  for (auto& ip : result.ips) ip.interface = 2;
  if (cfg.dns) result.dns = *cfg.dns;
  return result;
}

}  // namespace

cni::Result Add(const cni::Request& req) {
  BridgeConfig cfg = ParseBridgeConfig(req);
  nl::Netns pod = OpenPodNetns(req);
  nl::Socket node;
  std::optional<nl::Socket> pod_sock;
  {
    nl::NetnsScope in_pod(pod);
    pod_sock.emplace();
  }
  if (nl::FindLink(*pod_sock, req.env.ifname)) {
    throw Error(cni::kInternal, "container veth name provided (" + req.env.ifname + ") already exists");
  }
  nl::LinkInfo br = Step("failed to set up bridge \"" + cfg.bridge + "\"",
                         [&] { return EnsureBridge(node, cfg); });

  cni::Result ipam_result;
  if (!cfg.ipam_type.empty()) ipam_result = cni::DelegateAdd(req, cfg.ipam_type);

  AddState state;
  try {
    return Step("bridge ADD", [&] {
      return AddWithIpam(req, cfg, pod, node, *pod_sock, br, ipam_result, state);
    });
  } catch (...) {
    // Nothing half-made: undo in reverse order, keeping the first error for the caller.
    if (state.spoof_check_added) {
      try {
        nft::MacSpoofCheck(state.nft_socket()).Remove(MasqAttachment(req));
      } catch (const std::exception&) {
      }
    }
    if (state.masq_added) {
      try {
        nft::PodMasquerade(state.nft_socket()).Remove(MasqAttachment(req));
      } catch (const std::exception&) {
      }
    }
    if (state.veth_created) {
      try {
        if (auto ctr = nl::FindLink(*pod_sock, req.env.ifname)) nl::DeleteLink(*pod_sock, ctr->index);
      } catch (const std::exception&) {
      }
    }
    if (!cfg.ipam_type.empty()) {
      try {
        cni::DelegateCommand(req, cfg.ipam_type, cni::Command::kDel);
      } catch (const std::exception&) {
      }
    }
    throw;
  }
}

void Del(const cni::Request& req) {
  BridgeConfig cfg = ParseBridgeConfig(req);
  // Netfilter state goes first, on a socket kept open until the end: closing an nftables socket
  // waits for the kernel to release the committed transaction (an RCU grace period, ~10 ms),
  // and that wait overlaps the veth deletion below instead of adding to it.
  std::optional<nft::NftSocket> nft_socket;
  if (cfg.mac_spoof_check || cfg.ip_masq) nft_socket.emplace();
  if (cfg.mac_spoof_check) {
    Step("failed to remove MAC spoof check",
         [&] { nft::MacSpoofCheck(*nft_socket).Remove(MasqAttachment(req)); });
  }
  if (cfg.ip_masq) {
    Step("failed to remove masquerade rules",
         [&] { nft::PodMasquerade(*nft_socket).Remove(MasqAttachment(req)); });
  }
  // Then the container end: deleting it takes the host end along. A gone netns or interface is
  // success (DEL is idempotent); the IPAM cleanup below needs neither.
  if (!req.env.netns.empty()) {
    std::optional<nl::Netns> pod;
    try {
      pod.emplace(nl::Netns::Open(req.env.netns));
    } catch (const nl::NetlinkError& e) {
      if (e.sys_errno() != ENOENT) throw Error(cni::kInvalidEnvironment, std::string("CNI_NETNS: ") + e.what());
    }
    if (pod) {
      Step("failed to delete " + req.env.ifname + " in " + req.env.netns, [&] {
        std::optional<nl::Socket> pod_sock;
        {
          nl::NetnsScope in_pod(*pod);
          pod_sock.emplace();
        }
        if (auto ctr = nl::FindLink(*pod_sock, req.env.ifname)) {
          try {
            nl::DeleteLink(*pod_sock, ctr->index);
          } catch (const nl::NetlinkError& e) {
            if (!e.not_found()) throw;
          }
        }
      });
    }
  }
  if (!cfg.ipam_type.empty()) cni::DelegateCommand(req, cfg.ipam_type, cni::Command::kDel);
}

void Check(const cni::Request& req) {
  BridgeConfig cfg = ParseBridgeConfig(req);
  const cni::Result& prev = *req.prev_result;
  if (!cfg.ipam_type.empty()) cni::DelegateCommand(req, cfg.ipam_type, cni::Command::kCheck);

  auto fail = [](const std::string& msg) { throw Error(cni::kInternal, msg); };
  nl::Socket node;
  auto br = nl::FindLink(node, cfg.bridge);
  if (!br) fail("bridge \"" + cfg.bridge + "\" not found");
  if (br->kind != "bridge") fail("\"" + cfg.bridge + "\" is not a bridge");
  if (cfg.promisc_mode != br->promisc) {
    fail("bridge \"" + cfg.bridge + "\" promiscuous mode is " + (br->promisc ? "on" : "off") +
         ", config wants " + (cfg.promisc_mode ? "on" : "off"));
  }
  int ctr_pos = -1;
  for (size_t i = 0; i < prev.interfaces.size(); ++i) {
    const auto& iface = prev.interfaces[i];
    if (iface.name == cfg.bridge && iface.sandbox.empty() && !iface.mac.empty() && iface.mac != br->mac) {
      fail("bridge \"" + cfg.bridge + "\" MAC " + br->mac + " differs from prevResult's " + iface.mac);
    }
    if (iface.name == req.env.ifname && iface.sandbox == req.env.netns) ctr_pos = static_cast<int>(i);
  }
  if (ctr_pos < 0) fail("prevResult lists no interface " + req.env.ifname + " in " + req.env.netns);
  const auto& want = prev.interfaces[static_cast<size_t>(ctr_pos)];

  nl::Netns pod = OpenPodNetns(req);
  std::optional<nl::Socket> pod_sock;
  {
    nl::NetnsScope in_pod(pod);
    pod_sock.emplace();
  }
  auto ctr = nl::FindLink(*pod_sock, req.env.ifname);
  if (!ctr) fail("container interface " + req.env.ifname + " not found in " + req.env.netns);
  if (ctr->kind != "veth") fail("container interface " + req.env.ifname + " is not a veth");
  if (!want.mac.empty() && want.mac != ctr->mac) {
    fail("container interface " + req.env.ifname + " MAC " + ctr->mac + " differs from prevResult's " + want.mac);
  }
  auto host = nl::FindLink(node, ctr->peer_index);
  if (!host || host->kind != "veth") fail("host end of " + req.env.ifname + " not found");
  if (host->master != br->index) fail("host veth " + host->name + " is not a port of " + cfg.bridge);

  auto addrs = nl::ListAddresses(*pod_sock, ctr->index);
  for (const auto& ip : prev.ips) {
    if (ip.interface && *ip.interface != ctr_pos) continue;
    bool found = std::any_of(addrs.begin(), addrs.end(), [&](const nl::Address& a) { return a.prefix == ip.address; });
    if (!found) fail("address " + ip.address.ToString() + " missing on " + req.env.ifname);
  }
  for (const auto& r : prev.routes) {
    auto routes = nl::ListRoutes(*pod_sock, r.dst.family(), 0);
    bool found = std::any_of(routes.begin(), routes.end(), [&](const nl::Route& have) {
      return have.dst.Network() == r.dst.Network() && (!r.gw || (have.gw && *have.gw == *r.gw));
    });
    if (!found) fail("route " + r.dst.ToString() + " missing in " + req.env.netns);
  }
  if (cfg.mac_spoof_check || cfg.ip_masq) {
    nft::NftSocket socket;
    if (cfg.mac_spoof_check && !nft::MacSpoofCheck(socket).Has(MasqAttachment(req), host->name,
                                                                MustParseMac(ctr->mac))) {
      fail("MAC spoof check for " + host->name + " (" + ctr->mac + ") is missing");
    }
    if (cfg.ip_masq) {
      nft::PodMasquerade masq(socket);
      for (const auto& ip : prev.ips) {
        if (!masq.Has(MasqAttachment(req), ip.address.address())) {
          fail("masquerade rule for " + ip.address.address().ToString() + " is missing");
        }
      }
    }
  }
}

void Gc(const cni::Request& req) {
  BridgeConfig cfg = ParseBridgeConfig(req);
  std::string errors;
  if (!cfg.ipam_type.empty()) {
    try {
      cni::DelegateCommand(req, cfg.ipam_type, cni::Command::kGc);
    } catch (const Error& e) {
      errors = "IPAM GC: " + e.msg();
    }
  }
  std::set<std::pair<std::string, std::string>> valid;
  for (const auto& a : req.valid_attachments) valid.emplace(a.container_id, a.ifname);
  // The runtime runs GC with no ADD or DEL in flight, so tables left without any attachment
  // can go too (DEL keeps them: a concurrent ADD may be about to use them).
  nft::NftSocket socket;
  Step("failed to collect masquerade rules", [&] {
    nft::PodMasquerade masq(socket);
    masq.RemoveExcept(req.name, valid);
    masq.RemoveTableIfUnused();
  });
  Step("failed to collect MAC spoof checks", [&] {
    nft::MacSpoofCheck check(socket);
    check.RemoveExcept(req.name, valid);
    check.RemoveTableIfUnused();
  });
  if (!errors.empty()) throw Error(cni::kInternal, "GC incomplete", errors);
}

void Status(const cni::Request& req) {
  BridgeConfig cfg = ParseBridgeConfig(req);
  if (!cfg.ipam_type.empty()) cni::DelegateCommand(req, cfg.ipam_type, cni::Command::kStatus);
}

cni::Plugin MakePlugin() {
  cni::Plugin p;
  p.about = "bridge plugin (Sluice)";
  p.known_args = {"MAC", "IP"};
  p.add = Add;
  p.del = Del;
  p.check = Check;
  p.gc = Gc;
  p.status = Status;
  return p;
}

}  // namespace sluice::bridge
