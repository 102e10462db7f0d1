#include "dataplane/nft/reference_masquerade.h"

#include <cstring>

#include "common/sha512.h"
#include "dataplane/nft/dump.h"
#include "dataplane/nft/netfilter_headers.h"

namespace sluice::nft {
namespace {

constexpr std::string_view kNatTable = "nat";
constexpr std::string_view kPostrouting = "POSTROUTING";

bool JumpsTo(const nftnl_rule& rule, const std::string& chain) {
  nftnl_expr_iter* iter = nftnl_expr_iter_create(&rule);
  if (iter == nullptr) throw std::bad_alloc();
  bool found = false;
  while (nftnl_expr* expr = nftnl_expr_iter_next(iter)) {
    const char* name = nftnl_expr_get_str(expr, NFTNL_EXPR_NAME);
    if (name == nullptr || std::strcmp(name, "immediate") != 0) continue;
    if (!nftnl_expr_is_set(expr, NFTNL_EXPR_IMM_VERDICT)) continue;
    auto verdict = static_cast<int32_t>(nftnl_expr_get_u32(expr, NFTNL_EXPR_IMM_VERDICT));
    if (verdict != NFT_JUMP && verdict != NFT_GOTO) continue;
    const char* target = nftnl_expr_get_str(expr, NFTNL_EXPR_IMM_CHAIN);
    if (target != nullptr && chain == target) found = true;
  }
  nftnl_expr_iter_destroy(iter);
  return found;
}

}  // namespace

std::string ReferenceMasqueradeChain(std::string_view network, std::string_view container_id) {
  std::string input(network);
  input += container_id;
  return "CNI-" + Sha512::Hex(input).substr(0, 24);
}

void AppendReferenceMasqueradeRemoval(NftSocket& socket, Batch& batch, std::string_view network,
                                      std::string_view container_id) {
  const std::string chain = ReferenceMasqueradeChain(network, container_id);
  for (uint16_t family : {uint16_t{NFPROTO_IPV4}, uint16_t{NFPROTO_IPV6}}) {
    ChainPtr target = GetChain(socket, family, kNatTable, chain);
    if (!target) continue;  // a jump cannot exist without its target chain
    for (const RulePtr& rule : ListRules(socket, family, kNatTable, kPostrouting)) {
      if (!JumpsTo(*rule, chain)) continue;
      // Delete by handle; the expressions are not needed (and iptables' are opaque xt blobs).
      RulePtr by_handle = NewRuleObject();
      nftnl_rule_set_u32(by_handle.get(), NFTNL_RULE_FAMILY, family);
      nftnl_rule_set_str(by_handle.get(), NFTNL_RULE_TABLE, std::string(kNatTable).c_str());
      nftnl_rule_set_str(by_handle.get(), NFTNL_RULE_CHAIN, std::string(kPostrouting).c_str());
      nftnl_rule_set_u64(by_handle.get(), NFTNL_RULE_HANDLE,
                         nftnl_rule_get_u64(rule.get(), NFTNL_RULE_HANDLE));
      batch.DeleteRule(*by_handle);
    }
    batch.FlushChain(family, kNatTable, chain);
    batch.DeleteChain(*MakeChain(family, kNatTable, chain));
  }
}

}  // namespace sluice::nft
