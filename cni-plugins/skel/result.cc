#include "cni-plugins/skel/result.h"

#include "cni-plugins/skel/cni_error.h"
#include "cni-plugins/skel/config_reader.h"
#include "cni-plugins/skel/version.h"

namespace sluice::cni {
namespace {

using nlohmann::json;

std::vector<std::string> StringList(const json& obj, std::string_view key) {
  std::vector<std::string> out;
  if (const json* list = OptArray(obj, key)) {
    for (const auto& v : *list) {
      if (!v.is_string()) {
        throw Error(kDecodeFailure, "\"" + std::string(key) + "\": expected a list of strings");
      }
      out.push_back(v.get<std::string>());
    }
  }
  return out;
}

std::optional<int> OptSmallInt(const json& obj, std::string_view key) {
  auto v = OptInt(obj, key);
  if (!v) return std::nullopt;
  return static_cast<int>(*v);
}

}  // namespace

Dns DnsFromJson(const json& j, std::string_view where) {
  if (!j.is_object()) throw Error(kDecodeFailure, std::string(where) + ": expected an object");
  Dns dns;
  dns.nameservers = StringList(j, "nameservers");
  dns.domain = GetString(j, "domain");
  dns.search = StringList(j, "search");
  dns.options = StringList(j, "options");
  return dns;
}

json DnsToJson(const Dns& dns) {
  json j = json::object();
  if (!dns.nameservers.empty()) j["nameservers"] = dns.nameservers;
  if (!dns.domain.empty()) j["domain"] = dns.domain;
  if (!dns.search.empty()) j["search"] = dns.search;
  if (!dns.options.empty()) j["options"] = dns.options;
  return j;
}

Result Result::FromJson(const json& j) {
  if (!j.is_object()) throw Error(kDecodeFailure, "result: expected a JSON object");
  Result r;
  if (const json* ifaces = OptArray(j, "interfaces")) {
    for (const auto& i : *ifaces) {
      Interface iface;
      iface.name = GetString(i, "name");
      iface.mac = GetString(i, "mac");
      iface.sandbox = GetString(i, "sandbox");
      iface.mtu = OptSmallInt(i, "mtu");
      iface.socket_path = GetString(i, "socketPath");
      iface.pci_id = GetString(i, "pciID");
      r.interfaces.push_back(std::move(iface));
    }
  }
  if (const json* ips = OptArray(j, "ips")) {
    for (const auto& i : *ips) {
      IpConfig ip;
      auto address = OptString(i, "address");
      if (!address) throw Error(kDecodeFailure, "result ips[]: missing \"address\"");
      ip.address = ParsePrefix(*address, "ips[].address");
      if (auto gw = OptString(i, "gateway")) ip.gateway = ParseIp(*gw, "ips[].gateway");
      ip.interface = OptSmallInt(i, "interface");
      r.ips.push_back(ip);
    }
  }
  if (const json* routes = OptArray(j, "routes")) {
    for (const auto& rt : *routes) {
      Route route;
      auto dst = OptString(rt, "dst");
      if (!dst) throw Error(kDecodeFailure, "result routes[]: missing \"dst\"");
      route.dst = ParsePrefix(*dst, "routes[].dst");
      if (auto gw = OptString(rt, "gw")) route.gw = ParseIp(*gw, "routes[].gw");
      route.mtu = OptSmallInt(rt, "mtu");
      route.advmss = OptSmallInt(rt, "advmss");
      route.priority = OptSmallInt(rt, "priority");
      route.table = OptSmallInt(rt, "table");
      route.scope = OptSmallInt(rt, "scope");
      r.routes.push_back(route);
    }
  }
  if (const json* dns = OptObject(j, "dns")) r.dns = DnsFromJson(*dns, "result dns");
  return r;
}

json Result::ToJson(std::string_view cni_version) const {
  const bool pre_1_0 = CompareVersions(cni_version, "1.0.0") < 0;
  const bool v1_1 = VersionAtLeast(cni_version, "1.1.0");
  json j = json::object();
  j["cniVersion"] = cni_version;
  if (!interfaces.empty()) {
    json list = json::array();
    for (const auto& i : interfaces) {
      json o = {{"name", i.name}};
      if (!i.mac.empty()) o["mac"] = i.mac;
      if (!i.sandbox.empty()) o["sandbox"] = i.sandbox;
      if (v1_1) {
        if (i.mtu) o["mtu"] = *i.mtu;
        if (!i.socket_path.empty()) o["socketPath"] = i.socket_path;
        if (!i.pci_id.empty()) o["pciID"] = i.pci_id;
      }
      list.push_back(std::move(o));
    }
    j["interfaces"] = std::move(list);
  }
  if (!ips.empty()) {
    json list = json::array();
    for (const auto& ip : ips) {
      json o = json::object();
      if (pre_1_0) o["version"] = ip.address.address().is_v4() ? "4" : "6";
      if (ip.interface) o["interface"] = *ip.interface;
      o["address"] = ip.address.ToString();
      if (ip.gateway) o["gateway"] = ip.gateway->ToString();
      list.push_back(std::move(o));
    }
    j["ips"] = std::move(list);
  }
  if (!routes.empty()) {
    json list = json::array();
    for (const auto& r : routes) {
      json o = {{"dst", r.dst.ToString()}};
      if (r.gw) o["gw"] = r.gw->ToString();
      if (v1_1) {
        if (r.mtu) o["mtu"] = *r.mtu;
        if (r.advmss) o["advmss"] = *r.advmss;
        if (r.priority) o["priority"] = *r.priority;
        if (r.table) o["table"] = *r.table;
        if (r.scope) o["scope"] = *r.scope;
      }
      list.push_back(std::move(o));
    }
    j["routes"] = std::move(list);
  }
  j["dns"] = DnsToJson(dns);
  return j;
}

}  // namespace sluice::cni
