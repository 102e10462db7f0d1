// The addresses of this network namespace's interfaces inside given CIDRs: what
// --nodeport-addresses=CIDRS selects, in every backend.
#pragma once

#include <set>
#include <vector>

#include "common/ip_address.h"

namespace sluice::proxy {

// Throws std::runtime_error when the addresses cannot be listed.
std::set<IpAddress> LocalAddressesIn(const std::vector<IpPrefix>& cidrs);

}  // namespace sluice::proxy
