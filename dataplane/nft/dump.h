// Reading the ruleset back: tables, chains, rules and set elements, as owned libnftnl objects.
// A missing table, chain or set reads as empty (or null), never as an error; a dump that the
// kernel marks interrupted (ruleset changed meanwhile) is retried.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "dataplane/nft/nft_socket.h"
#include "dataplane/nft/objects.h"

namespace sluice::nft {

// `family` NFPROTO_UNSPEC lists all families.
std::vector<TablePtr> ListTables(NftSocket& socket, uint16_t family);
std::vector<ChainPtr> ListChains(NftSocket& socket, uint16_t family, std::string_view table);
ChainPtr GetChain(NftSocket& socket, uint16_t family, std::string_view table,
                  std::string_view chain);
std::vector<RulePtr> ListRules(NftSocket& socket, uint16_t family, std::string_view table,
                               std::string_view chain);
// Every rule of a table, reduced to what a reconciler compares (no expressions decoded), in the
// kernel's order (chain by chain, rule order within a chain).
struct RuleSummary {
  std::string chain;
  uint64_t handle = 0;
  std::vector<uint8_t> udata;
};
std::vector<RuleSummary> ListRuleSummaries(NftSocket& socket, uint16_t family,
                                           std::string_view table);
// The sets of a table (no elements).
std::vector<SetPtr> ListSets(NftSocket& socket, uint16_t family, std::string_view table);
// The set (its name, table and family) with all its elements attached, or null if absent.
SetPtr ListSetElems(NftSocket& socket, uint16_t family, std::string_view table,
                    std::string_view set);
// One element looked up by key in the kernel (no dump): the set with that single element
// attached, or null if the element (or the set) is absent.
SetPtr GetSetElem(NftSocket& socket, uint16_t family, std::string_view table, std::string_view set,
                  std::span<const uint8_t> key);

// Non-owning views of the elements attached to `set`.
std::vector<nftnl_set_elem*> SetElems(const nftnl_set& set);
std::span<const uint8_t> ElemKey(nftnl_set_elem& elem);

}  // namespace sluice::nft
