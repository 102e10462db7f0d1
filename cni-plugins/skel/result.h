// The ADD result ("interfaces", "ips", "routes", "dns") as typed values, read from and written
// to any supported spec version.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/ip_address.h"

namespace sluice::cni {

struct Interface {
  std::string name;
  std::string mac;
  std::string sandbox;  // netns path; empty for host-side interfaces
  std::optional<int> mtu;          // 1.1.0+
  std::string socket_path;         // 1.1.0+
  std::string pci_id;              // 1.1.0+
  bool operator==(const Interface&) const = default;
};

struct IpConfig {
  IpPrefix address;  // address with the subnet's prefix length, host bits kept
  std::optional<IpAddress> gateway;
  std::optional<int> interface;  // index into Result::interfaces
  bool operator==(const IpConfig&) const = default;
};

struct Route {
  IpPrefix dst;
  std::optional<IpAddress> gw;
  std::optional<int> mtu, advmss, priority, table, scope;  // 1.1.0+
  bool operator==(const Route&) const = default;
};

struct Dns {
  std::vector<std::string> nameservers;
  std::string domain;
  std::vector<std::string> search;
  std::vector<std::string> options;
  bool empty() const {
    return nameservers.empty() && domain.empty() && search.empty() && options.empty();
  }
  bool operator==(const Dns&) const = default;
};

struct Result {
  std::vector<Interface> interfaces;
  std::vector<IpConfig> ips;
  std::vector<Route> routes;
  Dns dns;

  // Parses a result of any supported version; throws Error(kDecodeFailure) naming the field.
  static Result FromJson(const nlohmann::json& j);
  // Renders the result in the given spec version (e.g. "ips[].version" before 1.0.0).
  nlohmann::json ToJson(std::string_view cni_version) const;
  bool operator==(const Result&) const = default;
};

Dns DnsFromJson(const nlohmann::json& j, std::string_view where);
nlohmann::json DnsToJson(const Dns& dns);

}  // namespace sluice::cni
