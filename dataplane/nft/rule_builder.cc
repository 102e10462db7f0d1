#include "dataplane/nft/rule_builder.h"

#include <array>
#include <stdexcept>
#include <vector>

#include "dataplane/nft/netfilter_headers.h"

namespace sluice::nft {

RuleBuilder::RuleBuilder(uint16_t family, std::string_view table, std::string_view chain)
    : family_(family), rule_(NewRuleObject()) {
  nftnl_rule_set_u32(rule_.get(), NFTNL_RULE_FAMILY, family);
  nftnl_rule_set_str(rule_.get(), NFTNL_RULE_TABLE, std::string(table).c_str());
  nftnl_rule_set_str(rule_.get(), NFTNL_RULE_CHAIN, std::string(chain).c_str());
}

RuleBuilder& RuleBuilder::Add(ExprPtr expr) {
  nftnl_rule_add_expr(rule_.get(), expr.release());  // the rule owns it now
  return *this;
}

RuleBuilder& RuleBuilder::LoadMeta(uint32_t key, uint32_t dreg) {
  ExprPtr e = NewExprObject("meta");
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_META_KEY, key);
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_META_DREG, dreg);
  return Add(std::move(e));
}

RuleBuilder& RuleBuilder::LoadPayload(uint32_t base, uint32_t offset, uint32_t length,
                                      uint32_t dreg) {
  ExprPtr e = NewExprObject("payload");
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_PAYLOAD_BASE, base);
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_PAYLOAD_OFFSET, offset);
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_PAYLOAD_LEN, length);
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_PAYLOAD_DREG, dreg);
  return Add(std::move(e));
}

RuleBuilder& RuleBuilder::Mask(uint32_t reg, std::span<const uint8_t> mask) {
  std::vector<uint8_t> zero(mask.size(), 0);
  ExprPtr e = NewExprObject("bitwise");
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_BITWISE_SREG, reg);
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_BITWISE_DREG, reg);
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_BITWISE_LEN, static_cast<uint32_t>(mask.size()));
  nftnl_expr_set(e.get(), NFTNL_EXPR_BITWISE_MASK, mask.data(), mask.size());
  nftnl_expr_set(e.get(), NFTNL_EXPR_BITWISE_XOR, zero.data(), zero.size());
  return Add(std::move(e));
}

RuleBuilder& RuleBuilder::Compare(uint32_t sreg, uint32_t op, std::span<const uint8_t> value) {
  ExprPtr e = NewExprObject("cmp");
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_CMP_SREG, sreg);
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_CMP_OP, op);
  nftnl_expr_set(e.get(), NFTNL_EXPR_CMP_DATA, value.data(), value.size());
  return Add(std::move(e));
}

RuleBuilder& RuleBuilder::Lookup(uint32_t sreg, std::string_view set, bool set_dreg, uint32_t dreg,
                                 bool invert) {
  ExprPtr e = NewExprObject("lookup");
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_LOOKUP_SREG, sreg);
  if (set_dreg) nftnl_expr_set_u32(e.get(), NFTNL_EXPR_LOOKUP_DREG, dreg);
  nftnl_expr_set_str(e.get(), NFTNL_EXPR_LOOKUP_SET, std::string(set).c_str());
  if (invert) nftnl_expr_set_u32(e.get(), NFTNL_EXPR_LOOKUP_FLAGS, NFT_LOOKUP_F_INV);
  return Add(std::move(e));
}

RuleBuilder& RuleBuilder::Verdict(int verdict, std::string_view chain) {
  ExprPtr e = NewExprObject("immediate");
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_IMM_VERDICT, static_cast<uint32_t>(verdict));
  if (!chain.empty()) nftnl_expr_set_str(e.get(), NFTNL_EXPR_IMM_CHAIN, std::string(chain).c_str());
  return Add(std::move(e));
}

RuleBuilder& RuleBuilder::Masquerade() { return Add(NewExprObject("masq")); }

RuleBuilder& RuleBuilder::MatchNfproto(IpFamily family) {
  const std::array<uint8_t, 1> proto = {
      static_cast<uint8_t>(family == IpFamily::kV4 ? NFPROTO_IPV4 : NFPROTO_IPV6)};
  LoadMeta(NFT_META_NFPROTO, NFT_REG_1);
  return Compare(NFT_REG_1, NFT_CMP_EQ, proto);
}

RuleBuilder& RuleBuilder::LoadAddress(IpFamily family, bool source, uint32_t dreg) {
  if (family_ == NFPROTO_INET) MatchNfproto(family);
  // Offsets of saddr/daddr in the IPv4 (12/16) and IPv6 (8/24) headers.
  const bool v4 = family == IpFamily::kV4;
  const uint32_t offset = v4 ? (source ? 12 : 16) : (source ? 8 : 24);
  return LoadPayload(NFT_PAYLOAD_NETWORK_HEADER, offset, v4 ? 4 : 16, dreg);
}

RuleBuilder& RuleBuilder::MatchAddress(bool source, const IpPrefix& prefix) {
  const IpAddress network = prefix.NetworkAddress();
  const size_t size = network.size();
  if ((family_ == NFPROTO_IPV4 && !network.is_v4()) ||
      (family_ == NFPROTO_IPV6 && network.is_v4())) {
    throw std::invalid_argument("address family of " + prefix.ToString() +
                                " does not match the table family");
  }
  LoadAddress(network.family(), source, NFT_REG_1);
  if (prefix.length() < network.bits()) {
    std::vector<uint8_t> mask(size, 0);
    for (int bit = 0; bit < prefix.length(); ++bit) mask[bit / 8] |= 0x80 >> (bit % 8);
    Mask(NFT_REG_1, mask);
  }
  return Compare(NFT_REG_1, NFT_CMP_EQ, std::span<const uint8_t>(network.data(), size));
}

RuleBuilder& RuleBuilder::SourceAddressVmap(IpFamily family, std::string_view set) {
  LoadAddress(family, /*source=*/true, NFT_REG_1);
  return Lookup(NFT_REG_1, set, /*set_dreg=*/true, NFT_REG_VERDICT, /*invert=*/false);
}

RuleBuilder& RuleBuilder::Comment(std::string_view comment) {
  SetComment(*rule_, comment);
  return *this;
}

RulePtr RuleBuilder::Build() { return std::move(rule_); }

}  // namespace sluice::nft
