#include "common/sha256.h"

#include <gtest/gtest.h>

#include <string>

namespace sluice {
namespace {

std::string Hex(const Sha256Digest& d) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s;
  for (uint8_t b : d) {
    s += kDigits[b >> 4];
    s += kDigits[b & 15];
  }
  return s;
}

std::string Base32Of(std::string_view s) {
  return Base32(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

// FIPS 180-4 / NIST CSRC example vectors, and the padding boundaries (55, 56, 64 bytes).
TEST(Sha256Test, NistVectors) {
  EXPECT_EQ(Hex(Sha256("")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Hex(Sha256("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Hex(Sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(Hex(Sha256(std::string(1000000, 'a'))),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  EXPECT_EQ(Hex(Sha256(std::string(55, 'a'))),
            "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318");
  EXPECT_EQ(Hex(Sha256(std::string(56, 'a'))),
            "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a");
  EXPECT_EQ(Hex(Sha256(std::string(64, 'a'))),
            "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb");
}

// RFC 4648 section 10.
TEST(Sha256Test, Base32Vectors) {
  EXPECT_EQ(Base32Of(""), "");
  EXPECT_EQ(Base32Of("f"), "MY======");
  EXPECT_EQ(Base32Of("fo"), "MZXQ====");
  EXPECT_EQ(Base32Of("foo"), "MZXW6===");
  EXPECT_EQ(Base32Of("foob"), "MZXW6YQ=");
  EXPECT_EQ(Base32Of("fooba"), "MZXW6YTB");
  EXPECT_EQ(Base32Of("foobar"), "MZXW6YTBOI======");
}

}  // namespace
}  // namespace sluice
