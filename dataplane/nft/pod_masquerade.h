// Pod egress masquerade, the `ipMasq: true` of the CNI bridge plugin, in the current netns:
//
//   table inet sluice_cni_masq
//     map pods4 { type ipv4_addr : verdict }   pod IP -> jump <subnet chain>, comment = attachment
//     map pods6 { type ipv6_addr : verdict }
//     chain postrouting  (nat, postrouting, srcnat): ip saddr vmap @pods4; ip6 saddr vmap @pods6
//     chain m-<hash of network|subnet>: daddr <subnet> return; daddr multicast return; masquerade
//
// One map element per pod address, so ADD/DEL cost the same whatever the number of pods, and
// DEL/GC find elements by their comment alone (no addresses needed once the netns is gone).
// No locks: creation races are settled by NLM_F_EXCL (see pod_masquerade.cc).
#pragma once

#include <cstddef>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/ip_address.h"
#include "dataplane/nft/batch.h"
#include "dataplane/nft/cni_attachment.h"
#include "dataplane/nft/nft_socket.h"

namespace sluice::nft {

struct MasqueradeAddress {
  IpAddress ip;     // the pod's address
  IpPrefix subnet;  // traffic to it (and to multicast) keeps the pod's source address
};

struct MasqueradeEntry {
  CniAttachment attachment;
  IpAddress ip;
  std::string chain;  // the subnet chain the element jumps to
};

class PodMasquerade {
 public:
  static constexpr std::string_view kTable = "sluice_cni_masq";
  static constexpr std::string_view kBaseChain = "postrouting";
  static constexpr std::string_view kMap4 = "pods4";
  static constexpr std::string_view kMap6 = "pods6";

  // `socket` must live in the node's netns and outlive this object.
  explicit PodMasquerade(NftSocket& socket) : socket_(socket) {}

  // Masquerades traffic from each address leaving its subnet. Idempotent; an element left by
  // another attachment for the same address (a leaked DEL) is replaced.
  void Add(const CniAttachment& attachment, std::span<const MasqueradeAddress> addresses);
  // Deletes the attachment's elements, and the reference plugin's iptables-nft chain and
  // POSTROUTING jumps for (network, container ID). Nothing there is success.
  void Remove(const CniAttachment& attachment);
  // For CNI CHECK: the address is masqueraded on behalf of this attachment.
  bool Has(const CniAttachment& attachment, const IpAddress& ip);
  // Elements of one network (all networks if `network` is empty).
  std::vector<MasqueradeEntry> List(std::string_view network);
  // Deletes the whole table when no attachment of any network has an element left. Only safe
  // with no ADD in flight, which the CNI runtime guarantees while it runs GC.
  void RemoveTableIfUnused();
  // CNI GC: deletes the network's elements whose (container ID, ifname) is not in `keep`.
  void RemoveExcept(std::string_view network,
                    const std::set<std::pair<std::string, std::string>>& keep);

  // Layout pieces, pure (no I/O), exposed for tests.
  static std::string SubnetChainName(std::string_view network, const IpPrefix& subnet);
  // Table (created exclusively: returns that message's index), maps, base chain and its rules.
  static size_t AppendBaseLayout(Batch& batch);
  // The subnet chain (created exclusively: returns that message's index) and its rules.
  static size_t AppendSubnetChain(Batch& batch, std::string_view network, const IpPrefix& subnet);

 private:
  void EnsureBaseLayout();
  void EnsureSubnetChain(std::string_view network, const IpPrefix& subnet);
  void ReplaceElements(const CniAttachment& attachment,
                       std::span<const MasqueradeAddress> addresses);

  NftSocket& socket_;
};

}  // namespace sluice::nft
