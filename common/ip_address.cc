#include "common/ip_address.h"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cstring>

namespace sluice {

IpAddress IpAddress::V4(const in_addr& a) {
  IpAddress ip;
  ip.family_ = IpFamily::kV4;
  std::memcpy(ip.bytes_.data(), &a, 4);
  return ip;
}

IpAddress IpAddress::V6(const in6_addr& a) {
  IpAddress ip;
  ip.family_ = IpFamily::kV6;
  std::memcpy(ip.bytes_.data(), &a, 16);
  return ip;
}

std::optional<IpAddress> IpAddress::Parse(std::string_view text) {
  if (text.empty() || text.size() > INET6_ADDRSTRLEN) return std::nullopt;
  char buf[INET6_ADDRSTRLEN + 1];
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  in_addr a4{};
  if (inet_pton(AF_INET, buf, &a4) == 1) return V4(a4);
  in6_addr a6{};
  if (inet_pton(AF_INET6, buf, &a6) == 1) {
    // Go prints IPv4-mapped IPv6 addresses as IPv4; so do we, to match store file names.
    if (IN6_IS_ADDR_V4MAPPED(&a6)) {
      in_addr mapped{};
      std::memcpy(&mapped, &a6.s6_addr[12], 4);
      return V4(mapped);
    }
    return V6(a6);
  }
  return std::nullopt;
}

IpAddress IpAddress::MustParse(std::string_view text) {
  auto ip = Parse(text);
  if (!ip) throw std::invalid_argument("invalid IP address \"" + std::string(text) + "\"");
  return *ip;
}

in_addr IpAddress::v4() const {
  in_addr a{};
  std::memcpy(&a, bytes_.data(), 4);
  return a;
}

in6_addr IpAddress::v6() const {
  in6_addr a{};
  std::memcpy(&a, bytes_.data(), 16);
  return a;
}

std::string IpAddress::ToString() const {
  char buf[INET6_ADDRSTRLEN];
  inet_ntop(af(), bytes_.data(), buf, sizeof(buf));
  return buf;
}

IpAddress IpAddress::Next() const {
  IpAddress r = *this;
  for (int i = static_cast<int>(size()) - 1; i >= 0; --i) {
    if (++r.bytes_[i] != 0) break;
  }
  return r;
}

IpAddress IpAddress::Prev() const {
  IpAddress r = *this;
  for (int i = static_cast<int>(size()) - 1; i >= 0; --i) {
    if (r.bytes_[i]-- != 0) break;
  }
  return r;
}

IpPrefix::IpPrefix(IpAddress address, int length) : address_(address), length_(length) {
  if (length < 0 || length > address.bits()) {
    throw std::invalid_argument("invalid prefix length " + std::to_string(length) + " for " +
                                address.ToString());
  }
}

std::optional<IpPrefix> IpPrefix::Parse(std::string_view text) {
  auto slash = text.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  auto ip = IpAddress::Parse(text.substr(0, slash));
  if (!ip) return std::nullopt;
  auto len_text = text.substr(slash + 1);
  int len = -1;
  auto [ptr, ec] = std::from_chars(len_text.data(), len_text.data() + len_text.size(), len);
  if (ec != std::errc() || ptr != len_text.data() + len_text.size() || len_text.empty()) {
    return std::nullopt;
  }
  // An IPv4-mapped IPv6 prefix with a /96+ length is returned as IPv4, like Go does.
  if (ip->is_v4() && text.substr(0, slash).find(':') != std::string_view::npos) len -= 96;
  if (len < 0 || len > ip->bits()) return std::nullopt;
  return IpPrefix(*ip, len);
}

IpPrefix IpPrefix::MustParse(std::string_view text) {
  auto p = Parse(text);
  if (!p) throw std::invalid_argument("invalid CIDR \"" + std::string(text) + "\"");
  return *p;
}

IpAddress IpPrefix::NetworkAddress() const {
  IpAddress r = address_;
  auto* b = const_cast<uint8_t*>(r.data());
  for (size_t i = 0; i < r.size(); ++i) {
    int bit_start = static_cast<int>(i) * 8;
    if (bit_start >= length_) {
      b[i] = 0;
    } else if (bit_start + 8 > length_) {
      b[i] &= static_cast<uint8_t>(0xff << (8 - (length_ - bit_start)));
    }
  }
  return r;
}

IpAddress IpPrefix::LastAddress() const {
  IpAddress r = address_;
  auto* b = const_cast<uint8_t*>(r.data());
  for (size_t i = 0; i < r.size(); ++i) {
    int bit_start = static_cast<int>(i) * 8;
    if (bit_start >= length_) {
      b[i] = 0xff;
    } else if (bit_start + 8 > length_) {
      b[i] |= static_cast<uint8_t>(0xff >> (length_ - bit_start));
    }
  }
  return r;
}

IpPrefix IpPrefix::Network() const { return IpPrefix(NetworkAddress(), length_); }

bool IpPrefix::Contains(const IpAddress& a) const {
  if (a.family() != family()) return false;
  return IpPrefix(a, length_).NetworkAddress() == NetworkAddress();
}

bool IpPrefix::Overlaps(const IpPrefix& other) const {
  if (other.family() != family()) return false;
  return Contains(other.NetworkAddress()) || other.Contains(NetworkAddress());
}

std::string IpPrefix::ToString() const {
  return address_.ToString() + "/" + std::to_string(length_);
}

}  // namespace sluice
