#include "proxy/local_addresses.h"

#include <ifaddrs.h>
#include <netinet/in.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>

namespace sluice::proxy {

std::set<IpAddress> LocalAddressesIn(const std::vector<IpPrefix>& cidrs) {
  std::set<IpAddress> out;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) {
    throw std::runtime_error(std::string("list local addresses for --nodeport-addresses: ") +
                             std::strerror(errno));
  }
  for (ifaddrs* a = list; a != nullptr; a = a->ifa_next) {
    if (a->ifa_addr == nullptr) continue;
    std::optional<IpAddress> ip;
    if (a->ifa_addr->sa_family == AF_INET) {
      ip = IpAddress::V4(reinterpret_cast<const sockaddr_in*>(a->ifa_addr)->sin_addr);
    } else if (a->ifa_addr->sa_family == AF_INET6) {
      ip = IpAddress::V6(reinterpret_cast<const sockaddr_in6*>(a->ifa_addr)->sin6_addr);
    }
    if (!ip) continue;
    for (const auto& cidr : cidrs) {
      if (cidr.Contains(*ip)) out.insert(*ip);
    }
  }
  freeifaddrs(list);
  return out;
}

}  // namespace sluice::proxy
