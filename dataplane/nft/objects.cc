#include "dataplane/nft/objects.h"

#include <new>
#include <stdexcept>

#include "dataplane/nft/netfilter_headers.h"

namespace sluice::nft {
namespace {

template <typename Ptr, typename T>
Ptr CheckAlloc(T* object) {
  if (object == nullptr) throw std::bad_alloc();
  return Ptr(object);
}

// One comment attribute, as nft writes it; `type` is the per-object comment id.
UdataBufPtr CommentBuf(uint8_t type, std::string_view comment) {
  UdataBufPtr buf(nftnl_udata_buf_alloc(NFT_USERDATA_MAXLEN));
  if (!buf) throw std::bad_alloc();
  std::string text(comment);
  if (!nftnl_udata_put_strz(buf.get(), type, text.c_str())) {
    throw std::invalid_argument("nft comment longer than the kernel's user data limit: " + text);
  }
  return buf;
}

std::optional<std::string> FindComment(const void* data, uint32_t len, uint8_t type) {
  if (data == nullptr || len == 0) return std::nullopt;
  const auto* begin = static_cast<const char*>(data);
  const char* end = begin + len;
  // TLVs: 1 byte type, 1 byte length, value. Checked by hand so a foreign blob cannot overrun.
  const char* p = begin;
  while (p + 2 <= end) {
    auto t = static_cast<uint8_t>(p[0]);
    auto l = static_cast<uint8_t>(p[1]);
    if (p + 2 + l > end) break;
    if (t == type && l > 0) {
      std::string value(p + 2, l);
      if (value.back() == '\0') value.pop_back();
      return value;
    }
    p += 2 + l;
  }
  return std::nullopt;
}

}  // namespace

TablePtr NewTableObject() { return CheckAlloc<TablePtr>(nftnl_table_alloc()); }
ChainPtr NewChainObject() { return CheckAlloc<ChainPtr>(nftnl_chain_alloc()); }
RulePtr NewRuleObject() { return CheckAlloc<RulePtr>(nftnl_rule_alloc()); }
SetPtr NewSetObject() { return CheckAlloc<SetPtr>(nftnl_set_alloc()); }
SetElemPtr NewSetElemObject() { return CheckAlloc<SetElemPtr>(nftnl_set_elem_alloc()); }
ExprPtr NewExprObject(const char* name) {
  ExprPtr expr(nftnl_expr_alloc(name));
  if (!expr) throw std::invalid_argument(std::string("libnftnl has no expression ") + name);
  return expr;
}

TablePtr MakeTable(uint16_t family, std::string_view name) {
  TablePtr table = NewTableObject();
  nftnl_table_set_u32(table.get(), NFTNL_TABLE_FAMILY, family);
  nftnl_table_set_str(table.get(), NFTNL_TABLE_NAME, std::string(name).c_str());
  return table;
}

ChainPtr MakeChain(uint16_t family, std::string_view table, std::string_view name) {
  ChainPtr chain = NewChainObject();
  nftnl_chain_set_u32(chain.get(), NFTNL_CHAIN_FAMILY, family);
  nftnl_chain_set_str(chain.get(), NFTNL_CHAIN_TABLE, std::string(table).c_str());
  nftnl_chain_set_str(chain.get(), NFTNL_CHAIN_NAME, std::string(name).c_str());
  return chain;
}

ChainPtr MakeBaseChain(uint16_t family, std::string_view table, std::string_view name,
                       std::string_view type, uint32_t hook, int32_t priority) {
  ChainPtr chain = MakeChain(family, table, name);
  nftnl_chain_set_str(chain.get(), NFTNL_CHAIN_TYPE, std::string(type).c_str());
  nftnl_chain_set_u32(chain.get(), NFTNL_CHAIN_HOOKNUM, hook);
  nftnl_chain_set_s32(chain.get(), NFTNL_CHAIN_PRIO, priority);
  nftnl_chain_set_u32(chain.get(), NFTNL_CHAIN_POLICY, NF_ACCEPT);
  return chain;
}

SetPtr MakeSetRef(uint16_t family, std::string_view table, std::string_view name) {
  SetPtr set = NewSetObject();
  nftnl_set_set_u32(set.get(), NFTNL_SET_FAMILY, family);
  nftnl_set_set_str(set.get(), NFTNL_SET_TABLE, std::string(table).c_str());
  nftnl_set_set_str(set.get(), NFTNL_SET_NAME, std::string(name).c_str());
  return set;
}

SetElemPtr MakeSetElem(std::span<const uint8_t> key) {
  SetElemPtr elem = NewSetElemObject();
  nftnl_set_elem_set(elem.get(), NFTNL_SET_ELEM_KEY, key.data(), key.size());
  return elem;
}

void SetComment(nftnl_chain& chain, std::string_view comment) {
  UdataBufPtr buf = CommentBuf(NFTNL_UDATA_CHAIN_COMMENT, comment);
  nftnl_chain_set_data(&chain, NFTNL_CHAIN_USERDATA, nftnl_udata_buf_data(buf.get()),
                       nftnl_udata_buf_len(buf.get()));
}

void SetComment(nftnl_rule& rule, std::string_view comment) {
  UdataBufPtr buf = CommentBuf(NFTNL_UDATA_RULE_COMMENT, comment);
  nftnl_rule_set_data(&rule, NFTNL_RULE_USERDATA, nftnl_udata_buf_data(buf.get()),
                      nftnl_udata_buf_len(buf.get()));
}

void SetComment(nftnl_set_elem& elem, std::string_view comment) {
  UdataBufPtr buf = CommentBuf(NFTNL_UDATA_SET_ELEM_COMMENT, comment);
  nftnl_set_elem_set(&elem, NFTNL_SET_ELEM_USERDATA, nftnl_udata_buf_data(buf.get()),
                     nftnl_udata_buf_len(buf.get()));
}

std::optional<std::string> GetComment(const nftnl_chain& chain) {
  if (!nftnl_chain_is_set(&chain, NFTNL_CHAIN_USERDATA)) return std::nullopt;
  uint32_t len = 0;
  const void* data = nftnl_chain_get_data(&chain, NFTNL_CHAIN_USERDATA, &len);
  return FindComment(data, len, NFTNL_UDATA_CHAIN_COMMENT);
}

std::optional<std::string> GetComment(const nftnl_rule& rule) {
  if (!nftnl_rule_is_set(&rule, NFTNL_RULE_USERDATA)) return std::nullopt;
  uint32_t len = 0;
  const void* data = nftnl_rule_get_data(&rule, NFTNL_RULE_USERDATA, &len);
  return FindComment(data, len, NFTNL_UDATA_RULE_COMMENT);
}

std::optional<std::string> GetComment(nftnl_set_elem& elem) {
  if (!nftnl_set_elem_is_set(&elem, NFTNL_SET_ELEM_USERDATA)) return std::nullopt;
  uint32_t len = 0;
  const void* data = nftnl_set_elem_get(&elem, NFTNL_SET_ELEM_USERDATA, &len);
  return FindComment(data, len, NFTNL_UDATA_SET_ELEM_COMMENT);
}

std::string FamilyName(uint16_t family) {
  switch (family) {
    case NFPROTO_IPV4:
      return "ip";
    case NFPROTO_IPV6:
      return "ip6";
    case NFPROTO_INET:
      return "inet";
    case NFPROTO_BRIDGE:
      return "bridge";
    case NFPROTO_ARP:
      return "arp";
    case NFPROTO_NETDEV:
      return "netdev";
    default:
      return "family" + std::to_string(family);
  }
}

}  // namespace sluice::nft
