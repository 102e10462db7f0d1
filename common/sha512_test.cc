#include "common/sha512.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>

namespace sluice {
namespace {

// FIPS 180-4 / NIST CSRC example vectors.
TEST(Sha512Test, NistVectors) {
  EXPECT_EQ(Sha512::Hex(""),
            "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce"
            "47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e");
  EXPECT_EQ(Sha512::Hex("abc"),
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
            "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f");
  EXPECT_EQ(Sha512::Hex("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmno"
                        "ijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu"),
            "8e959b75dae313da8cf4f72814fc143f8f7779c6eb9f7fa17299aeadb6889018"
            "501d289e4900f7e4331b99dec4b5433ac7d329eeb6dd26545e96e55b874be909");
}

TEST(Sha512Test, MillionAsFedInUnevenPieces) {
  Sha512 h;
  std::string chunk(997, 'a');
  size_t left = 1000000;
  while (left > 0) {
    size_t n = std::min(left, chunk.size());
    h.Update(chunk.data(), n);
    left -= n;
  }
  Sha512::Digest d = h.Finish();
  EXPECT_EQ(d[0], 0xe7);
  EXPECT_EQ(d[1], 0x18);
  EXPECT_EQ(d[63], 0x9b);
  // The object is reusable after Finish.
  h.Update("abc");
  EXPECT_EQ(h.Finish(), Sha512::Hash("abc"));
}

// Lengths around the padding boundaries (112 and 128 bytes); expected values from sha512sum.
TEST(Sha512Test, PaddingBoundaries) {
  struct Case {
    size_t length;
    const char* hex_prefix;
  };
  const Case cases[] = {
      {111, "9a2a120825c2319867758ec277924f6f"}, {112, "a3722b515ef40c910f2419f6e0da8ca5"},
      {127, "1d5a8893e7b7ed83d485d26f88cfb846"}, {128, "e2e22f8422b54b06e35c3ea30a383d1d"},
      {129, "19015483ea99fa74728fd7b13adba6b7"}, {239, "805c40517b44cef414a06c632b4ee9c2"},
      {240, "3e05caa7e0fddab685e6052bd902c316"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(Sha512::Hex(std::string(c.length, 'x')).substr(0, 32), c.hex_prefix)
        << "length " << c.length;
  }
}

// containernetworking/plugins pkg/utils FormatChainName("test", "1234") ==
// "CNI-2bbe0c48b91a7d1b8a6753a8".
TEST(Sha512Test, CniChainNameVector) {
  EXPECT_EQ("CNI-" + Sha512::Hex("test1234").substr(0, 24), "CNI-2bbe0c48b91a7d1b8a6753a8");
}

}  // namespace
}  // namespace sluice
