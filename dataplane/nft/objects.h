// Owning handles for libnftnl objects and small constructors for the ones we build often.
#pragma once

#include <libnftnl/chain.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <libnftnl/udata.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace sluice::nft {

template <auto Free>
struct NftnlDeleter {
  template <typename T>
  void operator()(T* object) const {
    Free(object);
  }
};

using TablePtr = std::unique_ptr<nftnl_table, NftnlDeleter<nftnl_table_free>>;
using ChainPtr = std::unique_ptr<nftnl_chain, NftnlDeleter<nftnl_chain_free>>;
using RulePtr = std::unique_ptr<nftnl_rule, NftnlDeleter<nftnl_rule_free>>;
using ExprPtr = std::unique_ptr<nftnl_expr, NftnlDeleter<nftnl_expr_free>>;
using SetPtr = std::unique_ptr<nftnl_set, NftnlDeleter<nftnl_set_free>>;
using SetElemPtr = std::unique_ptr<nftnl_set_elem, NftnlDeleter<nftnl_set_elem_free>>;
using UdataBufPtr = std::unique_ptr<nftnl_udata_buf, NftnlDeleter<nftnl_udata_buf_free>>;

// Allocators that throw std::bad_alloc instead of returning null.
TablePtr NewTableObject();
ChainPtr NewChainObject();
RulePtr NewRuleObject();
SetPtr NewSetObject();
SetElemPtr NewSetElemObject();
ExprPtr NewExprObject(const char* name);

TablePtr MakeTable(uint16_t family, std::string_view name);
ChainPtr MakeChain(uint16_t family, std::string_view table, std::string_view name);
// A base chain: `type` is "filter"/"nat"/"route", hook an NF_*_ hook number, policy accept.
ChainPtr MakeBaseChain(uint16_t family, std::string_view table, std::string_view name,
                       std::string_view type, uint32_t hook, int32_t priority);
// A set or map handle naming an existing (or to-be-created) set; no key type set.
SetPtr MakeSetRef(uint16_t family, std::string_view table, std::string_view name);
SetElemPtr MakeSetElem(std::span<const uint8_t> key);

// Comments travel as nftnl user data (what `nft ... comment "x"` writes), so nft shows them.
// Throws std::invalid_argument if the comment does not fit the kernel's 256-byte limit.
void SetComment(nftnl_chain& chain, std::string_view comment);
void SetComment(nftnl_rule& rule, std::string_view comment);
void SetComment(nftnl_set_elem& elem, std::string_view comment);
std::optional<std::string> GetComment(const nftnl_chain& chain);
std::optional<std::string> GetComment(const nftnl_rule& rule);
std::optional<std::string> GetComment(nftnl_set_elem& elem);

// "ip", "ip6", "inet", "bridge", "arp", "netdev" (or the number).
std::string FamilyName(uint16_t family);

}  // namespace sluice::nft
