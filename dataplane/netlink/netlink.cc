#include "dataplane/netlink/netlink.h"

#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_bridge.h>
#include <linux/if_link.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/neighbour.h>
#include <netlink/route/route.h>
#include <sched.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <functional>

namespace sluice::netlink {
namespace {

template <typename T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const {
    if (p) Free(p);
  }
};
using LinkPtr = std::unique_ptr<rtnl_link, Deleter<rtnl_link, rtnl_link_put>>;
using AddrPtr = std::unique_ptr<rtnl_addr, Deleter<rtnl_addr, rtnl_addr_put>>;
using RoutePtr = std::unique_ptr<rtnl_route, Deleter<rtnl_route, rtnl_route_put>>;
using NeighPtr = std::unique_ptr<rtnl_neigh, Deleter<rtnl_neigh, rtnl_neigh_put>>;
using NlAddrPtr = std::unique_ptr<nl_addr, Deleter<nl_addr, nl_addr_put>>;
using CachePtr = std::unique_ptr<nl_cache, Deleter<nl_cache, nl_cache_free>>;
using MsgPtr = std::unique_ptr<nl_msg, Deleter<nl_msg, nlmsg_free>>;

// libnl hides errno behind NLE_* codes; keep the common ones recognisable.
int ErrnoOf(int nl_code) {
  switch (-nl_code) {
    case NLE_EXIST: return EEXIST;
    case NLE_OBJ_NOTFOUND: return ENOENT;
    case NLE_NODEV: return ENODEV;
    case NLE_PERM: return EPERM;
    case NLE_BUSY: return EBUSY;
    case NLE_INVAL: return EINVAL;
    case NLE_RANGE: return ERANGE;
    case NLE_OPNOTSUPP: return EOPNOTSUPP;
    case NLE_NOADDR: return EADDRNOTAVAIL;
    case NLE_AF_NOSUPPORT: return EAFNOSUPPORT;
    default: return 0;
  }
}

void Check(int rc, const std::string& what) {
  if (rc < 0) throw NetlinkError(what + ": " + nl_geterror(rc), rc, ErrnoOf(rc));
}

NlAddrPtr ToNlAddr(const IpAddress& ip, int prefix_len) {
  nl_addr* a = nl_addr_build(ip.af(), ip.data(), ip.size());
  if (!a) throw NetlinkError("out of memory building address", -NLE_NOMEM);
  nl_addr_set_prefixlen(a, prefix_len);
  return NlAddrPtr(a);
}

std::optional<IpAddress> FromNlAddr(nl_addr* a) {
  if (!a) return std::nullopt;
  if (nl_addr_get_family(a) == AF_INET && nl_addr_get_len(a) == 4) {
    in_addr v4;
    std::memcpy(&v4, nl_addr_get_binary_addr(a), 4);
    return IpAddress::V4(v4);
  }
  if (nl_addr_get_family(a) == AF_INET6 && nl_addr_get_len(a) == 16) {
    in6_addr v6;
    std::memcpy(&v6, nl_addr_get_binary_addr(a), 16);
    return IpAddress::V6(v6);
  }
  return std::nullopt;
}

NlAddrPtr ParseMac(const std::string& mac) {
  nl_addr* a = nullptr;
  int rc = nl_addr_parse(mac.c_str(), AF_LLC, &a);
  if (rc < 0 || nl_addr_get_len(a) != 6) {
    if (a) nl_addr_put(a);
    throw NetlinkError("invalid MAC address \"" + mac + "\"", rc < 0 ? rc : -NLE_INVAL, EINVAL);
  }
  return NlAddrPtr(a);
}

LinkInfo ToLinkInfo(rtnl_link* l) {
  LinkInfo info;
  info.index = rtnl_link_get_ifindex(l);
  if (const char* n = rtnl_link_get_name(l)) info.name = n;
  if (const char* t = rtnl_link_get_type(l)) info.kind = t;
  if (nl_addr* a = rtnl_link_get_addr(l); a && nl_addr_get_len(a) > 0) {
    info.mac = FormatMac(static_cast<const uint8_t*>(nl_addr_get_binary_addr(a)), nl_addr_get_len(a));
  }
  info.mtu = rtnl_link_get_mtu(l);
  unsigned flags = rtnl_link_get_flags(l);
  info.admin_up = flags & IFF_UP;
  info.promisc = flags & IFF_PROMISC;
  info.oper_up = rtnl_link_get_operstate(l) == IF_OPER_UP;
  info.master = rtnl_link_get_master(l);
  info.peer_index = rtnl_link_get_link(l);
  int32_t nsid = -1;
  if (rtnl_link_get_link_netnsid(l, &nsid) == 0) info.peer_netnsid = nsid;
  return info;
}

// Applies `fill` to an empty "changes" link and sends it for the link at `index`.
void ChangeLink(const Socket& s, int index, const std::string& what,
                const std::function<void(rtnl_link*)>& fill) {
  LinkPtr orig(rtnl_link_alloc());
  LinkPtr changes(rtnl_link_alloc());
  rtnl_link_set_ifindex(orig.get(), index);
  fill(changes.get());
  Check(rtnl_link_change(s.get(), orig.get(), changes.get(), 0),
        what + " (ifindex " + std::to_string(index) + ")");
}

// Sends a hand-built message and waits for the kernel's ACK. nl_send_sync frees the message.
void SendSync(const Socket& s, MsgPtr msg, const std::string& what) {
  Check(nl_send_sync(s.get(), msg.release()), what);
}

MsgPtr NewLinkMsg(int type, int flags, int family, int index) {
  MsgPtr msg(nlmsg_alloc_simple(type, flags));
  if (!msg) throw NetlinkError("out of memory", -NLE_NOMEM);
  ifinfomsg ifi{};
  ifi.ifi_family = static_cast<unsigned char>(family);
  ifi.ifi_index = index;
  Check(nlmsg_append(msg.get(), &ifi, sizeof(ifi), NLMSG_ALIGNTO), "building link message");
  return msg;
}

template <typename Obj, typename Fn>
void ForEachInCache(nl_cache* cache, Fn fn) {
  for (nl_object* o = nl_cache_get_first(cache); o; o = nl_cache_get_next(o)) {
    fn(reinterpret_cast<Obj*>(o));
  }
}

}  // namespace

NetlinkError::NetlinkError(const std::string& what, int nl_code, int sys_errno)
    : std::runtime_error(what), nl_code_(nl_code), errno_(sys_errno) {}

bool NetlinkError::exists() const { return errno_ == EEXIST; }
bool NetlinkError::not_found() const {
  return errno_ == ENOENT || errno_ == ENODEV || errno_ == ESRCH || errno_ == EADDRNOTAVAIL;
}

std::string FormatMac(const uint8_t* b, size_t len) {
  std::string out;
  char part[4];
  for (size_t i = 0; i < len; ++i) {
    std::snprintf(part, sizeof(part), i ? ":%02x" : "%02x", b[i]);
    out += part;
  }
  return out;
}

// ---- namespaces ----

Netns Netns::Open(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    int e = errno;
    throw NetlinkError("failed to open netns \"" + path + "\": " + std::strerror(e), 0, e);
  }
  struct stat st {};
  // A netns handle lives on nsfs (or procfs for /proc/<pid>/ns/net); a plain file is a mistake.
  if (fstat(fd.get(), &st) == 0 && S_ISDIR(st.st_mode)) {
    throw NetlinkError("\"" + path + "\" is a directory, not a network namespace", 0, EINVAL);
  }
  return Netns(std::move(fd));
}

Netns Netns::Current() { return Open("/proc/thread-self/ns/net"); }

ino_t Netns::inode() const {
  struct stat st {};
  fstat(fd_.get(), &st);
  return st.st_ino;
}

NetnsScope::NetnsScope(const Netns& target) : original_(Netns::Current()) {
  if (setns(target.fd(), CLONE_NEWNET) != 0) {
    int e = errno;
    throw NetlinkError(std::string("failed to enter network namespace: ") + std::strerror(e), 0, e);
  }
}

NetnsScope::~NetnsScope() {
  // Failing to return would leave the thread in the wrong namespace: nothing sane can follow.
  if (setns(original_.fd(), CLONE_NEWNET) != 0) std::abort();
}

Socket::Socket() : sock_(nl_socket_alloc()) {
  if (!sock_) throw NetlinkError("failed to allocate netlink socket", -NLE_NOMEM);
  int rc = nl_connect(sock_, NETLINK_ROUTE);
  if (rc < 0) {
    nl_socket_free(sock_);
    throw NetlinkError(std::string("failed to connect rtnetlink: ") + nl_geterror(rc), rc);
  }
}

Socket::~Socket() { nl_socket_free(sock_); }

// ---- links ----

std::optional<LinkInfo> FindLink(const Socket& s, const std::string& name) {
  rtnl_link* l = nullptr;
  int rc = rtnl_link_get_kernel(s.get(), 0, name.c_str(), &l);
  if (rc == -NLE_OBJ_NOTFOUND || rc == -NLE_NODEV) return std::nullopt;
  Check(rc, "failed to look up link \"" + name + "\"");
  LinkPtr link(l);
  return ToLinkInfo(link.get());
}

std::optional<LinkInfo> FindLink(const Socket& s, int index) {
  rtnl_link* l = nullptr;
  int rc = rtnl_link_get_kernel(s.get(), index, nullptr, &l);
  if (rc == -NLE_OBJ_NOTFOUND || rc == -NLE_NODEV) return std::nullopt;
  Check(rc, "failed to look up link with ifindex " + std::to_string(index));
  LinkPtr link(l);
  return ToLinkInfo(link.get());
}

LinkInfo GetLink(const Socket& s, const std::string& name) {
  auto l = FindLink(s, name);
  if (!l) throw NetlinkError("link \"" + name + "\" not found", -NLE_OBJ_NOTFOUND, ENODEV);
  return *l;
}

std::vector<LinkInfo> ListLinks(const Socket& s) {
  nl_cache* c = nullptr;
  Check(rtnl_link_alloc_cache(s.get(), AF_UNSPEC, &c), "failed to list links");
  CachePtr cache(c);
  std::vector<LinkInfo> out;
  ForEachInCache<rtnl_link>(cache.get(), [&](rtnl_link* l) { out.push_back(ToLinkInfo(l)); });
  return out;
}

void CreateBridge(const Socket& s, const std::string& name, unsigned mtu, bool vlan_filtering) {
  // Built by hand: libnl 3.7 has no setter for IFLA_BR_VLAN_FILTERING.
  MsgPtr msg = NewLinkMsg(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, AF_UNSPEC, 0);
  const std::string what = "failed to create bridge \"" + name + "\"";
  Check(nla_put_string(msg.get(), IFLA_IFNAME, name.c_str()), what);
  if (mtu) Check(nla_put_u32(msg.get(), IFLA_MTU, mtu), what);
  nlattr* linkinfo = nla_nest_start(msg.get(), IFLA_LINKINFO);
  Check(nla_put_string(msg.get(), IFLA_INFO_KIND, "bridge"), what);
  if (vlan_filtering) {
    nlattr* data = nla_nest_start(msg.get(), IFLA_INFO_DATA);
    Check(nla_put_u8(msg.get(), IFLA_BR_VLAN_FILTERING, 1), what);
    nla_nest_end(msg.get(), data);
  }
  nla_nest_end(msg.get(), linkinfo);
  SendSync(s, std::move(msg), what);
}

void SetBridgeVlanFiltering(const Socket& s, int bridge_index, bool on) {
  MsgPtr msg = NewLinkMsg(RTM_NEWLINK, 0, AF_UNSPEC, bridge_index);
  const std::string what = "failed to set vlan_filtering on bridge ifindex " + std::to_string(bridge_index);
  nlattr* linkinfo = nla_nest_start(msg.get(), IFLA_LINKINFO);
  Check(nla_put_string(msg.get(), IFLA_INFO_KIND, "bridge"), what);
  nlattr* data = nla_nest_start(msg.get(), IFLA_INFO_DATA);
  Check(nla_put_u8(msg.get(), IFLA_BR_VLAN_FILTERING, on ? 1 : 0), what);
  nla_nest_end(msg.get(), data);
  nla_nest_end(msg.get(), linkinfo);
  SendSync(s, std::move(msg), what);
}

void CreateVeth(const Socket& s, const VethSpec& spec) {
  LinkPtr link(rtnl_link_veth_alloc());
  if (!link) throw NetlinkError("out of memory", -NLE_NOMEM);
  rtnl_link* peer = rtnl_link_veth_get_peer(link.get());
  rtnl_link_set_name(link.get(), spec.name.c_str());
  rtnl_link_set_name(peer, spec.peer_name.c_str());
  if (spec.mtu) {
    rtnl_link_set_mtu(link.get(), spec.mtu);
    rtnl_link_set_mtu(peer, spec.mtu);
  }
  if (!spec.mac.empty()) rtnl_link_set_addr(link.get(), ParseMac(spec.mac).get());
  if (spec.netns) rtnl_link_set_ns_fd(link.get(), spec.netns->fd());
  rtnl_link_put(peer);  // rtnl_link_veth_get_peer took a reference
  Check(rtnl_link_add(s.get(), link.get(), NLM_F_CREATE | NLM_F_EXCL),
        "failed to create veth pair " + spec.name + "/" + spec.peer_name);
}

void SetLinkUp(const Socket& s, int index, bool up) {
  ChangeLink(s, index, up ? "failed to set link up" : "failed to set link down", [&](rtnl_link* c) {
    if (up) {
      rtnl_link_set_flags(c, IFF_UP);
    } else {
      rtnl_link_unset_flags(c, IFF_UP);
    }
  });
}

void SetMtu(const Socket& s, int index, unsigned mtu) {
  ChangeLink(s, index, "failed to set MTU " + std::to_string(mtu),
             [&](rtnl_link* c) { rtnl_link_set_mtu(c, mtu); });
}

void SetMac(const Socket& s, int index, const std::string& mac) {
  auto addr = ParseMac(mac);
  ChangeLink(s, index, "failed to set MAC " + mac,
             [&](rtnl_link* c) { rtnl_link_set_addr(c, addr.get()); });
}

void SetPromisc(const Socket& s, int index, bool on) {
  ChangeLink(s, index, "failed to set promiscuous mode", [&](rtnl_link* c) {
    if (on) {
      rtnl_link_set_flags(c, IFF_PROMISC);
    } else {
      rtnl_link_unset_flags(c, IFF_PROMISC);
    }
  });
}

void SetMaster(const Socket& s, int index, int master_index) {
  ChangeLink(s, index, "failed to attach to master ifindex " + std::to_string(master_index),
             [&](rtnl_link* c) { rtnl_link_set_master(c, master_index); });
}

void MoveToNetns(const Socket& s, int index, const Netns& target) {
  ChangeLink(s, index, "failed to move link to another namespace",
             [&](rtnl_link* c) { rtnl_link_set_ns_fd(c, target.fd()); });
}

void DeleteLink(const Socket& s, int index) {
  LinkPtr link(rtnl_link_alloc());
  rtnl_link_set_ifindex(link.get(), index);
  Check(rtnl_link_delete(s.get(), link.get()), "failed to delete link ifindex " + std::to_string(index));
}

void SetBridgePort(const Socket& s, int port_index, const BridgePortFlags& flags) {
  MsgPtr msg = NewLinkMsg(RTM_SETLINK, 0, AF_BRIDGE, port_index);
  const std::string what = "failed to set bridge port flags on ifindex " + std::to_string(port_index);
  nlattr* protinfo = nla_nest_start(msg.get(), IFLA_PROTINFO | NLA_F_NESTED);
  if (flags.hairpin) Check(nla_put_u8(msg.get(), IFLA_BRPORT_MODE, *flags.hairpin ? 1 : 0), what);
  if (flags.isolated) Check(nla_put_u8(msg.get(), IFLA_BRPORT_ISOLATED, *flags.isolated ? 1 : 0), what);
  nla_nest_end(msg.get(), protinfo);
  SendSync(s, std::move(msg), what);
}

void SetBridgeVlans(const Socket& s, int port_index, const std::vector<BridgeVlan>& vlans,
                    bool remove) {
  if (vlans.empty()) return;
  MsgPtr msg = NewLinkMsg(remove ? RTM_DELLINK : RTM_SETLINK, 0, AF_BRIDGE, port_index);
  const std::string what = std::string("failed to ") + (remove ? "remove" : "add") +
                           " VLANs on bridge port ifindex " + std::to_string(port_index);
  nlattr* spec = nla_nest_start(msg.get(), IFLA_AF_SPEC);
  for (const auto& v : vlans) {
    bridge_vlan_info info{};
    info.flags = (v.pvid ? BRIDGE_VLAN_INFO_PVID : 0) | (v.untagged ? BRIDGE_VLAN_INFO_UNTAGGED : 0);
    if (v.vid_end > v.vid) {
      info.vid = v.vid;
      info.flags |= BRIDGE_VLAN_INFO_RANGE_BEGIN;
      Check(nla_put(msg.get(), IFLA_BRIDGE_VLAN_INFO, sizeof(info), &info), what);
      info.vid = v.vid_end;
      info.flags = static_cast<uint16_t>((info.flags & ~BRIDGE_VLAN_INFO_RANGE_BEGIN) |
                                         BRIDGE_VLAN_INFO_RANGE_END);
    } else {
      info.vid = v.vid;
    }
    Check(nla_put(msg.get(), IFLA_BRIDGE_VLAN_INFO, sizeof(info), &info), what);
  }
  nla_nest_end(msg.get(), spec);
  SendSync(s, std::move(msg), what);
}

// ---- addresses ----

std::vector<Address> ListAddresses(const Socket& s, int index) {
  nl_cache* c = nullptr;
  Check(rtnl_addr_alloc_cache(s.get(), &c), "failed to list addresses");
  CachePtr cache(c);
  std::vector<Address> out;
  ForEachInCache<rtnl_addr>(cache.get(), [&](rtnl_addr* a) {
    if (index && rtnl_addr_get_ifindex(a) != index) return;
    auto ip = FromNlAddr(rtnl_addr_get_local(a));
    if (!ip) return;
    out.push_back({IpPrefix(*ip, rtnl_addr_get_prefixlen(a)), rtnl_addr_get_ifindex(a),
                   (rtnl_addr_get_flags(a) & IFA_F_TENTATIVE) != 0});
  });
  return out;
}

void AddAddress(const Socket& s, int index, const IpPrefix& prefix, bool no_dad) {
  AddrPtr addr(rtnl_addr_alloc());
  rtnl_addr_set_ifindex(addr.get(), index);
  auto local = ToNlAddr(prefix.address(), prefix.length());
  Check(rtnl_addr_set_local(addr.get(), local.get()), "bad address " + prefix.ToString());
  if (prefix.address().is_v4() && prefix.length() < 31) {
    auto bcast = ToNlAddr(prefix.LastAddress(), 32);
    rtnl_addr_set_broadcast(addr.get(), bcast.get());
  }
  if (no_dad && !prefix.address().is_v4()) rtnl_addr_set_flags(addr.get(), IFA_F_NODAD);
  Check(rtnl_addr_add(s.get(), addr.get(), NLM_F_CREATE | NLM_F_EXCL),
        "failed to add address " + prefix.ToString() + " to ifindex " + std::to_string(index));
}

void DeleteAddress(const Socket& s, int index, const IpPrefix& prefix) {
  AddrPtr addr(rtnl_addr_alloc());
  rtnl_addr_set_ifindex(addr.get(), index);
  auto local = ToNlAddr(prefix.address(), prefix.length());
  rtnl_addr_set_local(addr.get(), local.get());
  Check(rtnl_addr_delete(s.get(), addr.get(), 0),
        "failed to delete address " + prefix.ToString() + " from ifindex " + std::to_string(index));
}

// ---- routes ----

std::vector<Route> ListRoutes(const Socket& s, IpFamily family, int index) {
  nl_cache* c = nullptr;
  Check(rtnl_route_alloc_cache(s.get(), family == IpFamily::kV4 ? AF_INET : AF_INET6, 0, &c),
        "failed to list routes");
  CachePtr cache(c);
  std::vector<Route> out;
  ForEachInCache<rtnl_route>(cache.get(), [&](rtnl_route* r) {
    if (rtnl_route_get_type(r) != RTN_UNICAST) return;
    auto dst_ip = FromNlAddr(rtnl_route_get_dst(r));
    Route route;
    if (dst_ip) {
      route.dst = IpPrefix(*dst_ip, nl_addr_get_prefixlen(rtnl_route_get_dst(r)));
    } else {
      route.dst = IpPrefix(family == IpFamily::kV4 ? IpAddress::MustParse("0.0.0.0")
                                                   : IpAddress::MustParse("::"), 0);
    }
    route.table = static_cast<int>(rtnl_route_get_table(r));
    route.scope = rtnl_route_get_scope(r);
    route.metric = rtnl_route_get_priority(r);
    route.protocol = rtnl_route_get_protocol(r);
    if (rtnl_route_get_nnexthops(r) > 0) {
      rtnl_nexthop* nh = rtnl_route_nexthop_n(r, 0);
      route.index = rtnl_route_nh_get_ifindex(nh);
      route.gw = FromNlAddr(rtnl_route_nh_get_gateway(nh));
    }
    if (index && route.index != index) return;
    out.push_back(route);
  });
  return out;
}

namespace {
RoutePtr BuildRoute(const Route& r) {
  RoutePtr route(rtnl_route_alloc());
  auto dst = ToNlAddr(r.dst.NetworkAddress(), r.dst.length());
  rtnl_route_set_family(route.get(), r.dst.address().af());
  rtnl_route_set_dst(route.get(), dst.get());
  rtnl_route_set_table(route.get(), r.table ? static_cast<uint32_t>(r.table) : uint32_t{RT_TABLE_MAIN});
  rtnl_route_set_protocol(route.get(), r.protocol ? r.protocol : uint8_t{RTPROT_BOOT});
  rtnl_route_set_type(route.get(), RTN_UNICAST);
  int scope = r.scope >= 0 ? r.scope : (r.gw ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK);
  rtnl_route_set_scope(route.get(), static_cast<uint8_t>(scope));
  if (r.metric) rtnl_route_set_priority(route.get(), r.metric);
  if (r.mtu) rtnl_route_set_metric(route.get(), RTAX_MTU, r.mtu);
  if (r.advmss) rtnl_route_set_metric(route.get(), RTAX_ADVMSS, r.advmss);
  rtnl_nexthop* nh = rtnl_route_nh_alloc();
  if (r.index) rtnl_route_nh_set_ifindex(nh, r.index);
  if (r.gw) {
    auto gw = ToNlAddr(*r.gw, r.gw->bits());
    rtnl_route_nh_set_gateway(nh, gw.get());
  }
  rtnl_route_add_nexthop(route.get(), nh);  // the route owns nh now
  return route;
}

std::string Describe(const Route& r) {
  std::string s = "route " + r.dst.Network().ToString();
  if (r.gw) s += " via " + r.gw->ToString();
  if (r.index) s += " dev ifindex " + std::to_string(r.index);
  return s;
}
}  // namespace

void AddRoute(const Socket& s, const Route& r) {
  RoutePtr route = BuildRoute(r);
  Check(rtnl_route_add(s.get(), route.get(), NLM_F_CREATE | NLM_F_EXCL),
        "failed to add " + Describe(r));
}

void DeleteRoute(const Socket& s, const Route& r) {
  RoutePtr route = BuildRoute(r);
  Check(rtnl_route_delete(s.get(), route.get(), 0), "failed to delete " + Describe(r));
}

// ---- neighbours ----

std::vector<Neighbour> ListNeighbours(const Socket& s, int index) {
  nl_cache* c = nullptr;
  Check(rtnl_neigh_alloc_cache(s.get(), &c), "failed to list neighbours");
  CachePtr cache(c);
  std::vector<Neighbour> out;
  ForEachInCache<rtnl_neigh>(cache.get(), [&](rtnl_neigh* n) {
    if (index && rtnl_neigh_get_ifindex(n) != index) return;
    auto ip = FromNlAddr(rtnl_neigh_get_dst(n));
    if (!ip) return;
    Neighbour nb{*ip, "", rtnl_neigh_get_ifindex(n), (rtnl_neigh_get_state(n) & NUD_PERMANENT) != 0};
    if (nl_addr* ll = rtnl_neigh_get_lladdr(n); ll && nl_addr_get_len(ll) > 0) {
      nb.mac = FormatMac(static_cast<const uint8_t*>(nl_addr_get_binary_addr(ll)), nl_addr_get_len(ll));
    }
    out.push_back(nb);
  });
  return out;
}

void AddNeighbour(const Socket& s, const Neighbour& n) {
  NeighPtr neigh(rtnl_neigh_alloc());
  rtnl_neigh_set_ifindex(neigh.get(), n.index);
  auto dst = ToNlAddr(n.ip, n.ip.bits());
  rtnl_neigh_set_dst(neigh.get(), dst.get());
  auto ll = ParseMac(n.mac);
  rtnl_neigh_set_lladdr(neigh.get(), ll.get());
  rtnl_neigh_set_state(neigh.get(), n.permanent ? int{NUD_PERMANENT} : int{NUD_REACHABLE});
  Check(rtnl_neigh_add(s.get(), neigh.get(), NLM_F_CREATE | NLM_F_REPLACE),
        "failed to add neighbour " + n.ip.ToString() + " lladdr " + n.mac);
}

void DeleteNeighbour(const Socket& s, const Neighbour& n) {
  NeighPtr neigh(rtnl_neigh_alloc());
  rtnl_neigh_set_ifindex(neigh.get(), n.index);
  auto dst = ToNlAddr(n.ip, n.ip.bits());
  rtnl_neigh_set_dst(neigh.get(), dst.get());
  Check(rtnl_neigh_delete(s.get(), neigh.get(), 0), "failed to delete neighbour " + n.ip.ToString());
}

// ---- sysctls ----

namespace {
std::string SysctlPath(const std::string& name) {
  std::string rel = name;
  if (rel.find('/') == std::string::npos) {
    for (char& c : rel) {
      if (c == '.') c = '/';
    }
  }
  return "/proc/sys/" + rel;
}
}  // namespace

std::string ReadSysctl(const std::string& name) {
  std::string path = SysctlPath(name);
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    int e = errno;
    throw NetlinkError("failed to read sysctl " + path + ": " + std::strerror(e), 0, e);
  }
  char buf[256];
  ssize_t n = read(fd.get(), buf, sizeof(buf) - 1);
  if (n < 0) {
    int e = errno;
    throw NetlinkError("failed to read sysctl " + path + ": " + std::strerror(e), 0, e);
  }
  std::string v(buf, static_cast<size_t>(n));
  while (!v.empty() && (v.back() == '\n' || v.back() == ' ')) v.pop_back();
  return v;
}

void WriteSysctl(const std::string& name, const std::string& value) {
  std::string path = SysctlPath(name);
  UniqueFd fd(open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd.valid() || write(fd.get(), value.data(), value.size()) != static_cast<ssize_t>(value.size())) {
    int e = errno;
    throw NetlinkError("failed to write " + value + " to sysctl " + path + ": " + std::strerror(e), 0, e);
  }
}

}  // namespace sluice::netlink
