// SHA-512 (FIPS 180-4). The CNI reference plugins name their iptables chains after a SHA-512
// prefix, so we need the exact function; we also use it for short, stable nft object names.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace sluice {

class Sha512 {
 public:
  static constexpr size_t kDigestSize = 64;
  using Digest = std::array<uint8_t, kDigestSize>;

  Sha512();
  void Update(const void* data, size_t size);
  void Update(std::string_view data) { Update(data.data(), data.size()); }
  // Pads, returns the digest and leaves the object ready for a new message.
  Digest Finish();

  static Digest Hash(std::string_view data);
  // Lower-case hex of the digest (128 characters), as Go's fmt "%x" prints it.
  static std::string Hex(std::string_view data);

 private:
  void Reset();
  void Compress(const uint8_t* block);

  std::array<uint64_t, 8> state_;
  std::array<uint8_t, 128> block_;
  size_t block_used_ = 0;
  uint64_t total_bytes_ = 0;  // messages above 2^61 bytes are out of scope
};

}  // namespace sluice
