// The CNI bridge plugin's `macspoofchk: true`: frames entering the bridge from a pod's host-side
// veth must carry the pod's MAC as source, in the node netns:
//
//   table bridge sluice_cni_macspoof
//     set ports   { type ifname }               host veth under check, comment = attachment
//     set allowed { type ifname . ether_addr }   (host veth, pod MAC), comment = attachment
//     chain prerouting (filter, prerouting, -300):
//       iifname @ports iifname . ether saddr != @allowed drop
//
// Two elements per attachment, added and removed in one transaction: O(1) whatever the number
// of pods, no per-pod chain or rule.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dataplane/nft/batch.h"
#include "dataplane/nft/cni_attachment.h"
#include "dataplane/nft/nft_socket.h"

namespace sluice::nft {

using MacAddress = std::array<uint8_t, 6>;
// "02:42:ac:11:00:02" (either case, ':' or '-'); nullopt otherwise.
std::optional<MacAddress> ParseMac(std::string_view text);
std::string FormatMac(const MacAddress& mac);

struct MacSpoofEntry {
  CniAttachment attachment;
  std::string host_ifname;
  std::optional<MacAddress> mac;  // absent only if someone deleted the `allowed` element
};

class MacSpoofCheck {
 public:
  static constexpr std::string_view kTable = "sluice_cni_macspoof";
  static constexpr std::string_view kChain = "prerouting";
  static constexpr std::string_view kPorts = "ports";
  static constexpr std::string_view kAllowed = "allowed";

  // `socket` must live in the node's netns and outlive this object.
  explicit MacSpoofCheck(NftSocket& socket) : socket_(socket) {}

  // Idempotent; elements of another attachment on the same host port are replaced.
  void Add(const CniAttachment& attachment, std::string_view host_ifname, const MacAddress& mac);
  // Nothing there is success.
  void Remove(const CniAttachment& attachment);
  bool Has(const CniAttachment& attachment, std::string_view host_ifname, const MacAddress& mac);
  // Entries of one network (all networks if `network` is empty).
  std::vector<MacSpoofEntry> List(std::string_view network);
  // Deletes the whole table when no attachment of any network has an element left. Only safe
  // with no ADD in flight, which the CNI runtime guarantees while it runs GC.
  void RemoveTableIfUnused();
  // CNI GC: removes the network's entries whose (container ID, ifname) is not in `keep`.
  void RemoveExcept(std::string_view network,
                    const std::set<std::pair<std::string, std::string>>& keep);

  // The table (created exclusively: returns that message's index), sets, chain and rule.
  static size_t AppendBaseLayout(Batch& batch);

 private:
  void EnsureBaseLayout();
  // Deletes, in one batch, every element of both sets that belongs to an attachment `select`
  // picks or (if non-empty) sits on `host_ifname`; `add` may append more to the same batch.
  template <typename Select>
  void Rewrite(Select&& select, std::string_view host_ifname, std::string_view what,
               const std::function<void(Batch&)>& add);

  NftSocket& socket_;
};

}  // namespace sluice::nft
