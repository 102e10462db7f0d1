#include "common/boxed.h"

#include <gtest/gtest.h>

#include <array>
#include <string>

namespace sluice {
namespace {

TEST(Boxed, BehavesLikeAnOptionalWithValueSemantics) {
  Boxed<std::string> a;
  EXPECT_FALSE(a);
  EXPECT_EQ(a, std::nullopt);
  a = std::string("x");
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(*a, "x");
  EXPECT_EQ(a->size(), 1u);

  Boxed<std::string> b = a;  // a copy, not a share
  *b = "y";
  EXPECT_EQ(*a, "x");
  EXPECT_NE(a, b);
  b = a;
  EXPECT_EQ(a, b);
  EXPECT_EQ(a, std::string("x"));

  Boxed<std::string> moved = std::move(b);
  EXPECT_EQ(*moved, "x");
  moved.reset();
  EXPECT_EQ(moved, Boxed<std::string>());
  EXPECT_THROW(moved.value(), std::bad_optional_access);
  EXPECT_EQ(moved.emplace(3, 'z'), "zzz");
  EXPECT_LE(sizeof(Boxed<std::array<char, 128>>), sizeof(void*));
}

}  // namespace
}  // namespace sluice
