#include "common/ip_address.h"

#include <gtest/gtest.h>

namespace sluice {
namespace {

TEST(IpAddress, ParsesAndPrintsCanonically) {
  EXPECT_EQ(IpAddress::MustParse("10.1.2.3").ToString(), "10.1.2.3");
  EXPECT_EQ(IpAddress::MustParse("2001:DB8:0:0:0:0:0:1").ToString(), "2001:db8::1");
  EXPECT_EQ(IpAddress::MustParse("::ffff:10.0.0.1").ToString(), "10.0.0.1");
  EXPECT_FALSE(IpAddress::Parse("10.1.2"));
  EXPECT_FALSE(IpAddress::Parse("10.1.2.3 "));
  EXPECT_FALSE(IpAddress::Parse(""));
  EXPECT_THROW(IpAddress::MustParse("nope"), std::invalid_argument);
}

TEST(IpAddress, StepsAcrossByteBoundaries) {
  EXPECT_EQ(IpAddress::MustParse("10.0.0.255").Next().ToString(), "10.0.1.0");
  EXPECT_EQ(IpAddress::MustParse("10.0.1.0").Prev().ToString(), "10.0.0.255");
  EXPECT_EQ(IpAddress::MustParse("255.255.255.255").Next().ToString(), "0.0.0.0");
  EXPECT_EQ(IpAddress::MustParse("fd00::ffff").Next().ToString(), "fd00::1:0");
  EXPECT_LT(IpAddress::MustParse("10.0.0.9"), IpAddress::MustParse("10.0.0.10"));
}

TEST(IpPrefix, NetworkMathBothFamilies) {
  auto p = IpPrefix::MustParse("10.244.1.77/24");
  EXPECT_EQ(p.Network().ToString(), "10.244.1.0/24");
  EXPECT_EQ(p.LastAddress().ToString(), "10.244.1.255");
  EXPECT_TRUE(p.Contains(IpAddress::MustParse("10.244.1.3")));
  EXPECT_FALSE(p.Contains(IpAddress::MustParse("10.244.2.3")));
  EXPECT_FALSE(p.Contains(IpAddress::MustParse("fd00::1")));
  auto q = IpPrefix::MustParse("10.244.0.0/22");
  EXPECT_TRUE(q.Overlaps(p));
  EXPECT_TRUE(p.Overlaps(q));
  EXPECT_FALSE(p.Overlaps(IpPrefix::MustParse("10.244.2.0/24")));
  auto v6 = IpPrefix::MustParse("fd00:10:244:1::5/64");
  EXPECT_EQ(v6.Network().ToString(), "fd00:10:244:1::/64");
  EXPECT_EQ(v6.LastAddress().ToString(), "fd00:10:244:1:ffff:ffff:ffff:ffff");
  EXPECT_EQ(IpPrefix::MustParse("10.0.0.0/13").LastAddress().ToString(), "10.7.255.255");
}

TEST(IpPrefix, RejectsBadText) {
  EXPECT_FALSE(IpPrefix::Parse("10.0.0.0"));
  EXPECT_FALSE(IpPrefix::Parse("10.0.0.0/33"));
  EXPECT_FALSE(IpPrefix::Parse("10.0.0.0/"));
  EXPECT_FALSE(IpPrefix::Parse("10.0.0.0/2x"));
  EXPECT_FALSE(IpPrefix::Parse("fd00::/129"));
}

}  // namespace
}  // namespace sluice
