// --dry-run: computes everything a backend would be given and prints it instead of programming
// the kernel. Per sync, one header line, then every service port of each changed Service (all of
// them on the first sync), its destinations and endpoints, and a line per Service that went away:
//
//   sync 3 (partial): 1 service changed, 12 services / 14 ports in total
//   ~ default/web:http TCP IPv4 clusterIP 10.96.0.10:80 internal [10.244.1.5:8080] forward
//   - default/old
#pragma once

#include <cstdint>
#include <ostream>

#include "proxy/backend.h"

namespace sluice::proxy {

class DryRunBackend : public Backend {
 public:
  explicit DryRunBackend(std::ostream& out) : out_(out) {}
  std::string_view name() const override { return "dry-run"; }
  void Sync(const state::NodeState& desired, const state::NodeStateChange& change) override;

 private:
  std::ostream& out_;
  uint64_t syncs_ = 0;
};

}  // namespace sluice::proxy
