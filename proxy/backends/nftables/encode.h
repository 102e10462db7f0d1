// The layout (layout.h) as nf_tables netlink messages: libnftnl objects appended to a Batch.
// Expressions follow the register conventions nft uses, so `nft list` prints our rules back in
// the syntax RuleText writes. Pure: building a batch does no I/O.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "dataplane/nft/batch.h"
#include "dataplane/nft/objects.h"
#include "proxy/backends/nftables/layout.h"

namespace sluice::proxy::nftables {

// Every rule carries a 64-bit fingerprint of its content in its user data (a TLV type nft does
// not print). A full sync compares the kernel's fingerprints with the desired ones, so drift is
// found without decoding expressions.
uint64_t Fingerprint(const Rule& rule);
inline constexpr uint8_t kFingerprintUdataType = 0xf5;
// The fingerprint stored in a rule's user data, or 0.
uint64_t ReadFingerprint(std::span<const uint8_t> udata);
// A rule with a kDnatMap also records its block (which endpoint list of the chain, first slot,
// capacity), so a new agent recovers the slot allocation from the kernel.
inline constexpr uint8_t kBlockUdataType = 0xf6;
struct RuleBlock {
  uint8_t block = 0;
  uint32_t offset = 0;
  uint32_t capacity = 0;
};
std::optional<RuleBlock> ReadBlock(std::span<const uint8_t> udata);

// The table, its maps and sets (NEW messages without EXCL: harmless when they exist).
void AddTable(nft::Batch& batch);
void AddStaticSets(nft::Batch& batch, const LayoutOptions& options);
void AddEndpointsMap(nft::Batch& batch, IpFamily family, uint32_t shard);
void AddChain(nft::Batch& batch, const Chain& chain);
void DeleteChain(nft::Batch& batch, std::string_view chain);
// Appends `rule` to `chain`, with the anonymous set it needs (if any) just before it.
void AppendRule(nft::Batch& batch, std::string_view chain, const Rule& rule);
void AddAffinitySet(nft::Batch& batch, const AffinitySet& set);
void DeleteSet(nft::Batch& batch, std::string_view set);

// Map elements, grouped by map into as few messages as fit.
class ElementWriter {
 public:
  void Add(const Element& element);
  void AddMember(SetId set, const IpAddress& ip);  // cluster-ips/nodeport-ips: ip; hairpin: ip . ip
  void AddSlot(const EndpointSlot& slot);            // endpoints4/6: slot -> addr . port
  void AddSlotKey(IpFamily family, uint32_t slot);   // the key alone (for deletes)
  void AppendAdds(nft::Batch& batch);
  void AppendDeletes(nft::Batch& batch);
  bool empty() const { return sets_.empty(); }

 private:
  nftnl_set& SetFor(const std::string& name);
  std::vector<std::pair<std::string, nft::SetPtr>> sets_;
};

// The key bytes of an element as the kernel stores them (each concatenated field padded to 4
// bytes), for comparing dumped elements.
std::vector<uint8_t> ElementKeyBytes(const ElementKey& key);
std::vector<uint8_t> MemberKeyBytes(SetId set, const IpAddress& ip);
std::vector<uint8_t> SlotKeyBytes(uint32_t slot);
std::vector<uint8_t> SlotDataBytes(const DnatTarget& target);

}  // namespace sluice::proxy::nftables
