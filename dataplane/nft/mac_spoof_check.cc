#include "dataplane/nft/mac_spoof_check.h"

#include <net/if.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "dataplane/nft/dump.h"
#include "dataplane/nft/netfilter_headers.h"
#include "dataplane/nft/nft_error.h"
#include "dataplane/nft/rule_builder.h"

// Races are settled as in pod_masquerade.cc: the layout is one transaction created with
// NLM_F_EXCL on the table; elements are created with NLM_F_EXCL, and on EEXIST the port's old
// elements are deleted and the new ones added in one batch.

namespace sluice::nft {
namespace {

constexpr int kAttempts = 3;
// nft datatype ids (nftables include/datatype.h); a concatenation packs them 6 bits apart,
// the first field in the high bits.
constexpr uint32_t kTypeEtherAddr = 9;
constexpr uint32_t kTypeIfname = 41;
constexpr uint32_t kConcatTypeBits = 6;
constexpr uint32_t kByteorderHostEndian = 1;  // nftables enum byteorder
// <linux/netfilter_bridge.h> clashes with glibc's <net/if.h>; bridge hook numbers are fixed ABI.
constexpr uint32_t kBridgePreRouting = 0;  // NF_BR_PRE_ROUTING
constexpr int32_t kPriority = -300;  // before the bridge's own nat/filter hooks, like the reference
// Concatenated fields occupy whole 32-bit registers: 16 bytes of ifname, 6 (+2) of MAC.
constexpr uint32_t kIfnameLen = IFNAMSIZ;
constexpr uint32_t kMacFieldLen = 8;

using IfnameKey = std::array<uint8_t, kIfnameLen>;

IfnameKey IfnameKeyOf(std::string_view ifname) {
  if (ifname.empty() || ifname.size() >= IFNAMSIZ) {
    throw std::invalid_argument("mac spoof check: bad interface name \"" + std::string(ifname) +
                                "\"");
  }
  IfnameKey key{};
  std::memcpy(key.data(), ifname.data(), ifname.size());
  return key;
}

std::array<uint8_t, kIfnameLen + kMacFieldLen> AllowedKeyOf(std::string_view ifname,
                                                            const MacAddress& mac) {
  std::array<uint8_t, kIfnameLen + kMacFieldLen> key{};
  IfnameKey name = IfnameKeyOf(ifname);
  std::memcpy(key.data(), name.data(), name.size());
  std::memcpy(key.data() + kIfnameLen, mac.data(), mac.size());
  return key;
}

std::string IfnameFromKey(std::span<const uint8_t> key) {
  size_t n = std::min<size_t>(key.size(), kIfnameLen);
  const auto* chars = reinterpret_cast<const char*>(key.data());
  return std::string(chars, strnlen(chars, n));
}

SetPtr SetRef(std::string_view name) {
  return MakeSetRef(NFPROTO_BRIDGE, MacSpoofCheck::kTable, name);
}

SetElemPtr Element(std::span<const uint8_t> key, const std::string& comment) {
  SetElemPtr elem = MakeSetElem(key);
  SetComment(*elem, comment);
  return elem;
}

std::optional<CniAttachment> Owner(nftnl_set_elem& elem) {
  std::optional<std::string> comment = GetComment(elem);
  return comment ? CniAttachment::FromComment(*comment) : std::nullopt;
}

}  // namespace

std::optional<MacAddress> ParseMac(std::string_view text) {
  if (text.size() != 17) return std::nullopt;
  MacAddress mac{};
  for (size_t i = 0; i < 6; ++i) {
    if (i > 0 && text[3 * i - 1] != ':' && text[3 * i - 1] != '-') return std::nullopt;
    unsigned value = 0;
    for (size_t j = 0; j < 2; ++j) {
      char c = text[3 * i + j];
      unsigned digit;
      if (c >= '0' && c <= '9') {
        digit = static_cast<unsigned>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        digit = static_cast<unsigned>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        digit = static_cast<unsigned>(c - 'A' + 10);
      } else {
        return std::nullopt;
      }
      value = value * 16 + digit;
    }
    mac[i] = static_cast<uint8_t>(value);
  }
  return mac;
}

std::string FormatMac(const MacAddress& mac) {
  char text[18];
  std::snprintf(text, sizeof(text), "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3],
                mac[4], mac[5]);
  return text;
}

size_t MacSpoofCheck::AppendBaseLayout(Batch& batch) {
  size_t table_index = batch.AddTable(*MakeTable(NFPROTO_BRIDGE, kTable), IfExists::kFail);

  SetPtr ports = SetRef(kPorts);
  nftnl_set_set_u32(ports.get(), NFTNL_SET_FLAGS, 0);
  nftnl_set_set_u32(ports.get(), NFTNL_SET_KEY_TYPE, kTypeIfname);
  nftnl_set_set_u32(ports.get(), NFTNL_SET_KEY_LEN, kIfnameLen);
  // nft prints a lone string key as an integer of this byte order unless told (a concatenation
  // takes each field's order from its type), so say what nft itself says for ifname.
  UdataBufPtr udata(nftnl_udata_buf_alloc(NFT_USERDATA_MAXLEN));
  if (!udata) throw std::bad_alloc();
  nftnl_udata_put_u32(udata.get(), NFTNL_UDATA_SET_KEYBYTEORDER, kByteorderHostEndian);
  nftnl_set_set_data(ports.get(), NFTNL_SET_USERDATA, nftnl_udata_buf_data(udata.get()),
                     nftnl_udata_buf_len(udata.get()));
  batch.AddSet(*ports);

  SetPtr allowed = SetRef(kAllowed);
  nftnl_set_set_u32(allowed.get(), NFTNL_SET_FLAGS, 0);
  nftnl_set_set_u32(allowed.get(), NFTNL_SET_KEY_TYPE,
                    (kTypeIfname << kConcatTypeBits) | kTypeEtherAddr);
  nftnl_set_set_u32(allowed.get(), NFTNL_SET_KEY_LEN, kIfnameLen + kMacFieldLen);
  batch.AddSet(*allowed);

  batch.AddChain(
      *MakeBaseChain(NFPROTO_BRIDGE, kTable, kChain, "filter", kBridgePreRouting, kPriority));
  // iifname @ports iifname . ether saddr != @allowed drop
  batch.AppendRule(
      *RuleBuilder(NFPROTO_BRIDGE, kTable, kChain)
           .LoadMeta(NFT_META_IIFNAME, NFT_REG_1)
           .Lookup(NFT_REG_1, kPorts, /*set_dreg=*/false, 0, /*invert=*/false)
           .LoadMeta(NFT_META_IIFNAME, NFT_REG32_00)
           .LoadPayload(NFT_PAYLOAD_LL_HEADER, /*offset=*/6, /*length=*/6, NFT_REG32_04)
           .Lookup(NFT_REG32_00, kAllowed, /*set_dreg=*/false, 0, /*invert=*/true)
           .Verdict(NF_DROP)
           .Build());
  return table_index;
}

void MacSpoofCheck::EnsureBaseLayout() {
  // Look before creating: a refused NLM_F_EXCL batch costs a transaction abort (milliseconds).
  if (GetChain(socket_, NFPROTO_BRIDGE, kTable, kChain)) return;
  Batch batch;
  size_t table_index = AppendBaseLayout(batch);
  try {
    batch.Send(socket_);
  } catch (const NftError& e) {
    if (e.error() != EEXIST || e.message_index() != table_index) throw;
  }
}

template <typename Select>
void MacSpoofCheck::Rewrite(Select&& select, std::string_view host_ifname, std::string_view what,
                            const std::function<void(Batch&)>& add) {
  for (int attempt = 1;; ++attempt) {
    Batch batch;
    for (std::string_view set_name : {kPorts, kAllowed}) {
      SetPtr set = ListSetElems(socket_, NFPROTO_BRIDGE, kTable, set_name);
      if (!set) continue;
      SetPtr doomed = SetRef(set_name);
      for (nftnl_set_elem* elem : SetElems(*set)) {
        std::optional<CniAttachment> owner = Owner(*elem);
        bool pick = (owner && select(*owner)) ||
                    (!host_ifname.empty() && IfnameFromKey(ElemKey(*elem)) == host_ifname);
        if (pick) nftnl_set_elem_add(doomed.get(), MakeSetElem(ElemKey(*elem)).release());
      }
      batch.DeleteSetElems(*doomed, what);
    }
    if (add) add(batch);
    try {
      batch.Send(socket_);
      return;
    } catch (const NftError& e) {
      if (e.error() != ENOENT || attempt == kAttempts) throw;
    }
  }
}

void MacSpoofCheck::Add(const CniAttachment& attachment, std::string_view host_ifname,
                        const MacAddress& mac) {
  const std::string comment = attachment.ToComment();
  const IfnameKey port_key = IfnameKeyOf(host_ifname);
  const auto allowed_key = AllowedKeyOf(host_ifname, mac);
  auto append_elements = [&](Batch& batch) {
    SetPtr ports = SetRef(kPorts);
    nftnl_set_elem_add(ports.get(), Element(port_key, comment).release());
    batch.AddSetElems(*ports, IfExists::kFail, comment);
    SetPtr allowed = SetRef(kAllowed);
    nftnl_set_elem_add(allowed.get(), Element(allowed_key, comment).release());
    batch.AddSetElems(*allowed, IfExists::kFail, comment);
  };

  EnsureBaseLayout();
  Batch batch;
  append_elements(batch);
  try {
    batch.Send(socket_);
    return;
  } catch (const NftError& e) {
    if (e.error() != EEXIST) throw;
  }
  if (Has(attachment, host_ifname, mac)) return;
  // Something else sits on this port (a leaked DEL), or this attachment with another MAC.
  Rewrite([&](const CniAttachment& owner) { return owner == attachment; }, host_ifname, comment,
          append_elements);
}

void MacSpoofCheck::Remove(const CniAttachment& attachment) {
  Rewrite([&](const CniAttachment& owner) { return owner == attachment; }, {},
          attachment.ToComment(), {});
}

bool MacSpoofCheck::Has(const CniAttachment& attachment, std::string_view host_ifname,
                        const MacAddress& mac) {
  const std::string comment = attachment.ToComment();
  SetPtr port = GetSetElem(socket_, NFPROTO_BRIDGE, kTable, kPorts, IfnameKeyOf(host_ifname));
  if (!port || GetComment(*SetElems(*port).front()) != comment) return false;
  SetPtr allowed =
      GetSetElem(socket_, NFPROTO_BRIDGE, kTable, kAllowed, AllowedKeyOf(host_ifname, mac));
  return allowed && GetComment(*SetElems(*allowed).front()) == comment;
}

std::vector<MacSpoofEntry> MacSpoofCheck::List(std::string_view network) {
  std::vector<MacSpoofEntry> entries;
  SetPtr ports = ListSetElems(socket_, NFPROTO_BRIDGE, kTable, kPorts);
  if (!ports) return entries;
  SetPtr allowed = ListSetElems(socket_, NFPROTO_BRIDGE, kTable, kAllowed);
  for (nftnl_set_elem* elem : SetElems(*ports)) {
    std::optional<CniAttachment> owner = Owner(*elem);
    if (!owner || (!network.empty() && owner->network != network)) continue;
    MacSpoofEntry entry{*owner, IfnameFromKey(ElemKey(*elem)), std::nullopt};
    if (allowed) {
      for (nftnl_set_elem* a : SetElems(*allowed)) {
        std::span<const uint8_t> key = ElemKey(*a);
        if (key.size() != kIfnameLen + kMacFieldLen || IfnameFromKey(key) != entry.host_ifname ||
            Owner(*a) != owner) {
          continue;
        }
        MacAddress mac;
        std::memcpy(mac.data(), key.data() + kIfnameLen, mac.size());
        entry.mac = mac;
      }
    }
    entries.push_back(std::move(entry));
  }
  return entries;
}

void MacSpoofCheck::RemoveExcept(std::string_view network,
                                 const std::set<std::pair<std::string, std::string>>& keep) {
  Rewrite(
      [&](const CniAttachment& owner) {
        return owner.network == network && !keep.contains({owner.container_id, owner.ifname});
      },
      {}, "garbage collection of network " + std::string(network), {});
}

void MacSpoofCheck::RemoveTableIfUnused() {
  if (!GetChain(socket_, NFPROTO_BRIDGE, kTable, kChain)) return;
  if (!List("").empty()) return;
  Batch batch;
  batch.DeleteTable(*MakeTable(NFPROTO_BRIDGE, kTable));
  try {
    batch.Send(socket_);
  } catch (const NftError& e) {
    if (e.error() != ENOENT) throw;
  }
}

}  // namespace sluice::nft
