// A small RAII layer over libnl-route-3: network namespaces, links (bridge, veth), bridge ports,
// addresses, routes, neighbours and sysctls. Every call acts in the network namespace the Socket was
// created in; failures throw NetlinkError naming the object and the kernel's reason.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/ip_address.h"
#include "common/unique_fd.h"

struct nl_sock;

namespace sluice::netlink {

class NetlinkError : public std::runtime_error {
 public:
  // `nl_code` is libnl's (negative) NLE_* code or 0; `sys_errno` the errno when known.
  NetlinkError(const std::string& what, int nl_code, int sys_errno = 0);
  int nl_code() const { return nl_code_; }
  int sys_errno() const { return errno_; }
  bool exists() const;
  bool not_found() const;

 private:
  int nl_code_;
  int errno_;
};

// An owned handle on a network namespace.
class Netns {
 public:
  // Opens a netns by path (e.g. /var/run/netns/x or /proc/<pid>/ns/net). Throws NetlinkError with
  // sys_errno set (ENOENT when the path is gone, EINVAL when it is not a netns).
  static Netns Open(const std::string& path);
  static Netns Current();
  int fd() const { return fd_.get(); }
  // Identity of the namespace (inode of its nsfs file), to compare two handles.
  ino_t inode() const;

 private:
  explicit Netns(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

// Moves the calling thread into `target` and back into the original namespace on destruction.
class NetnsScope {
 public:
  explicit NetnsScope(const Netns& target);
  ~NetnsScope();
  NetnsScope(const NetnsScope&) = delete;
  NetnsScope& operator=(const NetnsScope&) = delete;

 private:
  Netns original_;
};

// A NETLINK_ROUTE socket bound to the namespace current when it was made.
class Socket {
 public:
  Socket();
  ~Socket();
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  nl_sock* get() const { return sock_; }

 private:
  nl_sock* sock_;
};

struct LinkInfo {
  int index = 0;
  std::string name;
  std::string kind;  // "bridge", "veth", ... empty for plain devices
  std::string mac;   // "aa:bb:cc:dd:ee:ff"
  unsigned mtu = 0;
  bool admin_up = false;
  bool oper_up = false;
  bool promisc = false;
  int master = 0;       // ifindex of the bridge this port belongs to, 0 if none
  int peer_index = 0;   // for veth: the peer's ifindex (in its own namespace)
  int peer_netnsid = -1;  // IFLA_LINK_NETNSID when the peer lives in another namespace
};

std::optional<LinkInfo> FindLink(const Socket& s, const std::string& name);
std::optional<LinkInfo> FindLink(const Socket& s, int index);
LinkInfo GetLink(const Socket& s, const std::string& name);  // throws when absent
std::vector<LinkInfo> ListLinks(const Socket& s);

// Creates a bridge (up to the caller to bring it up); EEXIST is reported as NetlinkError::exists().
void CreateBridge(const Socket& s, const std::string& name, unsigned mtu, bool vlan_filtering);

struct VethSpec {
  std::string name;       // end created in `netns` (or here when netns is null)
  std::string peer_name;  // end that stays in the socket's namespace
  unsigned mtu = 0;       // 0: kernel default
  std::string mac;        // of `name`; empty: random
  const Netns* netns = nullptr;
};
void CreateVeth(const Socket& s, const VethSpec& spec);

void SetLinkUp(const Socket& s, int index, bool up);
void SetMtu(const Socket& s, int index, unsigned mtu);
void SetMac(const Socket& s, int index, const std::string& mac);
void SetPromisc(const Socket& s, int index, bool on);
void SetMaster(const Socket& s, int index, int master_index);
void MoveToNetns(const Socket& s, int index, const Netns& target);
void DeleteLink(const Socket& s, int index);

// Bridge port attributes (IFLA_PROTINFO under AF_BRIDGE) of an enslaved port.
struct BridgePortFlags {
  std::optional<bool> hairpin;
  std::optional<bool> isolated;
};
void SetBridgePort(const Socket& s, int port_index, const BridgePortFlags& flags);

struct BridgeVlan {
  uint16_t vid = 0;
  uint16_t vid_end = 0;  // >vid for a range
  bool pvid = false;
  bool untagged = false;
};
// Adds (or with remove=true deletes) VLANs on a bridge port.
void SetBridgeVlans(const Socket& s, int port_index, const std::vector<BridgeVlan>& vlans,
                    bool remove = false);
void SetBridgeVlanFiltering(const Socket& s, int bridge_index, bool on);

struct Address {
  IpPrefix prefix;  // address/prefix length
  int index = 0;
  bool tentative = false;
};
std::vector<Address> ListAddresses(const Socket& s, int index /* 0 = all */);
// Adds an address; EEXIST reported as exists().
void AddAddress(const Socket& s, int index, const IpPrefix& prefix, bool no_dad = false);
void DeleteAddress(const Socket& s, int index, const IpPrefix& prefix);

struct Route {
  IpPrefix dst;
  std::optional<IpAddress> gw;
  int index = 0;      // output interface
  int table = 0;      // 0: main
  int scope = -1;     // -1: universe for gatewayed routes, link otherwise
  uint32_t metric = 0;
  unsigned mtu = 0;
  unsigned advmss = 0;
  // rtm_protocol: who installed the route (listing reports it; 0 adds it as "boot", RTPROT_BOOT).
  uint8_t protocol = 0;
};
std::vector<Route> ListRoutes(const Socket& s, IpFamily family, int index /* 0 = all */);
void AddRoute(const Socket& s, const Route& r);  // EEXIST as exists()
void DeleteRoute(const Socket& s, const Route& r);

struct Neighbour {
  IpAddress ip;
  std::string mac;
  int index = 0;
  bool permanent = false;
};
std::vector<Neighbour> ListNeighbours(const Socket& s, int index);
void AddNeighbour(const Socket& s, const Neighbour& n);  // replaces an existing entry
void DeleteNeighbour(const Socket& s, const Neighbour& n);

// Sysctls of the calling thread's namespace: name in dotted or slashed form
// ("net.ipv4.ip_forward" or "net/ipv4/ip_forward").
std::string ReadSysctl(const std::string& name);
void WriteSysctl(const std::string& name, const std::string& value);

std::string FormatMac(const uint8_t* bytes, size_t len);

}  // namespace sluice::netlink
