#include "controlplane/kube/store.h"

#include <gtest/gtest.h>

#include <string>

namespace sluice::kube {
namespace {

using S = Store<std::string>;
using Kind = S::Change::Kind;

S::Item It(std::string key, std::string rv) {
  return {key, rv, std::make_shared<const std::string>(key + "@" + rv)};
}

std::string Describe(const std::vector<S::Change>& changes) {
  std::string out;
  for (const auto& c : changes) {
    out += c.kind == Kind::kAdd ? "+" : c.kind == Kind::kUpdate ? "~" : "-";
    out += c.key;
    if (c.old_object) out += " was " + *c.old_object;
    if (c.new_object) out += " now " + *c.new_object;
    out += "; ";
  }
  return out;
}

TEST(StoreTest, UpsertAddsThenUpdatesAndIgnoresReplays) {
  S s;
  auto c = s.Upsert(It("default/a", "1"));
  ASSERT_TRUE(c);
  EXPECT_EQ(c->kind, Kind::kAdd);
  EXPECT_FALSE(s.Upsert(It("default/a", "1")));  // the same event again: nothing
  c = s.Upsert(It("default/a", "2"));
  ASSERT_TRUE(c);
  EXPECT_EQ(c->kind, Kind::kUpdate);
  EXPECT_EQ(*c->old_object, "default/a@1");
  EXPECT_EQ(*c->new_object, "default/a@2");
  EXPECT_EQ(*s.Get("default/a"), "default/a@2");
  EXPECT_EQ(s.ResourceVersionOf("default/a"), "2");
}

TEST(StoreTest, DeleteOfUnknownKeyIsNothing) {
  S s;
  EXPECT_FALSE(s.Delete("default/x"));
  s.Upsert(It("default/x", "3"));
  auto c = s.Delete("default/x");
  ASSERT_TRUE(c);
  EXPECT_EQ(*c->old_object, "default/x@3");
  EXPECT_EQ(s.size(), 0u);
}

TEST(StoreTest, ReplaceEmitsExactlyTheDifference) {
  S s;
  s.Replace({It("ns/a", "1"), It("ns/b", "1"), It("ns/c", "1"), It("ns/e", "1")});
  auto changes = s.Replace({It("ns/b", "1"), It("ns/c", "5"), It("ns/d", "5"), It("ns/e", "1")});
  EXPECT_EQ(Describe(changes), "-ns/a was ns/a@1; ~ns/c was ns/c@1 now ns/c@5; +ns/d now ns/d@5; ");
  std::vector<std::string> keys;
  for (const auto& item : s.List()) keys.push_back(item.key + "@" + item.resource_version);
  EXPECT_EQ(keys, (std::vector<std::string>{"ns/b@1", "ns/c@5", "ns/d@5", "ns/e@1"}));
}

TEST(StoreTest, ReplaceFromEmptyAndToEmpty) {
  S s;
  EXPECT_EQ(Describe(s.Replace({It("b", "2"), It("a", "1")})), "+a now a@1; +b now b@2; ");
  EXPECT_EQ(Describe(s.Replace({})), "-a was a@1; -b was b@2; ");
  EXPECT_EQ(s.size(), 0u);
}

TEST(StoreTest, ReplaceKeepsUnchangedObjectIdentity) {
  S s;
  s.Replace({It("a", "1")});
  auto before = s.Get("a");
  s.Replace({It("a", "1")});
  EXPECT_EQ(s.Get("a").get(), before.get());
}

}  // namespace
}  // namespace sluice::kube
