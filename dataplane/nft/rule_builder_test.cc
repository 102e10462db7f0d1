// Golden tests: the expressions RuleBuilder emits, in libnftnl's debug rendering (the format of
// `nft --debug=netlink`). The kernel tests check that nft prints them back as plain nft syntax.
#include "dataplane/nft/rule_builder.h"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

#include "dataplane/nft/netfilter_headers.h"

namespace sluice::nft {
namespace {

std::string Render(const RulePtr& rule) {
  char buf[8192];
  nftnl_rule_snprintf(buf, sizeof(buf), rule.get(), NFTNL_OUTPUT_DEFAULT, 0);
  return buf;
}

TEST(RuleBuilderTest, Ipv4PrefixInInetTableCarriesTheNfprotoDependency) {
  RulePtr rule = RuleBuilder(NFPROTO_INET, "t", "c")
                     .MatchAddress(/*source=*/false, IpPrefix::MustParse("10.99.0.7/24"))
                     .Verdict(NFT_RETURN)
                     .Build();
  EXPECT_EQ(Render(rule),
            "inet t c\n"
            "  [ meta load nfproto => reg 1 ]\n"
            "  [ cmp eq reg 1 0x00000002 ]\n"
            "  [ payload load 4b @ network header + 16 => reg 1 ]\n"
            "  [ bitwise reg 1 = ( reg 1 & 0x00ffffff ) ^ 0x00000000 ]\n"
            "  [ cmp eq reg 1 0x0000630a ]\n"
            "  [ immediate reg 0 return ]\n");
}

TEST(RuleBuilderTest, HostAddressNeedsNoMaskAndIpTablesNoDependency) {
  RulePtr rule = RuleBuilder(NFPROTO_IPV4, "t", "c")
                     .MatchAddress(/*source=*/true, IpPrefix::MustParse("192.0.2.1/32"))
                     .Verdict(NF_ACCEPT)
                     .Build();
  EXPECT_EQ(Render(rule),
            "ip t c\n"
            "  [ payload load 4b @ network header + 12 => reg 1 ]\n"
            "  [ cmp eq reg 1 0x010200c0 ]\n"
            "  [ immediate reg 0 accept ]\n");
}

TEST(RuleBuilderTest, Ipv6Multicast) {
  RulePtr rule = RuleBuilder(NFPROTO_INET, "t", "c")
                     .MatchAddress(/*source=*/false, IpPrefix::MustParse("ff00::/8"))
                     .Verdict(NFT_RETURN)
                     .Build();
  EXPECT_EQ(Render(rule),
            "inet t c\n"
            "  [ meta load nfproto => reg 1 ]\n"
            "  [ cmp eq reg 1 0x0000000a ]\n"
            "  [ payload load 16b @ network header + 24 => reg 1 ]\n"
            "  [ bitwise reg 1 = ( reg 1 & 0x000000ff 0x00000000 0x00000000 0x00000000 ) ^ "
            "0x00000000 0x00000000 0x00000000 0x00000000 ]\n"
            "  [ cmp eq reg 1 0x000000ff 0x00000000 0x00000000 0x00000000 ]\n"
            "  [ immediate reg 0 return ]\n");
}

TEST(RuleBuilderTest, SourceAddressVmapAndMasquerade) {
  EXPECT_EQ(Render(RuleBuilder(NFPROTO_INET, "t", "postrouting")
                       .SourceAddressVmap(IpFamily::kV6, "pods6")
                       .Build()),
            "inet t postrouting\n"
            "  [ meta load nfproto => reg 1 ]\n"
            "  [ cmp eq reg 1 0x0000000a ]\n"
            "  [ payload load 16b @ network header + 8 => reg 1 ]\n"
            "  [ lookup reg 1 set pods6 dreg 0 ]\n");
  EXPECT_EQ(Render(RuleBuilder(NFPROTO_INET, "t", "c").Masquerade().Comment("hi").Build()),
            "inet t c\n"
            "  [ masq ]\n"
            "  userdata = { \\x00\\x03hi\\x00 }");
}

TEST(RuleBuilderTest, RefusesAnAddressOfTheWrongFamily) {
  RuleBuilder builder(NFPROTO_IPV4, "t", "c");
  EXPECT_THROW(builder.MatchAddress(false, IpPrefix::MustParse("fd00::/64")),
               std::invalid_argument);
}

}  // namespace
}  // namespace sluice::nft
