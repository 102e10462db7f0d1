#include "cni-plugins/host-local/allocator.h"

#include "cni-plugins/skel/cni_error.h"

namespace sluice::hostlocal {

using cni::Error;

Allocation Allocator::Allocate(const std::string& container_id, const std::string& ifname,
                               const std::optional<IpAddress>& requested) {
  if (requested) {
    const Range* r = set_.RangeFor(*requested);
    if (!r) {
      throw Error(cni::kInvalidConfig, "requested IP address " + requested->ToString() +
                                           " is not in range set " + set_.ToString());
    }
    if (*requested == r->gateway) {
      throw Error(cni::kInvalidConfig,
                  "requested ip " + requested->ToString() + " is subnet's gateway");
    }
    if (!store_.Reserve(*requested, container_id, ifname)) {
      throw Error(cni::kInternal, "requested IP address " + requested->ToString() +
                                      " is not available in range set " + set_.ToString(),
                  "it is already allocated");
    }
    store_.SetLastReserved(index_, *requested);
    return {*requested, r};
  }

  // Start right after the last address handed out from this set, wrapping once around all ranges.
  const auto& ranges = set_.ranges;
  size_t range_index = 0;
  IpAddress ip = ranges[0].range_start;
  if (auto last = store_.LastReserved(index_, set_.family())) {
    for (size_t i = 0; i < ranges.size(); ++i) {
      if (ranges[i].Contains(*last)) {
        range_index = i;
        ip = *last;
        break;
      }
    }
    if (ip == *last) {
      if (ip == ranges[range_index].range_end) {
        range_index = (range_index + 1) % ranges.size();
        ip = ranges[range_index].range_start;
      } else {
        ip = ip.Next();
      }
    }
  }
  const size_t first_range = range_index;
  const IpAddress first_ip = ip;
  for (;;) {
    const Range& r = ranges[range_index];
    if (ip != r.gateway && store_.Reserve(ip, container_id, ifname)) {
      store_.SetLastReserved(index_, ip);
      return {ip, &r};
    }
    if (ip == r.range_end) {
      range_index = (range_index + 1) % ranges.size();
      ip = ranges[range_index].range_start;
    } else {
      ip = ip.Next();
    }
    if (range_index == first_range && ip == first_ip) break;
  }
  throw Error(cni::kInternal,
              "no IP addresses available in range set: " + set_.ToString());
}

}  // namespace sluice::hostlocal
