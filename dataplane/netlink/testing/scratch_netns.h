// Test helper: fresh, anonymous network namespaces for the calling thread. They vanish with the
// last handle, so a failing test leaves nothing behind in the host.
#pragma once

#include <sched.h>

#include <stdexcept>

#include "dataplane/netlink/netlink.h"

namespace sluice::netlink::testing {

// Creates a new network namespace and returns a handle on it, leaving the thread where it was.
inline Netns NewScratchNetns() {
  Netns original = Netns::Current();
  if (unshare(CLONE_NEWNET) != 0) throw std::runtime_error("unshare(CLONE_NEWNET) failed");
  Netns fresh = Netns::Current();
  if (setns(original.fd(), CLONE_NEWNET) != 0) std::abort();
  return fresh;
}

}  // namespace sluice::netlink::testing
