// Builds one nftnl rule from the handful of expressions our layouts use, in the register
// conventions nft itself uses, so `nft list ruleset` prints the rule back in plain nft syntax.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "common/ip_address.h"
#include "dataplane/nft/objects.h"

namespace sluice::nft {

class RuleBuilder {
 public:
  RuleBuilder(uint16_t family, std::string_view table, std::string_view chain);

  // Raw expressions (registers are NFT_REG_* / NFT_REG32_* values).
  RuleBuilder& LoadMeta(uint32_t key, uint32_t dreg);
  RuleBuilder& LoadPayload(uint32_t base, uint32_t offset, uint32_t length, uint32_t dreg);
  RuleBuilder& Mask(uint32_t reg, std::span<const uint8_t> mask);  // reg &= mask
  RuleBuilder& Compare(uint32_t sreg, uint32_t op, std::span<const uint8_t> value);
  // `dreg` NFT_REG_VERDICT for a verdict map; `set_dreg` false for a plain set lookup.
  RuleBuilder& Lookup(uint32_t sreg, std::string_view set, bool set_dreg, uint32_t dreg,
                      bool invert);
  RuleBuilder& Verdict(int verdict, std::string_view chain = {});
  RuleBuilder& Masquerade();
  // Any other expression, built by the caller.
  RuleBuilder& AddExpr(ExprPtr expr) { return Add(std::move(expr)); }

  // Matches: `meta nfproto ipv4|ipv6` (needed before ip/ip6 payloads in inet tables), and
  // `ip saddr|daddr <prefix>` / `ip6 ...` (the nfproto dependency is added for inet tables).
  RuleBuilder& MatchNfproto(IpFamily family);
  RuleBuilder& MatchAddress(bool source, const IpPrefix& prefix);
  // `ip saddr vmap @set` / `ip6 saddr vmap @set`.
  RuleBuilder& SourceAddressVmap(IpFamily family, std::string_view set);

  RuleBuilder& Comment(std::string_view comment);
  RulePtr Build();

 private:
  RuleBuilder& Add(ExprPtr expr);
  RuleBuilder& LoadAddress(IpFamily family, bool source, uint32_t dreg);

  uint16_t family_;
  RulePtr rule_;
};

}  // namespace sluice::nft
