// PodMasquerade without a kernel: object names (ours and the reference plugin's) and the
// messages each layout transaction is made of.
#include "dataplane/nft/pod_masquerade.h"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "dataplane/nft/netfilter_headers.h"
#include "dataplane/nft/reference_masquerade.h"

namespace sluice::nft {
namespace {

TEST(PodMasqueradeTest, SubnetChainNameIsShortStableAndPerNetworkAndSubnet) {
  const std::string name =
      PodMasquerade::SubnetChainName("mynet", IpPrefix::MustParse("10.99.0.0/24"));
  EXPECT_EQ(name, "m-18179f3057480490");  // sha512("mynet|10.99.0.0/24")[:16 hex]
  EXPECT_EQ(PodMasquerade::SubnetChainName("mynet", IpPrefix::MustParse("10.99.0.77/24")), name);
  EXPECT_NE(PodMasquerade::SubnetChainName("mynet", IpPrefix::MustParse("10.99.0.0/16")), name);
  EXPECT_NE(PodMasquerade::SubnetChainName("other", IpPrefix::MustParse("10.99.0.0/24")), name);
}

// containernetworking/plugins pkg/utils utils_test.go.
TEST(PodMasqueradeTest, ReferenceChainNameMatchesTheReferencePlugin) {
  EXPECT_EQ(ReferenceMasqueradeChain("test", "1234"), "CNI-2bbe0c48b91a7d1b8a6753a8");
  EXPECT_EQ(ReferenceMasqueradeChain("testalongnamethatdoesnotmakesense", "1234"),
            "CNI-374f33fe84ab0ed84dcdebe3");
}

TEST(PodMasqueradeTest, BaseLayoutIsOneTransactionWithAnExclusiveTable) {
  Batch batch;
  EXPECT_EQ(PodMasquerade::AppendBaseLayout(batch), 0u);
  const std::vector<std::string> expected = {
      "create table inet sluice_cni_masq",
      "add set inet sluice_cni_masq pods4",
      "add set inet sluice_cni_masq pods6",
      "add chain inet sluice_cni_masq postrouting",
      "add rule in chain inet sluice_cni_masq postrouting",
      "add rule in chain inet sluice_cni_masq postrouting",
  };
  EXPECT_EQ(batch.descriptions(), expected);
}

TEST(PodMasqueradeTest, SubnetChainIsOneTransactionWithAnExclusiveChain) {
  Batch batch;
  batch.AddTable(*MakeTable(NFPROTO_INET, "x"));
  EXPECT_EQ(PodMasquerade::AppendSubnetChain(batch, "mynet", IpPrefix::MustParse("10.99.0.0/24")),
            1u);
  const std::vector<std::string> expected = {
      "add table inet x",
      "create chain inet sluice_cni_masq m-18179f3057480490",
      "add rule in chain inet sluice_cni_masq m-18179f3057480490",
      "add rule in chain inet sluice_cni_masq m-18179f3057480490",
      "add rule in chain inet sluice_cni_masq m-18179f3057480490 "
      "\"net=mynet subnet=10.99.0.0/24\"",
  };
  EXPECT_EQ(batch.descriptions(), expected);
}

}  // namespace
}  // namespace sluice::nft
