// The one interface every proxy backend implements (nftables, iptables, eBPF, userspace, and the
// dry-run printer). The agent's sync loop owns the NodeStateTracker and calls Sync with the
// desired state and what differs from the last call.
#pragma once

#include <string_view>

#include "controlplane/state/node_state.h"
#include "controlplane/state/node_state_tracker.h"

namespace sluice::proxy {

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string_view name() const = 0;

  // Makes what is programmed match `desired`. `change` lists the Services that differ from the
  // previous successful call; when `change.full` is set the backend must not trust its own memory
  // of what it programmed and reconcile everything (the periodic resync, the first sync, and the
  // sync after a failure). Throws on failure, leaving the previous programming in force; the
  // runner retries with a full sync.
  virtual void Sync(const state::NodeState& desired, const state::NodeStateChange& change) = 0;

  // Removes everything this backend ever programmed (--cleanup).
  virtual void Cleanup() {}
};

}  // namespace sluice::proxy
