// Removal of the masquerade the reference CNI bridge plugin (containernetworking/plugins, iptables
// backend) installs, so a node can move from it to ours: per container, chain
// "CNI-" + sha512(network + container ID)[:24 hex] in iptables-nft's `ip nat` / `ip6 nat`, jumped
// to from POSTROUTING. Only iptables-nft state is reachable here: iptables-legacy rules live in
// x_tables, outside nf_tables netlink.
#pragma once

#include <string>
#include <string_view>

#include "dataplane/nft/batch.h"
#include "dataplane/nft/nft_socket.h"

namespace sluice::nft {

// pkg/utils FormatChainName of the reference plugins.
std::string ReferenceMasqueradeChain(std::string_view network, std::string_view container_id);

// Reads `ip nat` and `ip6 nat` through `socket` and appends to `batch`: deletion (by handle) of
// every POSTROUTING rule that jumps or goes to the chain, a flush of the chain, and its deletion.
// Appends nothing for a family whose table or chain is absent.
void AppendReferenceMasqueradeRemoval(NftSocket& socket, Batch& batch, std::string_view network,
                                      std::string_view container_id);

}  // namespace sluice::nft
