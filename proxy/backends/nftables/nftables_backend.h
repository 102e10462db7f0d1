// The nftables backend: NodeState into one `inet sluice-proxy` table through libnftnl batches.
//
// - A partial sync renders only the Services the change lists (before and after) and sends the
//   difference: chains created, rewritten (flush + rules) or deleted, map elements added or
//   removed, members of the shared sets counted across Services. Work is proportional to the
//   change, not to the number of Services.
// - A full sync (first sync, period, after a failure, node change) reads the table back (chains,
//   rule fingerprints, sets, elements) and sends only what differs: on restart nothing is flushed
//   and, if nothing changed meanwhile, nothing is sent.
// - Each sync is one transaction: the kernel applies all of it or none; a refused transaction
//   throws and leaves the previous rules in force.
// Other tables are never read or written.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "common/ip_address.h"
#include "dataplane/nft/batch.h"
#include "dataplane/nft/nft_socket.h"
#include "proxy/backend.h"
#include "proxy/backends/nftables/layout.h"

namespace sluice::proxy::nftables {

struct NftablesOptions {
  std::vector<IpPrefix> cluster_cidrs;
  bool masquerade_all = false;
  // --nodeport-addresses: CIDRs selecting local addresses, or empty for the node's own IPs
  // ("primary", kube-proxy's default in nftables mode). A CIDR of length 0 selects every local
  // address.
  std::vector<IpPrefix> nodeport_cidrs;
};

LayoutOptions MakeLayoutOptions(const NftablesOptions& options);

// What the last Sync did, for logs, tests and the benchmark.
struct SyncStats {
  bool full = false;
  size_t messages = 0;  // netlink messages in the transaction (0: nothing to change)
  size_t bytes = 0;
  size_t chains_written = 0;  // created or rewritten
  size_t chains_deleted = 0;
  size_t elements_changed = 0;
};

class NftablesBackend : public Backend {
 public:
  // Opens the netlink socket in the calling thread's network namespace (throws nft::NftError).
  explicit NftablesBackend(NftablesOptions options);
  ~NftablesBackend() override;

  std::string_view name() const override { return "nftables"; }
  void Sync(const state::NodeState& desired, const state::NodeStateChange& change) override;
  // Deletes the table (and so everything in it). No table: nothing to do.
  void Cleanup() override;

  const SyncStats& last_sync() const { return stats_; }

  struct Plan;  // what one transaction changes (nftables_backend.cc)

  // Blocks of the endpoints maps: [offset, offset + capacity), capacity a power of two. Freed
  // blocks are reused by blocks of the same capacity.
  class SlotAllocator {
   public:
    struct Block {
      uint32_t offset = 0;
      uint32_t capacity = 0;
    };
    Block Allocate(uint32_t count);
    void Free(Block block);
    void Reserve(Block block);  // a block found in the kernel
    void Clear();

   private:
    std::map<uint32_t, std::vector<uint32_t>> free_;  // capacity -> offsets
    uint32_t next_ = 0;
  };

 private:
  void FullSync(const state::NodeState& desired);
  void PartialSync(const state::NodeStateChange& change);
  void Send(Plan& plan, bool full);
  void SendBatch(nft::Batch& batch, bool full);
  std::set<IpAddress> NodePortIps(const state::NodeState& desired) const;

  NftablesOptions options_;
  LayoutOptions layout_;
  std::unique_ptr<nft::NftSocket> socket_;
  // Members of the shared sets, counted over the Services that need them (as programmed).
  std::map<IpAddress, int> cluster_ip_refs_;
  std::map<IpAddress, int> hairpin_refs_;
  // The block each multi-endpoint DNAT ("<chain>#<n>") reads, per family (index 0: IPv4).
  std::map<std::string, SlotAllocator::Block> blocks_[2];
  SlotAllocator slots_[2];
  std::set<uint32_t> shards_[2];  // endpoints maps that exist in the kernel
  SyncStats stats_;
};

}  // namespace sluice::proxy::nftables
