// The core layer against the kernel: transactions, per-message errors, dumps, element splitting.

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "dataplane/nft/batch.h"
#include "dataplane/nft/dump.h"
#include "dataplane/nft/netfilter_headers.h"
#include "dataplane/nft/netns_testing.h"
#include "dataplane/nft/nft_error.h"
#include "dataplane/nft/nft_socket.h"
#include "dataplane/nft/objects.h"
#include "dataplane/nft/rule_builder.h"

namespace sluice::nft {
namespace {

using testing::NftText;

constexpr uint32_t kTypeIpv4Addr = 7;

SetPtr Ipv4Set(std::string_view table, std::string_view name) {
  SetPtr set = MakeSetRef(NFPROTO_INET, table, name);
  nftnl_set_set_u32(set.get(), NFTNL_SET_FLAGS, 0);
  nftnl_set_set_u32(set.get(), NFTNL_SET_KEY_TYPE, kTypeIpv4Addr);
  nftnl_set_set_u32(set.get(), NFTNL_SET_KEY_LEN, 4);
  return set;
}

TEST(BatchKernelTest, CreatesTableChainRuleInOneTransaction) {
  SLUICE_IN_FRESH_NETNS([] {
    NftSocket socket;
    Batch batch;
    batch.AddTable(*MakeTable(NFPROTO_INET, "t"), IfExists::kFail);
    batch.AddChain(*MakeChain(NFPROTO_INET, "t", "c"));
    batch.AppendRule(*RuleBuilder(NFPROTO_INET, "t", "c")
                          .MatchAddress(false, IpPrefix::MustParse("10.1.0.0/16"))
                          .Verdict(NF_ACCEPT)
                          .Comment("hello")
                          .Build());
    EXPECT_EQ(batch.message_count(), 3u);
    batch.Send(socket);

    std::string text = NftText();
    EXPECT_NE(text.find("ip daddr 10.1.0.0/16 accept comment \"hello\""), std::string::npos)
        << text;
    ASSERT_EQ(ListTables(socket, NFPROTO_INET).size(), 1u);
    ASSERT_EQ(ListChains(socket, NFPROTO_INET, "t").size(), 1u);
    std::vector<RulePtr> rules = ListRules(socket, NFPROTO_INET, "t", "c");
    ASSERT_EQ(rules.size(), 1u);
    EXPECT_EQ(GetComment(*rules[0]), "hello");
    EXPECT_NE(GetChain(socket, NFPROTO_INET, "t", "c"), nullptr);
  });
}

TEST(BatchKernelTest, FailureNamesTheMessageAndUndoesTheBatch) {
  SLUICE_IN_FRESH_NETNS([] {
    NftSocket socket;
    {
      Batch batch;
      batch.AddTable(*MakeTable(NFPROTO_INET, "t"), IfExists::kFail);
      batch.Send(socket);
    }
    Batch batch;
    batch.AddTable(*MakeTable(NFPROTO_INET, "other"));
    size_t bad = batch.AddChain(*MakeChain(NFPROTO_INET, "missing", "c"));
    try {
      batch.Send(socket);
      ADD_FAILURE() << "expected ENOENT";
    } catch (const NftError& e) {
      EXPECT_EQ(e.error(), ENOENT);
      EXPECT_EQ(e.message_index(), bad);
      EXPECT_NE(std::string(e.what()).find("add chain inet missing c"), std::string::npos)
          << e.what();
      EXPECT_NE(std::string(e.what()).find(std::strerror(ENOENT)), std::string::npos) << e.what();
    }
    // All or nothing: table "other" was not created.
    EXPECT_EQ(ListTables(socket, NFPROTO_INET).size(), 1u);

    Batch again;
    size_t table = again.AddTable(*MakeTable(NFPROTO_INET, "t"), IfExists::kFail);
    try {
      again.Send(socket);
      ADD_FAILURE() << "expected EEXIST";
    } catch (const NftError& e) {
      EXPECT_EQ(e.error(), EEXIST);
      EXPECT_EQ(e.message_index(), table);
      EXPECT_NE(std::string(e.what()).find("create table inet t"), std::string::npos) << e.what();
    }
    // The socket is still usable after an error.
    Batch fine;
    fine.AddTable(*MakeTable(NFPROTO_INET, "t"));
    fine.Send(socket);
  });
}

TEST(BatchKernelTest, MissingObjectsReadAsEmpty) {
  SLUICE_IN_FRESH_NETNS([] {
    NftSocket socket;
    EXPECT_TRUE(ListTables(socket, NFPROTO_UNSPEC).empty());
    EXPECT_TRUE(ListChains(socket, NFPROTO_IPV4, "nat").empty());
    EXPECT_TRUE(ListRules(socket, NFPROTO_IPV4, "nat", "POSTROUTING").empty());
    EXPECT_EQ(GetChain(socket, NFPROTO_IPV4, "nat", "POSTROUTING"), nullptr);
    EXPECT_EQ(ListSetElems(socket, NFPROTO_INET, "t", "s"), nullptr);
    const uint8_t key[4] = {10, 0, 0, 1};
    EXPECT_EQ(GetSetElem(socket, NFPROTO_INET, "t", "s", key), nullptr);
  });
}

// 20000 commented elements are far above one 64 KiB attribute: the batch splits them.
TEST(BatchKernelTest, LargeElementListsAreSplitAcrossMessages) {
  SLUICE_IN_FRESH_NETNS([] {
    NftSocket socket;
    Batch batch;
    batch.AddTable(*MakeTable(NFPROTO_INET, "t"));
    batch.AddSet(*Ipv4Set("t", "s"));
    SetPtr elems = MakeSetRef(NFPROTO_INET, "t", "s");
    constexpr int kCount = 20000;
    for (int i = 0; i < kCount; ++i) {
      const uint8_t key[4] = {10, static_cast<uint8_t>(i >> 16), static_cast<uint8_t>(i >> 8),
                              static_cast<uint8_t>(i)};
      SetElemPtr elem = MakeSetElem(key);
      SetComment(*elem, "net=n id=" + std::to_string(i) + " if=eth0");
      nftnl_set_elem_add(elems.get(), elem.release());
    }
    batch.AddSetElems(*elems, IfExists::kFail);
    EXPECT_GT(batch.message_count(), 3u);  // table, set, and several element messages
    batch.Send(socket);

    SetPtr read = ListSetElems(socket, NFPROTO_INET, "t", "s");
    ASSERT_NE(read, nullptr);
    std::vector<nftnl_set_elem*> got = SetElems(*read);
    EXPECT_EQ(got.size(), static_cast<size_t>(kCount));

    const uint8_t key[4] = {10, 0, 1, 2};
    SetPtr one = GetSetElem(socket, NFPROTO_INET, "t", "s", key);
    ASSERT_NE(one, nullptr);
    EXPECT_EQ(GetComment(*SetElems(*one).front()), "net=n id=258 if=eth0");
  });
}

}  // namespace
}  // namespace sluice::nft
