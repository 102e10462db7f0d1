// IPv4/IPv6 addresses and prefixes as values: parsed once, compared and stepped without strings.
#pragma once

#include <netinet/in.h>

#include <array>
#include <compare>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace sluice {

enum class IpFamily : uint8_t { kV4 = 4, kV6 = 6 };

class IpAddress {
 public:
  IpAddress() = default;
  static IpAddress V4(const in_addr& a);
  static IpAddress V6(const in6_addr& a);
  // Accepts dotted IPv4 and any RFC 4291 IPv6 text; nullopt otherwise.
  static std::optional<IpAddress> Parse(std::string_view text);
  // Like Parse, but throws std::invalid_argument naming the text.
  static IpAddress MustParse(std::string_view text);

  IpFamily family() const { return family_; }
  bool is_v4() const { return family_ == IpFamily::kV4; }
  int bits() const { return is_v4() ? 32 : 128; }
  int af() const { return is_v4() ? AF_INET : AF_INET6; }
  // Network-order bytes: 4 for IPv4, 16 for IPv6.
  const uint8_t* data() const { return bytes_.data(); }
  size_t size() const { return is_v4() ? 4 : 16; }
  in_addr v4() const;
  in6_addr v6() const;

  // Canonical text (dotted quad, RFC 5952 compressed IPv6), as Go's net.IP.String() prints it.
  std::string ToString() const;

  // Address +/- 1 with wrap-around inside the family.
  IpAddress Next() const;
  IpAddress Prev() const;

  auto operator<=>(const IpAddress&) const = default;

 private:
  IpFamily family_ = IpFamily::kV4;
  std::array<uint8_t, 16> bytes_{};  // IPv4 uses the first 4
};

class IpPrefix {
 public:
  IpPrefix() = default;
  IpPrefix(IpAddress address, int length);
  // "10.0.0.1/24" keeps the host bits; use Network() to drop them.
  static std::optional<IpPrefix> Parse(std::string_view text);
  static IpPrefix MustParse(std::string_view text);

  const IpAddress& address() const { return address_; }
  int length() const { return length_; }
  IpFamily family() const { return address_.family(); }

  IpPrefix Network() const;          // host bits cleared
  IpAddress NetworkAddress() const;  // first address
  IpAddress LastAddress() const;     // all host bits set
  bool Contains(const IpAddress& a) const;
  bool Overlaps(const IpPrefix& other) const;
  std::string ToString() const;

  auto operator<=>(const IpPrefix&) const = default;

 private:
  IpAddress address_;
  int length_ = 0;
};

}  // namespace sluice
