// host-local's address ranges: a RangeSet is a list of disjoint pools that together yield one
// address; the config holds one RangeSet per address a container gets (e.g. one IPv4, one IPv6).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/ip_address.h"

namespace sluice::hostlocal {

struct Range {
  IpPrefix subnet;  // network address with prefix length
  IpAddress range_start;
  IpAddress range_end;
  IpAddress gateway;

  bool Contains(const IpAddress& ip) const {
    return subnet.Contains(ip) && range_start <= ip && ip <= range_end;
  }
  std::string ToString() const { return range_start.ToString() + "-" + range_end.ToString(); }
};

struct RangeSet {
  std::vector<Range> ranges;

  const Range* RangeFor(const IpAddress& ip) const;
  IpFamily family() const { return ranges.front().subnet.family(); }
  bool Overlaps(const RangeSet& other) const;
  // "10.0.0.2-10.0.0.254,10.0.1.2-10.0.1.254", as errors name a set.
  std::string ToString() const;
  // Number of addresses that can be handed out (gateways excluded), saturating.
  uint64_t Capacity() const;
};

// Fills defaults and validates one range the way the reference plugin does. `raw_*` are the
// config's strings (empty when absent). Throws cni::Error(kInvalidConfig) naming the problem.
Range MakeRange(const std::string& subnet, const std::string& range_start,
                const std::string& range_end, const std::string& gateway);

// Validates a whole configuration: ranges inside a set and sets against each other must not
// overlap, and a set holds one family.
void ValidateRangeSets(const std::vector<RangeSet>& sets);

}  // namespace sluice::hostlocal
