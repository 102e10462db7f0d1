#include "cni-plugins/host-local/range_set.h"

#include "cni-plugins/skel/cni_error.h"

namespace sluice::hostlocal {
namespace {

using cni::Error;
using cni::kInvalidConfig;

bool RangesOverlap(const Range& a, const Range& b) {
  if (a.subnet.family() != b.subnet.family()) return false;
  return a.Contains(b.range_start) || a.Contains(b.range_end) || b.Contains(a.range_start) ||
         b.Contains(a.range_end);
}

uint64_t Span(const IpAddress& start, const IpAddress& end) {
  // Difference of the low 64 bits, saturating when the high bits differ.
  uint64_t hi_s = 0, hi_e = 0, lo_s = 0, lo_e = 0;
  const size_t n = start.size();
  for (size_t i = 0; i < n; ++i) {
    bool high = n == 16 && i < 8;
    uint64_t& s = high ? hi_s : lo_s;
    uint64_t& e = high ? hi_e : lo_e;
    s = (s << 8) | start.data()[i];
    e = (e << 8) | end.data()[i];
  }
  if (hi_e != hi_s) return UINT64_MAX;
  uint64_t d = lo_e - lo_s;
  return d == UINT64_MAX ? d : d + 1;
}

}  // namespace

const Range* RangeSet::RangeFor(const IpAddress& ip) const {
  for (const auto& r : ranges) {
    if (r.Contains(ip)) return &r;
  }
  return nullptr;
}

bool RangeSet::Overlaps(const RangeSet& other) const {
  for (const auto& a : ranges) {
    for (const auto& b : other.ranges) {
      if (RangesOverlap(a, b)) return true;
    }
  }
  return false;
}

std::string RangeSet::ToString() const {
  std::string s;
  for (const auto& r : ranges) s += (s.empty() ? "" : ",") + r.ToString();
  return s;
}

uint64_t RangeSet::Capacity() const {
  uint64_t total = 0;
  for (const auto& r : ranges) {
    uint64_t n = Span(r.range_start, r.range_end);
    if (r.Contains(r.gateway) && n != UINT64_MAX) --n;
    total = (UINT64_MAX - total < n) ? UINT64_MAX : total + n;
  }
  return total;
}

Range MakeRange(const std::string& subnet_text, const std::string& start_text,
                const std::string& end_text, const std::string& gateway_text) {
  if (subnet_text.empty()) throw Error(kInvalidConfig, "IPAM range is missing \"subnet\"");
  auto subnet = IpPrefix::Parse(subnet_text);
  if (!subnet) throw Error(kInvalidConfig, "IPAM range: invalid subnet \"" + subnet_text + "\"");
  if (subnet->Network() != *subnet) {
    throw Error(kInvalidConfig, "IPAM range: network " + subnet_text + " has host bits set",
                "use " + subnet->Network().ToString());
  }
  const int host_bits = subnet->address().bits() - subnet->length();
  if (host_bits < 2) {
    throw Error(kInvalidConfig, "IPAM range: network " + subnet_text + " is too small to allocate from");
  }
  auto parse_in_subnet = [&](const std::string& text, const char* key) {
    auto ip = IpAddress::Parse(text);
    if (!ip) throw Error(kInvalidConfig, std::string("IPAM range: invalid ") + key + " \"" + text + "\"");
    if (!subnet->Contains(*ip)) {
      throw Error(kInvalidConfig, std::string("IPAM range: ") + key + " " + text +
                                      " is not inside subnet " + subnet_text);
    }
    return *ip;
  };
  Range r;
  r.subnet = *subnet;
  r.range_start = start_text.empty() ? subnet->NetworkAddress().Next()
                                     : parse_in_subnet(start_text, "rangeStart");
  if (end_text.empty()) {
    r.range_end = subnet->LastAddress();
    if (subnet->address().is_v4()) r.range_end = r.range_end.Prev();  // skip broadcast
  } else {
    r.range_end = parse_in_subnet(end_text, "rangeEnd");
  }
  r.gateway = gateway_text.empty() ? subnet->NetworkAddress().Next()
                                   : parse_in_subnet(gateway_text, "gateway");
  if (r.range_end < r.range_start) {
    throw Error(kInvalidConfig, "IPAM range: rangeStart " + r.range_start.ToString() +
                                    " is after rangeEnd " + r.range_end.ToString());
  }
  return r;
}

void ValidateRangeSets(const std::vector<RangeSet>& sets) {
  if (sets.empty()) throw Error(kInvalidConfig, "IPAM config has no ranges");
  for (size_t i = 0; i < sets.size(); ++i) {
    const auto& set = sets[i];
    if (set.ranges.empty()) {
      throw Error(kInvalidConfig, "IPAM range set " + std::to_string(i) + " is empty");
    }
    for (size_t a = 0; a < set.ranges.size(); ++a) {
      if (set.ranges[a].subnet.family() != set.family()) {
        throw Error(kInvalidConfig, "IPAM range set " + std::to_string(i) + " mixes address families");
      }
      for (size_t b = a + 1; b < set.ranges.size(); ++b) {
        if (RangesOverlap(set.ranges[a], set.ranges[b])) {
          throw Error(kInvalidConfig, "IPAM range " + set.ranges[a].ToString() + " overlaps with " +
                                          set.ranges[b].ToString());
        }
      }
    }
    for (size_t j = i + 1; j < sets.size(); ++j) {
      if (set.Overlaps(sets[j])) {
        throw Error(kInvalidConfig, "IPAM range set " + set.ToString() + " overlaps with range set " +
                                        sets[j].ToString());
      }
    }
  }
}

}  // namespace sluice::hostlocal
