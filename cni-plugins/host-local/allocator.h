// Picks and releases addresses for one range set against the disk store, the way the reference
// host-local does: round robin from the last address handed out, skipping the gateway.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "cni-plugins/host-local/disk_store.h"
#include "cni-plugins/host-local/range_set.h"

namespace sluice::hostlocal {

struct Allocation {
  IpAddress ip;
  const Range* range;  // the range the address came from (for prefix length and gateway)
};

class Allocator {
 public:
  Allocator(DiskStore& store, const RangeSet& set, int set_index)
      : store_(store), set_(set), index_(set_index) {}

  // Claims `requested` if given, else the next free address. The store must be locked.
  // Throws cni::Error naming the range set when nothing can be claimed.
  Allocation Allocate(const std::string& container_id, const std::string& ifname,
                      const std::optional<IpAddress>& requested);

 private:
  DiskStore& store_;
  const RangeSet& set_;
  int index_;
};

}  // namespace sluice::hostlocal
