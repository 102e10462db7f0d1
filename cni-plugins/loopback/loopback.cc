#include "cni-plugins/loopback/loopback.h"

#include "dataplane/netlink/netlink.h"

namespace sluice::loopback {
namespace {

using sluice::cni::Error;
namespace nl = sluice::netlink;

// Runs `fn` with a rtnetlink socket inside the request's namespace; false if the netns is gone.
template <typename Fn>
bool InPod(const sluice::cni::Request& req, Fn&& fn) {
  std::optional<nl::Netns> pod;
  try {
    pod.emplace(nl::Netns::Open(req.env.netns));
  } catch (const nl::NetlinkError& e) {
    if (req.env.command == sluice::cni::Command::kDel && e.sys_errno() == ENOENT) return false;
    throw Error(sluice::cni::kInvalidEnvironment, std::string("CNI_NETNS: ") + e.what());
  }
  std::optional<nl::Socket> sock;
  {
    nl::NetnsScope scope(*pod);
    sock.emplace();
  }
  try {
    fn(*sock);
  } catch (const nl::NetlinkError& e) {
    throw Error(sluice::cni::kInternal, e.what());
  }
  return true;
}

sluice::cni::Result Add(const sluice::cni::Request& req) {
  sluice::cni::Result result;
  InPod(req, [&](const nl::Socket& s) {
    auto lo = nl::GetLink(s, "lo");
    nl::SetLinkUp(s, lo.index, true);
    for (const auto& a : nl::ListAddresses(s, lo.index)) {
      result.ips.push_back({a.prefix, {}, 0});
    }
  });
  result.interfaces.push_back({.name = "lo", .mac = "00:00:00:00:00:00", .sandbox = req.env.netns});
  // A chained loopback passes the previous result through untouched.
  if (req.prev_result) return *req.prev_result;
  return result;
}

void Del(const sluice::cni::Request& req) {
  if (req.env.netns.empty()) return;
  InPod(req, [&](const nl::Socket& s) {
    if (auto lo = nl::FindLink(s, "lo")) nl::SetLinkUp(s, lo->index, false);
  });
}

void Check(const sluice::cni::Request& req) {
  InPod(req, [&](const nl::Socket& s) {
    auto lo = nl::GetLink(s, "lo");
    if (!lo.admin_up) throw Error(sluice::cni::kInternal, "loopback interface is down");
  });
}

}  // namespace

cni::Plugin MakePlugin() {
  cni::Plugin p;
  p.about = "loopback plugin (Sluice)";
  p.add = Add;
  p.del = Del;
  p.check = Check;
  return p;
}

}  // namespace sluice::loopback
