#include "proxy/backends/nftables/nftables_backend.h"


#include <algorithm>
#include <bit>
#include <cstring>
#include <unordered_map>

#include "common/log.h"
#include "dataplane/nft/batch.h"
#include "dataplane/nft/dump.h"
#include "dataplane/nft/netfilter_headers.h"
#include "dataplane/nft/nft_error.h"
#include "proxy/backends/nftables/encode.h"
#include "proxy/local_addresses.h"

namespace sluice::proxy::nftables {

LayoutOptions MakeLayoutOptions(const NftablesOptions& options) {
  LayoutOptions layout;
  layout.cluster_cidrs = options.cluster_cidrs;
  layout.masquerade_all = options.masquerade_all;
  layout.nodeports_on_all_local_addresses =
      std::any_of(options.nodeport_cidrs.begin(), options.nodeport_cidrs.end(),
                  [](const IpPrefix& p) { return p.length() == 0; });
  return layout;
}

// What one transaction changes, in the order Send writes it.
struct NftablesBackend::Plan {
  bool create_table = false;
  std::vector<const Chain*> new_chains;      // created, then filled
  std::vector<const Chain*> rewrite_chains;  // flushed, then filled
  std::vector<std::string> delete_chains;
  std::vector<const AffinitySet*> new_sets;
  std::vector<std::string> delete_sets;
  std::vector<Element> element_adds;
  std::vector<Element> element_deletes;
  std::vector<std::pair<SetId, IpAddress>> member_adds;
  std::vector<std::pair<SetId, IpAddress>> member_deletes;
  std::vector<EndpointSlot> slot_adds;
  std::vector<EndpointSlot> slot_deletes;
  std::vector<std::pair<IpFamily, uint32_t>> new_shards;  // endpoints maps to create
  bool empty() const {
    return !create_table && new_chains.empty() && rewrite_chains.empty() &&
           delete_chains.empty() && new_sets.empty() && delete_sets.empty() &&
           element_adds.empty() && element_deletes.empty() && member_adds.empty() &&
           member_deletes.empty() && slot_adds.empty() && slot_deletes.empty() &&
           new_shards.empty();
  }
};

NftablesBackend::SlotAllocator::Block NftablesBackend::SlotAllocator::Allocate(uint32_t count) {
  const uint32_t capacity = std::bit_ceil(std::max<uint32_t>(count, 1));
  auto it = free_.find(capacity);
  if (it != free_.end() && !it->second.empty()) {
    const uint32_t offset = it->second.back();
    it->second.pop_back();
    return Block{offset, capacity};
  }
  // Blocks are aligned to their capacity, like a buddy allocator's.
  next_ = (next_ + capacity - 1) / capacity * capacity;
  Block b{next_, capacity};
  next_ += capacity;
  return b;
}

void NftablesBackend::SlotAllocator::Free(Block block) {
  free_[block.capacity].push_back(block.offset);
}

void NftablesBackend::SlotAllocator::Reserve(Block block) {
  next_ = std::max(next_, block.offset + block.capacity);
}

void NftablesBackend::SlotAllocator::Clear() {
  free_.clear();
  next_ = 0;
}

namespace {

int FamilyIndex(IpFamily f) { return f == IpFamily::kV4 ? 0 : 1; }

// An ElementWriter that writes its elements into `batch` every few thousand (and at the end).
class ChunkedElements {
 public:
  ChunkedElements(nft::Batch& batch, bool adds) : batch_(batch), adds_(adds) {}
  ~ChunkedElements() { Flush(); }
  ElementWriter* operator->() { return &writer_; }
  void Added() {
    if (++pending_ == kChunk) Flush();
  }
  void Flush() {
    if (pending_ == 0) return;
    if (adds_) {
      writer_.AppendAdds(batch_);
    } else {
      writer_.AppendDeletes(batch_);
    }
    writer_ = ElementWriter();
    pending_ = 0;
  }

 private:
  static constexpr size_t kChunk = 4096;
  nft::Batch& batch_;
  bool adds_;
  ElementWriter writer_;
  size_t pending_ = 0;
};

// The family a per-service chain is for: "svc4-...", "ext6-...".
std::optional<IpFamily> ChainFamily(std::string_view chain) {
  const size_t dash = chain.find('-');
  if (dash == std::string_view::npos || dash == 0) return std::nullopt;
  if (chain[dash - 1] == '4') return IpFamily::kV4;
  if (chain[dash - 1] == '6') return IpFamily::kV6;
  return std::nullopt;
}

std::string Bytes(const std::vector<uint8_t>& v) { return std::string(v.begin(), v.end()); }

IpAddress AddressFromBytes(IpFamily f, const void* bytes) {
  if (f == IpFamily::kV4) {
    in_addr a;
    std::memcpy(&a, bytes, 4);
    return IpAddress::V4(a);
  }
  in6_addr a;
  std::memcpy(&a, bytes, 16);
  return IpAddress::V6(a);
}


// The difference between what one Service had and what it needs now.
// Changes to the reference counts of shared-set members, applied only once the transaction
// that follows from them is in (copying the counts per sync would cost O(Services)).
using RefDeltas = std::map<IpAddress, int>;
void DiffService(const ServiceObjects& before, const ServiceObjects& after,
                 NftablesBackend::Plan& plan, RefDeltas& cluster_deltas,
                 RefDeltas& hairpin_deltas);

}  // namespace

NftablesBackend::NftablesBackend(NftablesOptions options)
    : options_(std::move(options)),
      layout_(MakeLayoutOptions(options_)),
      socket_(std::make_unique<nft::NftSocket>()) {}

NftablesBackend::~NftablesBackend() = default;

void NftablesBackend::Sync(const state::NodeState& desired, const state::NodeStateChange& change) {
  if (change.full || change.node_changed) {
    FullSync(desired);
  } else {
    PartialSync(change);
  }
}

namespace {

void CountRefs(RefDeltas& deltas, const std::vector<IpAddress>& ips, int delta) {
  for (const IpAddress& ip : ips) deltas[ip] += delta;
}

// Members that appear (count 0 -> positive) or disappear (positive -> 0) with `deltas`.
void MembersFromDeltas(const std::map<IpAddress, int>& refs, const RefDeltas& deltas, SetId set,
                       NftablesBackend::Plan& plan) {
  for (const auto& [ip, d] : deltas) {
    if (d == 0) continue;
    auto it = refs.find(ip);
    const int old = it == refs.end() ? 0 : it->second;
    const int now = old + d;
    if (old == 0 && now > 0) plan.member_adds.emplace_back(set, ip);
    if (old > 0 && now <= 0) plan.member_deletes.emplace_back(set, ip);
  }
}

void ApplyDeltas(std::map<IpAddress, int>& refs, const RefDeltas& deltas) {
  for (const auto& [ip, d] : deltas) {
    if (d == 0) continue;
    int& n = refs[ip];
    n += d;
    if (n <= 0) refs.erase(ip);
  }
}

void DiffService(const ServiceObjects& before, const ServiceObjects& after,
                 NftablesBackend::Plan& plan, RefDeltas& cluster_deltas,
                 RefDeltas& hairpin_deltas) {
  std::unordered_map<std::string_view, const Chain*> old_chains;
  for (const Chain& c : before.chains) old_chains.emplace(c.name, &c);
  for (const Chain& c : after.chains) {
    auto it = old_chains.find(c.name);
    if (it == old_chains.end()) {
      plan.new_chains.push_back(&c);
    } else {
      if (it->second->rules != c.rules) plan.rewrite_chains.push_back(&c);
      old_chains.erase(it);
    }
  }
  for (const Chain& c : before.chains) {
    if (old_chains.contains(c.name)) plan.delete_chains.push_back(c.name);
  }

  for (const AffinitySet& s : after.affinity_sets) {
    if (std::find(before.affinity_sets.begin(), before.affinity_sets.end(), s) ==
        before.affinity_sets.end()) {
      plan.new_sets.push_back(&s);
    }
  }
  for (const AffinitySet& s : before.affinity_sets) {
    if (std::find(after.affinity_sets.begin(), after.affinity_sets.end(), s) ==
        after.affinity_sets.end()) {
      plan.delete_sets.push_back(s.name);
    }
  }

  for (const Element& e : after.elements) {
    auto it = std::find_if(before.elements.begin(), before.elements.end(),
                           [&](const Element& o) { return o.key == e.key; });
    if (it == before.elements.end()) {
      plan.element_adds.push_back(e);
    } else if (it->verdict != e.verdict) {
      plan.element_deletes.push_back(*it);
      plan.element_adds.push_back(e);
    }
  }
  for (const Element& e : before.elements) {
    if (std::none_of(after.elements.begin(), after.elements.end(),
                     [&](const Element& o) { return o.key == e.key; })) {
      plan.element_deletes.push_back(e);
    }
  }

  {
    std::map<std::pair<IpFamily, uint32_t>, const EndpointSlot*> old_slots;
    for (const EndpointSlot& e : before.slots) old_slots[{e.family, e.slot}] = &e;
    for (const EndpointSlot& e : after.slots) {
      auto it = old_slots.find({e.family, e.slot});
      if (it == old_slots.end()) {
        plan.slot_adds.push_back(e);
      } else {
        if (it->second->target != e.target) {
          plan.slot_deletes.push_back(*it->second);
          plan.slot_adds.push_back(e);
        }
        old_slots.erase(it);
      }
    }
    for (const auto& [key, e] : old_slots) plan.slot_deletes.push_back(*e);
  }

  CountRefs(cluster_deltas, before.cluster_ips, -1);
  CountRefs(cluster_deltas, after.cluster_ips, +1);
  CountRefs(hairpin_deltas, before.hairpin_ips, -1);
  CountRefs(hairpin_deltas, after.hairpin_ips, +1);
}

}  // namespace

void NftablesBackend::PartialSync(const state::NodeStateChange& change) {
  // Rendered objects must outlive the plan, which points into them.
  std::vector<std::pair<ServiceObjects, ServiceObjects>> rendered;
  rendered.reserve(change.services.size());
  Plan plan;
  std::vector<std::pair<int, SlotAllocator::Block>> to_free;
  auto current = [&](IpFamily f, const std::string& key) {
    auto it = blocks_[FamilyIndex(f)].find(key);
    if (it == blocks_[FamilyIndex(f)].end()) {
      // What we programmed has no block: our memory is off; a full sync reads the kernel.
      throw std::runtime_error("nftables: no endpoint block recorded for " + key);
    }
    return std::make_pair(it->second.offset, it->second.capacity);
  };
  for (const auto& diff : change.services) {
    ServiceObjects before = diff.before ? RenderService(*diff.before, layout_) : ServiceObjects{};
    ServiceObjects after = diff.after ? RenderService(*diff.after, layout_) : ServiceObjects{};
    const std::vector<BlockNeed> old_needs = EndpointBlockNeeds(before);
    BindEndpointBlocks(before, current);
    const std::vector<BlockNeed> new_needs = EndpointBlockNeeds(after);
    for (const BlockNeed& n : new_needs) {
      auto& blocks = blocks_[FamilyIndex(n.family)];
      auto it = blocks.find(n.key);
      if (it != blocks.end() && it->second.capacity >= n.count) continue;
      if (it != blocks.end()) to_free.emplace_back(FamilyIndex(n.family), it->second);
      blocks[n.key] = slots_[FamilyIndex(n.family)].Allocate(n.count);
    }
    for (const BlockNeed& n : old_needs) {
      if (std::any_of(new_needs.begin(), new_needs.end(),
                      [&](const BlockNeed& m) { return m.key == n.key; })) {
        continue;
      }
      auto& blocks = blocks_[FamilyIndex(n.family)];
      auto it = blocks.find(n.key);
      if (it == blocks.end()) continue;
      to_free.emplace_back(FamilyIndex(n.family), it->second);
      blocks.erase(it);
    }
    BindEndpointBlocks(after, current);
    for (const EndpointSlot& slot : after.slots) {
      if (shards_[FamilyIndex(slot.family)].insert(SlotShard(slot.slot)).second) {
        plan.new_shards.emplace_back(slot.family, SlotShard(slot.slot));
      }
    }
    rendered.emplace_back(std::move(before), std::move(after));
  }
  RefDeltas cluster_deltas, hairpin_deltas;
  for (const auto& [before, after] : rendered) {
    DiffService(before, after, plan, cluster_deltas, hairpin_deltas);
  }
  MembersFromDeltas(cluster_ip_refs_, cluster_deltas, SetId::kClusterIps, plan);
  MembersFromDeltas(hairpin_refs_, hairpin_deltas, SetId::kHairpin, plan);
  Send(plan, false);
  ApplyDeltas(cluster_ip_refs_, cluster_deltas);
  ApplyDeltas(hairpin_refs_, hairpin_deltas);
  // Reused only from the next sync on: this one still wrote them (deletes) in its transaction.
  for (const auto& [f, block] : to_free) slots_[f].Free(block);
}

std::set<IpAddress> NftablesBackend::NodePortIps(const state::NodeState& desired) const {
  std::set<IpAddress> out;
  if (layout_.nodeports_on_all_local_addresses) return out;
  if (options_.nodeport_cidrs.empty()) {
    // "primary": the node's own addresses, as its Node object lists them.
    out.insert(desired.node.node_ips.begin(), desired.node.node_ips.end());
    return out;
  }
  return LocalAddressesIn(options_.nodeport_cidrs);
}

namespace {

// One transaction, written in parts that are put in order at the end: chains made again,
// then everything created, elements that go, rules, elements that come, chains emptied, chains
// and sets deleted. Each part streams into its own batch, so nothing is held twice.
class TransactionWriter {
 public:
  explicit TransactionWriter(const LayoutOptions& layout) : layout_(layout) {}

  void CreateTable() {
    AddTable(create_);
    AddStaticSets(create_, layout_);
  }
  void RemakeChain(const Chain& c) {
    pre_.FlushChain(NFPROTO_INET, kTable, c.name);
    nftables::DeleteChain(pre_, c.name);
    NewChain(c);
  }
  void NewChain(const Chain& c) {
    AddChain(create_, c);
    for (const Rule& r : c.rules) AppendRule(rules_, c.name, r);
    ++stats_.chains_written;
  }
  void RewriteChain(const Chain& c) {
    rules_.FlushChain(NFPROTO_INET, kTable, c.name);
    for (const Rule& r : c.rules) AppendRule(rules_, c.name, r);
    ++stats_.chains_written;
  }
  void RemoveChain(const std::string& name) {
    flushes_.FlushChain(NFPROTO_INET, kTable, name);
    nftables::DeleteChain(chain_deletes_, name);
    ++stats_.chains_deleted;
  }
  void NewAffinitySet(const AffinitySet& set) { AddAffinitySet(create_, set); }
  void RemoveSet(const std::string& name) { DeleteSet(set_deletes_, name); }
  void NewShard(IpFamily f, uint32_t shard) { AddEndpointsMap(create_, f, shard); }

  void AddElement(const Element& e) { adds_->Add(e), adds_.Added(), ++stats_.elements_changed; }
  void DeleteElement(const Element& e) { dels_->Add(e), dels_.Added(), ++stats_.elements_changed; }
  void AddMember(SetId set, const IpAddress& ip) { adds_->AddMember(set, ip), adds_.Added(); }
  void DeleteMember(SetId set, const IpAddress& ip) { dels_->AddMember(set, ip), dels_.Added(); }
  void AddSlot(const EndpointSlot& slot) { adds_->AddSlot(slot), adds_.Added(), ++stats_.elements_changed; }
  void DeleteSlot(IpFamily f, uint32_t slot) {
    dels_->AddSlotKey(f, slot), dels_.Added(), ++stats_.elements_changed;
  }

  // The whole transaction, in order; this writer is spent.
  nft::Batch Finish(SyncStats& stats) {
    adds_.Flush();
    dels_.Flush();
    nft::Batch out = std::move(pre_);
    out.Append(std::move(create_));
    out.Append(std::move(del_elems_));
    out.Append(std::move(rules_));
    out.Append(std::move(add_elems_));
    out.Append(std::move(flushes_));
    out.Append(std::move(chain_deletes_));
    out.Append(std::move(set_deletes_));
    stats.chains_written = stats_.chains_written;
    stats.chains_deleted = stats_.chains_deleted;
    stats.elements_changed = stats_.elements_changed;
    return out;
  }

 private:
  const LayoutOptions& layout_;
  nft::Batch pre_, create_, del_elems_, rules_, add_elems_, flushes_, chain_deletes_, set_deletes_;
  ChunkedElements adds_{add_elems_, true};
  ChunkedElements dels_{del_elems_, false};
  SyncStats stats_;
};

}  // namespace

void NftablesBackend::FullSync(const state::NodeState& desired) {
  // What the kernel has: chains with their rules' fingerprints, sets, and the elements of ours.
  nft::NftSocket& sock = *socket_;
  bool table_exists = false;
  for (const auto& t : nft::ListTables(sock, NFPROTO_INET)) {
    const char* n = nftnl_table_get_str(t.get(), NFTNL_TABLE_NAME);
    if (n != nullptr && kTable == n) table_exists = true;
  }
  struct KernelChain {
    bool base = false;
    std::string type;
    uint32_t hook = 0;
    int32_t priority = 0;
    std::vector<uint64_t> fingerprints;
  };
  std::unordered_map<std::string, KernelChain> kchains;
  std::set<std::string> ksets;
  // map/set name -> key bytes -> verdict (maps; empty for sets). Entries are erased as the
  // desired state claims them: what is left at the end is deleted.
  std::unordered_map<std::string, std::map<std::string, ElementVerdict>> kelems;
  std::map<std::string, SlotAllocator::Block> recovered[2];
  std::unordered_map<uint32_t, std::string> kslots[2];  // slot -> data bytes
  std::set<uint32_t> kshards[2];
  if (table_exists) {
    for (const auto& c : nft::ListChains(sock, NFPROTO_INET, kTable)) {
      KernelChain& k = kchains[nftnl_chain_get_str(c.get(), NFTNL_CHAIN_NAME)];
      if (nftnl_chain_is_set(c.get(), NFTNL_CHAIN_HOOKNUM)) {
        k.base = true;
        k.hook = nftnl_chain_get_u32(c.get(), NFTNL_CHAIN_HOOKNUM);
        k.priority = static_cast<int32_t>(nftnl_chain_get_s32(c.get(), NFTNL_CHAIN_PRIO));
        if (const char* t = nftnl_chain_get_str(c.get(), NFTNL_CHAIN_TYPE)) k.type = t;
      }
    }
    for (const auto& r : nft::ListRuleSummaries(sock, NFPROTO_INET, kTable)) {
      kchains[r.chain].fingerprints.push_back(ReadFingerprint(r.udata));
      if (std::optional<RuleBlock> b = ReadBlock(r.udata)) {
        if (std::optional<IpFamily> f = ChainFamily(r.chain)) {
          recovered[FamilyIndex(*f)][r.chain + "#" + std::to_string(b->block)] =
              SlotAllocator::Block{b->offset, b->capacity};
        }
      }
    }
    for (const auto& st : nft::ListSets(sock, NFPROTO_INET, kTable)) {
      const char* n = nftnl_set_get_str(st.get(), NFTNL_SET_NAME);
      const uint32_t flags = nftnl_set_is_set(st.get(), NFTNL_SET_FLAGS)
                                 ? nftnl_set_get_u32(st.get(), NFTNL_SET_FLAGS)
                                 : 0;
      if (n == nullptr || (flags & NFT_SET_ANONYMOUS)) continue;
      ksets.insert(n);
    }
    auto read_elements = [&](const std::string& name) {
      auto& out = kelems[name];
      if (!ksets.contains(name)) return;
      nft::SetPtr set = nft::ListSetElems(sock, NFPROTO_INET, kTable, name);
      if (!set) return;
      for (nftnl_set_elem* e : nft::SetElems(*set)) {
        std::span<const uint8_t> key = nft::ElemKey(*e);
        ElementVerdict v;
        if (nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_VERDICT)) {
          const auto verdict =
              static_cast<int32_t>(nftnl_set_elem_get_u32(e, NFTNL_SET_ELEM_VERDICT));
          if (verdict == NF_DROP) {
            v.drop = true;
          } else if (nftnl_set_elem_is_set(e, NFTNL_SET_ELEM_CHAIN)) {
            // A jump where we write goto reads as a different verdict: rewritten.
            v.chain = verdict == NFT_GOTO ? nftnl_set_elem_get_str(e, NFTNL_SET_ELEM_CHAIN)
                                          : std::string("?jump");
          }
        }
        out.emplace(std::string(key.begin(), key.end()), std::move(v));
      }
    };
    for (const std::string& name : ksets) {
      const auto shard = ParseEndpointsMapName(name);
      if (!shard) continue;
      kshards[FamilyIndex(shard->first)].insert(shard->second);
      nft::SetPtr set = nft::ListSetElems(sock, NFPROTO_INET, kTable, name);
      if (!set) continue;
      for (nftnl_set_elem* e : nft::SetElems(*set)) {
        std::span<const uint8_t> key = nft::ElemKey(*e);
        if (key.size() != 4) continue;
        uint32_t slot;
        std::memcpy(&slot, key.data(), 4);
        uint32_t len = 0;
        const void* data = nftnl_set_elem_get(e, NFTNL_SET_ELEM_DATA, &len);
        kslots[FamilyIndex(shard->first)].emplace(
            slot, data ? std::string(static_cast<const char*>(data), len) : std::string());
      }
    }
    for (IpFamily f : {IpFamily::kV4, IpFamily::kV6}) {
      for (MapId m : kAllMaps) read_elements(MapName(m, f));
      for (SetId st : {SetId::kClusterIps, SetId::kHairpin, SetId::kNodePortIps}) {
        read_elements(SetName(st, f));
      }
    }
  }

  TransactionWriter w(layout_);
  // Static sets that are missing (a fresh table, or one taken apart by hand) are created.
  bool static_sets_missing = !table_exists;
  for (IpFamily f : {IpFamily::kV4, IpFamily::kV6}) {
    for (MapId m : kAllMaps) static_sets_missing |= !ksets.contains(MapName(m, f));
    static_sets_missing |= !ksets.contains(SetName(SetId::kClusterIps, f));
    static_sets_missing |= !ksets.contains(SetName(SetId::kHairpin, f));
    if (!layout_.nodeports_on_all_local_addresses) {
      static_sets_missing |= !ksets.contains(SetName(SetId::kNodePortIps, f));
    }
  }
  if (static_sets_missing) w.CreateTable();  // table + sets: idempotent adds

  // Chains: written when missing or when their fingerprints differ; claimed ones leave kchains.
  auto reconcile_chain = [&](const Chain& c) {
    auto it = kchains.find(c.name);
    if (it == kchains.end()) {
      w.NewChain(c);
      return;
    }
    const KernelChain& k = it->second;
    if (k.base != c.base() ||
        (c.base() && (k.type != c.type || k.hook != c.hook || k.priority != c.priority))) {
      // A hook cannot be changed in place: the chain is deleted and made again.
      w.RemakeChain(c);
    } else {
      bool same = k.fingerprints.size() == c.rules.size();
      for (size_t i = 0; same && i < c.rules.size(); ++i) {
        same = k.fingerprints[i] == Fingerprint(c.rules[i]);
      }
      if (!same) w.RewriteChain(c);
    }
    kchains.erase(it);
  };
  for (const Chain& c : RenderBaseChains(layout_)) reconcile_chain(c);

  // Slot blocks: the kernel's are kept where they still fit; others are allocated beyond every
  // block the kernel has (so that no block is handed out twice).
  for (int f = 0; f < 2; ++f) {
    blocks_[f].clear();
    slots_[f].Clear();
    for (const auto& [key, block] : recovered[f]) slots_[f].Reserve(block);
  }
  std::set<uint32_t> wanted_shards[2];
  std::set<std::string> wanted_sets;
  std::map<IpAddress, int> cluster_refs, hairpin_refs;
  // Every Service, one at a time: rendered, bound to its blocks, compared, written, dropped.
  for (const auto& [key, svc] : desired.services) {
    ServiceObjects s = RenderService(*svc, layout_);
    for (const BlockNeed& n : EndpointBlockNeeds(s)) {
      const int f = FamilyIndex(n.family);
      auto it = recovered[f].find(n.key);
      if (it != recovered[f].end() && it->second.capacity >= n.count) {
        blocks_[f][n.key] = it->second;
        recovered[f].erase(it);
      } else {
        blocks_[f][n.key] = slots_[f].Allocate(n.count);
      }
    }
    BindEndpointBlocks(s, [&](IpFamily f, const std::string& k) {
      const SlotAllocator::Block& b = blocks_[FamilyIndex(f)].at(k);
      return std::make_pair(b.offset, b.capacity);
    });
    for (const Chain& c : s.chains) reconcile_chain(c);
    for (const AffinitySet& a : s.affinity_sets) {
      wanted_sets.insert(a.name);
      if (!ksets.contains(a.name)) w.NewAffinitySet(a);
    }
    for (const Element& e : s.elements) {
      auto& have = kelems[MapName(e.key.map, e.key.family)];
      auto it = have.find(Bytes(ElementKeyBytes(e.key)));
      if (it == have.end()) {
        w.AddElement(e);
      } else {
        if (it->second != e.verdict) {
          w.DeleteElement(Element{e.key, it->second});
          w.AddElement(e);
        }
        have.erase(it);
      }
    }
    for (const EndpointSlot& slot : s.slots) {
      const int f = FamilyIndex(slot.family);
      wanted_shards[f].insert(SlotShard(slot.slot));
      auto it = kslots[f].find(slot.slot);
      if (it == kslots[f].end()) {
        w.AddSlot(slot);
      } else {
        if (it->second != Bytes(SlotDataBytes(slot.target))) {
          w.DeleteSlot(slot.family, slot.slot);
          w.AddSlot(slot);
        }
        kslots[f].erase(it);
      }
    }
    for (const IpAddress& ip : s.cluster_ips) ++cluster_refs[ip];
    for (const IpAddress& ip : s.hairpin_ips) ++hairpin_refs[ip];
  }
  std::vector<std::pair<int, SlotAllocator::Block>> to_free;
  for (int f = 0; f < 2; ++f) {
    for (const auto& [key, block] : recovered[f]) to_free.emplace_back(f, block);
  }

  // What nobody claimed goes: chains, affinity sets, map elements (decoded back from their key
  // bytes), slots of maps that stay, and the maps nobody uses.
  for (const auto& [name, k] : kchains) w.RemoveChain(name);
  for (const std::string& name : ksets) {
    if (IsAffinitySet(name) && !wanted_sets.contains(name)) w.RemoveSet(name);
  }
  for (IpFamily f : {IpFamily::kV4, IpFamily::kV6}) {
    const size_t alen = f == IpFamily::kV4 ? 4 : 16;
    for (MapId m : kAllMaps) {
      for (const auto& [key, verdict] : kelems[MapName(m, f)]) {
        ElementKey k{.map = m, .family = f};
        size_t off = 0;
        if (MapHasAddress(m)) {
          if (key.size() < alen) continue;
          k.ip = AddressFromBytes(f, key.data());
          off = alen;
        }
        if (key.size() < off + 8) continue;
        switch (static_cast<uint8_t>(key[off])) {
          case IPPROTO_UDP: k.proto = api::Protocol::kUdp; break;
          case IPPROTO_SCTP: k.proto = api::Protocol::kSctp; break;
          default: k.proto = api::Protocol::kTcp; break;
        }
        k.port = static_cast<uint16_t>(static_cast<uint8_t>(key[off + 4]) << 8 |
                                       static_cast<uint8_t>(key[off + 5]));
        if (Bytes(ElementKeyBytes(k)) != key) continue;  // not something we could have written
        w.DeleteElement(Element{k, verdict});
      }
    }
    const int fi = FamilyIndex(f);
    for (uint32_t shard : wanted_shards[fi]) {
      if (!kshards[fi].contains(shard)) w.NewShard(f, shard);
    }
    for (uint32_t shard : kshards[fi]) {
      if (!wanted_shards[fi].contains(shard)) w.RemoveSet(EndpointsMapName(f, shard));
    }
    for (const auto& [slot, data] : kslots[fi]) {
      // Slots of a map that goes away go with it.
      if (wanted_shards[fi].contains(SlotShard(slot))) w.DeleteSlot(f, slot);
    }
    shards_[fi] = wanted_shards[fi];
  }
  // Members of the shared sets.
  auto reconcile_members = [&](SetId set, const std::set<IpAddress>& wanted) {
    for (IpFamily f : {IpFamily::kV4, IpFamily::kV6}) {
      auto& have = kelems[SetName(set, f)];
      for (const IpAddress& ip : wanted) {
        if (ip.family() != f) continue;
        auto it = have.find(Bytes(MemberKeyBytes(set, ip)));
        if (it == have.end()) {
          w.AddMember(set, ip);
        } else {
          have.erase(it);
        }
      }
      for (const auto& [key, v] : have) {
        if (key.size() < (f == IpFamily::kV4 ? 4u : 16u)) continue;
        const IpAddress ip = AddressFromBytes(f, key.data());
        if (Bytes(MemberKeyBytes(set, ip)) == key) w.DeleteMember(set, ip);
      }
    }
  };
  std::set<IpAddress> cluster_ips, hairpin_ips;
  for (const auto& [ip, n] : cluster_refs) cluster_ips.insert(ip);
  for (const auto& [ip, n] : hairpin_refs) hairpin_ips.insert(ip);
  reconcile_members(SetId::kClusterIps, cluster_ips);
  reconcile_members(SetId::kHairpin, hairpin_ips);
  if (!layout_.nodeports_on_all_local_addresses) {
    reconcile_members(SetId::kNodePortIps, NodePortIps(desired));
  }

  nft::Batch batch = w.Finish(stats_);
  SendBatch(batch, true);
  cluster_ip_refs_ = std::move(cluster_refs);
  hairpin_refs_ = std::move(hairpin_refs);
  for (const auto& [f, block] : to_free) slots_[f].Free(block);
}

void NftablesBackend::Send(Plan& plan, bool full) {
  TransactionWriter w(layout_);
  if (plan.create_table) w.CreateTable();
  for (const Chain* c : plan.new_chains) w.NewChain(*c);
  for (const Chain* c : plan.rewrite_chains) w.RewriteChain(*c);
  for (const std::string& name : plan.delete_chains) w.RemoveChain(name);
  for (const AffinitySet* a : plan.new_sets) w.NewAffinitySet(*a);
  for (const std::string& name : plan.delete_sets) w.RemoveSet(name);
  for (const auto& [f, shard] : plan.new_shards) w.NewShard(f, shard);
  for (const Element& e : plan.element_deletes) w.DeleteElement(e);
  for (const Element& e : plan.element_adds) w.AddElement(e);
  for (const auto& [set, ip] : plan.member_deletes) w.DeleteMember(set, ip);
  for (const auto& [set, ip] : plan.member_adds) w.AddMember(set, ip);
  for (const EndpointSlot& slot : plan.slot_deletes) w.DeleteSlot(slot.family, slot.slot);
  for (const EndpointSlot& slot : plan.slot_adds) w.AddSlot(slot);
  nft::Batch batch = w.Finish(stats_);
  SendBatch(batch, full);
}

void NftablesBackend::SendBatch(nft::Batch& batch, bool full) {
  stats_.full = full;
  stats_.messages = batch.message_count();
  stats_.bytes = batch.size_bytes();
  if (batch.empty()) return;
  SLOG_V(2) << "nftables: " << (full ? "full" : "partial") << " sync transaction: "
            << stats_.messages << " messages, " << stats_.bytes << " bytes, "
            << stats_.chains_written << " chains written, " << stats_.chains_deleted
            << " deleted, " << stats_.elements_changed << " elements changed";
  batch.Send(*socket_);
}

void NftablesBackend::Cleanup() {
  for (const auto& t : nft::ListTables(*socket_, NFPROTO_INET)) {
    const char* n = nftnl_table_get_str(t.get(), NFTNL_TABLE_NAME);
    if (n != nullptr && kTable == n) {
      nft::Batch batch;
      batch.DeleteTable(*nft::MakeTable(NFPROTO_INET, kTable));
      batch.Send(*socket_);
      SLOG_INFO << "cleanup: deleted table inet " << kTable;
      return;
    }
  }
}

}  // namespace sluice::proxy::nftables
