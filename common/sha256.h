// SHA-256 (FIPS 180-4), one-shot. kube-proxy names its iptables chains after a base32 prefix of
// a SHA-256 digest, so the iptables layout needs the exact function (common/sha512.h is the
// SHA-512 the CNI chain names use).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace sluice {

using Sha256Digest = std::array<uint8_t, 32>;

Sha256Digest Sha256(std::string_view data);

// RFC 4648 base32, standard alphabet, with '=' padding (Go's base32.StdEncoding).
std::string Base32(const uint8_t* data, size_t size);

}  // namespace sluice
