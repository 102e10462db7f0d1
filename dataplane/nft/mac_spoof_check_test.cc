// MacSpoofCheck without a kernel: MAC text and the layout transaction.
#include "dataplane/nft/mac_spoof_check.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace sluice::nft {
namespace {

TEST(MacSpoofCheckTest, ParsesAndFormatsMacs) {
  EXPECT_EQ(FormatMac(*ParseMac("02:AB:cd:00:00:ff")), "02:ab:cd:00:00:ff");
  EXPECT_EQ(FormatMac(*ParseMac("02-ab-cd-00-00-ff")), "02:ab:cd:00:00:ff");
  EXPECT_FALSE(ParseMac("02:ab:cd:00:00"));
  EXPECT_FALSE(ParseMac("02:ab:cd:00:00:fg"));
  EXPECT_FALSE(ParseMac("02:ab:cd:00:00:ff:"));
}

TEST(MacSpoofCheckTest, BaseLayoutIsOneTransactionWithAnExclusiveTable) {
  Batch batch;
  EXPECT_EQ(MacSpoofCheck::AppendBaseLayout(batch), 0u);
  const std::vector<std::string> expected = {
      "create table bridge sluice_cni_macspoof",
      "add set bridge sluice_cni_macspoof ports",
      "add set bridge sluice_cni_macspoof allowed",
      "add chain bridge sluice_cni_macspoof prerouting",
      "add rule in chain bridge sluice_cni_macspoof prerouting",
  };
  EXPECT_EQ(batch.descriptions(), expected);
}

}  // namespace
}  // namespace sluice::nft
