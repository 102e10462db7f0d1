#include "dataplane/nft/pod_masquerade.h"

#include <cerrno>
#include <cstring>
#include <functional>
#include <optional>

#include "common/log.h"
#include "common/sha512.h"
#include "dataplane/nft/dump.h"
#include "dataplane/nft/netfilter_headers.h"
#include "dataplane/nft/nft_error.h"
#include "dataplane/nft/reference_masquerade.h"
#include "dataplane/nft/rule_builder.h"

// Idempotence without locks. nf_tables applies one batch at a time, all or nothing, so:
//  - the table, both maps, the base chain and its rules go in one batch whose table message
//    carries NLM_F_EXCL. EEXIST on that message means another process created the whole layout
//    (it was one transaction), and we go on;
//  - a subnet chain and its rules likewise, with NLM_F_EXCL on the chain;
//  - elements are created with NLM_F_EXCL. For an element that already exists the kernel would
//    silently keep the old one when the verdict is equal — including its old comment, so a leaked
//    element of another attachment would stay attributed to it — and refuse with EEXIST when the
//    verdict differs. So on EEXIST we read the elements back: equal ones are left alone, others
//    are deleted and re-added in one batch.
// Deletions retry on ENOENT: something else deleted part of what we saw between the read and
// the batch, and the batch was undone.

namespace sluice::nft {
namespace {

constexpr int kAttempts = 3;
// nft's datatype ids (nftables include/datatype.h), which `nft list` uses to print keys.
constexpr uint32_t kTypeIpv4Addr = 7;
constexpr uint32_t kTypeIpv6Addr = 8;

std::string_view MapFor(const IpAddress& ip) {
  return ip.is_v4() ? PodMasquerade::kMap4 : PodMasquerade::kMap6;
}

std::span<const uint8_t> KeyOf(const IpAddress& ip) { return {ip.data(), ip.size()}; }

SetPtr MapRef(std::string_view name) {
  return MakeSetRef(NFPROTO_INET, PodMasquerade::kTable, name);
}

SetPtr NewVerdictMap(std::string_view name, uint32_t key_type, uint32_t key_len) {
  SetPtr map = MapRef(name);
  nftnl_set_set_u32(map.get(), NFTNL_SET_FLAGS, NFT_SET_MAP);
  nftnl_set_set_u32(map.get(), NFTNL_SET_KEY_TYPE, key_type);
  nftnl_set_set_u32(map.get(), NFTNL_SET_KEY_LEN, key_len);
  nftnl_set_set_u32(map.get(), NFTNL_SET_DATA_TYPE, NFT_DATA_VERDICT);
  return map;
}

SetElemPtr JumpElement(const IpAddress& ip, const std::string& chain, const std::string& comment) {
  SetElemPtr elem = MakeSetElem(KeyOf(ip));
  nftnl_set_elem_set_u32(elem.get(), NFTNL_SET_ELEM_VERDICT, static_cast<uint32_t>(NFT_JUMP));
  nftnl_set_elem_set_str(elem.get(), NFTNL_SET_ELEM_CHAIN, chain.c_str());
  SetComment(*elem, comment);
  return elem;
}

std::optional<IpAddress> AddressFromKey(std::span<const uint8_t> key) {
  if (key.size() == 4) {
    in_addr a;
    std::memcpy(&a, key.data(), 4);
    return IpAddress::V4(a);
  }
  if (key.size() == 16) {
    in6_addr a;
    std::memcpy(&a, key.data(), 16);
    return IpAddress::V6(a);
  }
  return std::nullopt;
}

std::optional<CniAttachment> Owner(nftnl_set_elem& elem) {
  std::optional<std::string> comment = GetComment(elem);
  return comment ? CniAttachment::FromComment(*comment) : std::nullopt;
}

std::string ElemChain(nftnl_set_elem& elem) {
  if (!nftnl_set_elem_is_set(&elem, NFTNL_SET_ELEM_CHAIN)) return {};
  const char* chain = nftnl_set_elem_get_str(&elem, NFTNL_SET_ELEM_CHAIN);
  return chain != nullptr ? chain : "";
}

// Deletes, in one batch per attempt, every element of both maps that `select` picks.
// `also` may append more deletions to the same batch.
template <typename Select>
void DeleteElements(NftSocket& socket, Select&& select, std::string_view what,
                    const std::function<void(Batch&)>& also = {}) {
  for (int attempt = 1;; ++attempt) {
    Batch batch;
    for (std::string_view map_name : {PodMasquerade::kMap4, PodMasquerade::kMap6}) {
      SetPtr map = ListSetElems(socket, NFPROTO_INET, PodMasquerade::kTable, map_name);
      if (!map) continue;
      SetPtr doomed = MapRef(map_name);
      for (nftnl_set_elem* elem : SetElems(*map)) {
        std::optional<CniAttachment> owner = Owner(*elem);
        if (owner && select(*owner)) {
          nftnl_set_elem_add(doomed.get(), MakeSetElem(ElemKey(*elem)).release());
        }
      }
      batch.DeleteSetElems(*doomed, what);
    }
    if (also) also(batch);
    try {
      batch.Send(socket);
      return;
    } catch (const NftError& e) {
      if (e.error() != ENOENT || attempt == kAttempts) throw;
    }
  }
}

}  // namespace

std::string PodMasquerade::SubnetChainName(std::string_view network, const IpPrefix& subnet) {
  std::string input(network);
  input += '|';
  input += subnet.Network().ToString();
  return "m-" + Sha512::Hex(input).substr(0, 16);
}

size_t PodMasquerade::AppendBaseLayout(Batch& batch) {
  size_t table_index = batch.AddTable(*MakeTable(NFPROTO_INET, kTable), IfExists::kFail);
  batch.AddSet(*NewVerdictMap(kMap4, kTypeIpv4Addr, 4));
  batch.AddSet(*NewVerdictMap(kMap6, kTypeIpv6Addr, 16));
  batch.AddChain(*MakeBaseChain(NFPROTO_INET, kTable, kBaseChain, "nat", NF_INET_POST_ROUTING,
                                NF_IP_PRI_NAT_SRC));
  batch.AppendRule(*RuleBuilder(NFPROTO_INET, kTable, kBaseChain)
                        .SourceAddressVmap(IpFamily::kV4, kMap4)
                        .Build());
  batch.AppendRule(*RuleBuilder(NFPROTO_INET, kTable, kBaseChain)
                        .SourceAddressVmap(IpFamily::kV6, kMap6)
                        .Build());
  return table_index;
}

size_t PodMasquerade::AppendSubnetChain(Batch& batch, std::string_view network,
                                        const IpPrefix& subnet) {
  const std::string name = SubnetChainName(network, subnet);
  const IpPrefix net = subnet.Network();
  const std::string comment = "net=" + std::string(network) + " subnet=" + net.ToString();
  const IpPrefix multicast =
      IpPrefix::MustParse(net.address().is_v4() ? "224.0.0.0/4" : "ff00::/8");

  ChainPtr chain = MakeChain(NFPROTO_INET, kTable, name);
  SetComment(*chain, comment);
  size_t chain_index = batch.AddChain(*chain, IfExists::kFail);
  batch.AppendRule(*RuleBuilder(NFPROTO_INET, kTable, name)
                        .MatchAddress(/*source=*/false, net)
                        .Verdict(NFT_RETURN)
                        .Build());
  batch.AppendRule(*RuleBuilder(NFPROTO_INET, kTable, name)
                        .MatchAddress(/*source=*/false, multicast)
                        .Verdict(NFT_RETURN)
                        .Build());
  batch.AppendRule(*RuleBuilder(NFPROTO_INET, kTable, name).Masquerade().Comment(comment).Build());
  return chain_index;
}

void PodMasquerade::EnsureBaseLayout() {
  // Look before creating: a refused NLM_F_EXCL batch makes the kernel abort the transaction,
  // which costs several milliseconds; a lookup costs one round trip.
  if (GetChain(socket_, NFPROTO_INET, kTable, kBaseChain)) return;
  Batch batch;
  size_t table_index = AppendBaseLayout(batch);
  try {
    batch.Send(socket_);
  } catch (const NftError& e) {
    if (e.error() != EEXIST || e.message_index() != table_index) throw;
  }
}

void PodMasquerade::EnsureSubnetChain(std::string_view network, const IpPrefix& subnet) {
  // Once the node has pods the chain exists: one lookup, no transaction (see EnsureBaseLayout).
  if (GetChain(socket_, NFPROTO_INET, kTable, SubnetChainName(network, subnet))) return;
  for (int attempt = 1;; ++attempt) {
    Batch batch;
    size_t chain_index = AppendSubnetChain(batch, network, subnet);
    try {
      batch.Send(socket_);
      return;
    } catch (const NftError& e) {
      if (e.error() == EEXIST && e.message_index() == chain_index) return;
      if (e.error() != ENOENT || attempt == kAttempts) throw;
    }
    EnsureBaseLayout();  // ENOENT: no table yet
  }
}

void PodMasquerade::Add(const CniAttachment& attachment,
                        std::span<const MasqueradeAddress> addresses) {
  const std::string comment = attachment.ToComment();
  if (addresses.empty()) return;
  for (const MasqueradeAddress& a : addresses) {
    if (a.ip.family() != a.subnet.family()) {
      throw std::invalid_argument("masquerade: " + a.ip.ToString() + " is not in the family of " +
                                  a.subnet.ToString());
    }
  }
  // Built first, so that a comment too long for the kernel fails before anything is created.
  Batch elements;
  for (std::string_view map_name : {kMap4, kMap6}) {
    SetPtr map = MapRef(map_name);
    for (const MasqueradeAddress& a : addresses) {
      if (MapFor(a.ip) != map_name) continue;
      nftnl_set_elem_add(
          map.get(),
          JumpElement(a.ip, SubnetChainName(attachment.network, a.subnet), comment).release());
    }
    elements.AddSetElems(*map, IfExists::kFail, comment);
  }

  std::set<IpPrefix> subnets;
  for (const MasqueradeAddress& a : addresses) subnets.insert(a.subnet.Network());
  for (const IpPrefix& subnet : subnets) EnsureSubnetChain(attachment.network, subnet);

  try {
    elements.Send(socket_);
    return;
  } catch (const NftError& e) {
    if (e.error() != EEXIST) throw;
  }
  // Some address already has an element. Read, compare, replace; a concurrent change between
  // the read and the write makes the batch fail whole, and we read again.
  for (int attempt = 1;; ++attempt) {
    try {
      ReplaceElements(attachment, addresses);
      return;
    } catch (const NftError& e) {
      if ((e.error() != EEXIST && e.error() != ENOENT) || attempt == kAttempts) throw;
    }
  }
}

void PodMasquerade::ReplaceElements(const CniAttachment& attachment,
                                    std::span<const MasqueradeAddress> addresses) {
  const std::string comment = attachment.ToComment();
  Batch batch;
  for (const MasqueradeAddress& a : addresses) {
    const std::string chain = SubnetChainName(attachment.network, a.subnet);
    SetPtr found = GetSetElem(socket_, NFPROTO_INET, kTable, MapFor(a.ip), KeyOf(a.ip));
    if (found) {
      nftnl_set_elem* existing = SetElems(*found).front();
      std::optional<std::string> old_comment = GetComment(*existing);
      if (old_comment == comment && ElemChain(*existing) == chain) continue;  // already ours
      SLOG_WARN << "masquerade " << a.ip.ToString() << ": replacing element of \""
                << old_comment.value_or("?") << "\" with \"" << comment << "\"";
      SetPtr doomed = MapRef(MapFor(a.ip));
      nftnl_set_elem_add(doomed.get(), MakeSetElem(KeyOf(a.ip)).release());
      batch.DeleteSetElems(*doomed, old_comment.value_or(""));
    }
    SetPtr fresh = MapRef(MapFor(a.ip));
    nftnl_set_elem_add(fresh.get(), JumpElement(a.ip, chain, comment).release());
    batch.AddSetElems(*fresh, IfExists::kFail, comment);
  }
  batch.Send(socket_);
}

void PodMasquerade::Remove(const CniAttachment& attachment) {
  DeleteElements(
      socket_, [&](const CniAttachment& owner) { return owner == attachment; },
      attachment.ToComment(),
      [&](Batch& batch) {
        AppendReferenceMasqueradeRemoval(socket_, batch, attachment.network,
                                         attachment.container_id);
      });
}

bool PodMasquerade::Has(const CniAttachment& attachment, const IpAddress& ip) {
  SetPtr found = GetSetElem(socket_, NFPROTO_INET, kTable, MapFor(ip), KeyOf(ip));
  if (!found) return false;
  return GetComment(*SetElems(*found).front()) == attachment.ToComment();
}

std::vector<MasqueradeEntry> PodMasquerade::List(std::string_view network) {
  std::vector<MasqueradeEntry> entries;
  for (std::string_view map_name : {kMap4, kMap6}) {
    SetPtr map = ListSetElems(socket_, NFPROTO_INET, kTable, map_name);
    if (!map) continue;
    for (nftnl_set_elem* elem : SetElems(*map)) {
      std::optional<CniAttachment> owner = Owner(*elem);
      std::optional<IpAddress> ip = AddressFromKey(ElemKey(*elem));
      if (!owner || !ip) continue;
      if (!network.empty() && owner->network != network) continue;
      entries.push_back({std::move(*owner), *ip, ElemChain(*elem)});
    }
  }
  return entries;
}

void PodMasquerade::RemoveExcept(std::string_view network,
                                 const std::set<std::pair<std::string, std::string>>& keep) {
  DeleteElements(
      socket_,
      [&](const CniAttachment& owner) {
        return owner.network == network && !keep.contains({owner.container_id, owner.ifname});
      },
      "garbage collection of network " + std::string(network));
}

void PodMasquerade::RemoveTableIfUnused() {
  if (!GetChain(socket_, NFPROTO_INET, kTable, kBaseChain)) return;
  if (!List("").empty()) return;
  Batch batch;
  batch.DeleteTable(*MakeTable(NFPROTO_INET, kTable));
  try {
    batch.Send(socket_);
  } catch (const NftError& e) {
    if (e.error() != ENOENT) throw;
  }
}

}  // namespace sluice::nft
