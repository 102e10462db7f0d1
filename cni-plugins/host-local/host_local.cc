#include "cni-plugins/host-local/host_local.h"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <system_error>

#include "cni-plugins/host-local/allocator.h"
#include "cni-plugins/host-local/disk_store.h"
#include "cni-plugins/skel/config_reader.h"
#include "cni-plugins/skel/version.h"

namespace sluice::hostlocal {
namespace {

using cni::Error;
using nlohmann::json;

std::vector<RangeSet> ParseRangeSets(const json& list, const std::string& key) {
  std::vector<RangeSet> sets;
  for (const auto& set_json : list) {
    if (!set_json.is_array()) throw Error(cni::kDecodeFailure, key + ": each entry must be a list of ranges");
    RangeSet set;
    for (const auto& r : set_json) {
      if (!r.is_object()) throw Error(cni::kDecodeFailure, key + ": each range must be an object");
      set.ranges.push_back(MakeRange(cni::GetString(r, "subnet"), cni::GetString(r, "rangeStart"),
                                     cni::GetString(r, "rangeEnd"), cni::GetString(r, "gateway")));
    }
    sets.push_back(std::move(set));
  }
  return sets;
}

void AddRequested(std::vector<IpAddress>& out, const std::string& text, const std::string& source) {
  // Requests may come as plain addresses or as CIDRs ("10.0.0.5/24").
  std::string ip_part = text.substr(0, text.find('/'));
  auto ip = IpAddress::Parse(ip_part);
  if (!ip) throw Error(cni::kInvalidConfig, source + ": invalid IP address \"" + text + "\"");
  if (std::find(out.begin(), out.end(), *ip) == out.end()) out.push_back(*ip);
}

void AddRequestedList(std::vector<IpAddress>& out, const json* list, const std::string& source) {
  if (!list) return;
  for (const auto& v : *list) {
    if (!v.is_string()) throw Error(cni::kDecodeFailure, source + ": expected a list of strings");
    AddRequested(out, v.get<std::string>(), source);
  }
}

std::set<std::string> ValidIds(const std::set<cni::Attachment>& valid) {
  std::set<std::string> ids;
  for (const auto& a : valid) ids.insert(a.container_id);
  return ids;
}

DiskStore OpenStore(const IpamConfig& cfg, const cni::Request& req) {
  try {
    return DiskStore(cfg.data_dir, req.name);
  } catch (const std::system_error& e) {
    throw Error(cni::kIoFailure, e.what());
  }
}

}  // namespace

cni::Dns ParseResolvConf(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(cni::kInvalidConfig, "ipam.resolvConf: cannot read \"" + path + "\"");
  cni::Dns dns;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::string keyword;
    if (!(words >> keyword) || keyword[0] == '#' || keyword[0] == ';') continue;
    std::vector<std::string> rest;
    for (std::string w; words >> w;) rest.push_back(w);
    if (keyword == "nameserver" && !rest.empty()) {
      dns.nameservers.push_back(rest[0]);
    } else if (keyword == "domain" && !rest.empty()) {
      dns.domain = rest[0];
    } else if (keyword == "search") {
      dns.search = rest;
    } else if (keyword == "options") {
      dns.options.insert(dns.options.end(), rest.begin(), rest.end());
    }
  }
  return dns;
}

IpamConfig ParseIpamConfig(const cni::Request& req) {
  const json* ipam = cni::OptObject(req.config, "ipam");
  if (!ipam) throw Error(cni::kInvalidConfig, "IPAM config missing \"ipam\" key");
  IpamConfig cfg;
  // Sources of ranges, highest precedence first: runtimeConfig.ipRanges, the legacy single range
  // at the top of "ipam", then "ipam.ranges".
  if (const json* rt = cni::OptArray(req.runtime_config, "ipRanges")) {
    cfg.range_sets = ParseRangeSets(*rt, "runtimeConfig.ipRanges");
  }
  if (auto subnet = cni::OptString(*ipam, "subnet")) {
    RangeSet legacy;
    legacy.ranges.push_back(MakeRange(*subnet, cni::GetString(*ipam, "rangeStart"),
                                      cni::GetString(*ipam, "rangeEnd"),
                                      cni::GetString(*ipam, "gateway")));
    cfg.range_sets.push_back(std::move(legacy));
  }
  if (const json* ranges = cni::OptArray(*ipam, "ranges")) {
    auto sets = ParseRangeSets(*ranges, "ipam.ranges");
    cfg.range_sets.insert(cfg.range_sets.end(), sets.begin(), sets.end());
  }
  ValidateRangeSets(cfg.range_sets);
  if (cni::CompareVersions(req.cni_version, "0.3.0") < 0) {
    // Not reachable with the versions we accept; kept to state the rule.
    throw Error(cni::kIncompatibleVersion, "CNI version " + req.cni_version +
                                               " does not support more than 1 address per family");
  }

  if (const json* routes = cni::OptArray(*ipam, "routes")) {
    for (const auto& r : *routes) {
      cni::Route route;
      route.dst = cni::ParsePrefix(cni::GetString(r, "dst"), "ipam.routes[].dst");
      if (auto gw = cni::OptString(r, "gw")) route.gw = cni::ParseIp(*gw, "ipam.routes[].gw");
      cfg.routes.push_back(route);
    }
  }
  if (auto dir = cni::OptString(*ipam, "dataDir"); dir && !dir->empty()) cfg.data_dir = *dir;
  if (auto rc = cni::OptString(*ipam, "resolvConf"); rc && !rc->empty()) {
    cfg.dns = ParseResolvConf(*rc);
  }

  AddRequestedList(cfg.requested, cni::OptArray(req.runtime_config, "ips"), "runtimeConfig.ips");
  if (const json* args = cni::OptObject(req.config, "args")) {
    if (const json* cni_args = cni::OptObject(*args, "cni")) {
      AddRequestedList(cfg.requested, cni::OptArray(*cni_args, "ips"), "args.cni.ips");
    }
  }
  if (auto it = req.env.args.find("IP"); it != req.env.args.end()) {
    std::stringstream list(it->second);
    for (std::string one; std::getline(list, one, ',');) {
      if (!one.empty()) AddRequested(cfg.requested, one, "CNI_ARGS IP");
    }
  }
  return cfg;
}

cni::Result Add(const cni::Request& req) {
  IpamConfig cfg = ParseIpamConfig(req);
  DiskStore store = OpenStore(cfg, req);

  // Each requested address must belong to exactly one range set.
  std::vector<std::optional<IpAddress>> wanted(cfg.range_sets.size());
  for (const auto& ip : cfg.requested) {
    bool placed = false;
    for (size_t i = 0; i < cfg.range_sets.size(); ++i) {
      if (cfg.range_sets[i].RangeFor(ip)) {
        if (wanted[i]) {
          throw Error(cni::kInvalidConfig, "requested IPs " + wanted[i]->ToString() + " and " +
                                               ip.ToString() + " fall in the same range set");
        }
        wanted[i] = ip;
        placed = true;
        break;
      }
    }
    if (!placed) {
      throw Error(cni::kInvalidConfig, "failed to allocate all requested IPs: " + ip.ToString(),
                  "the address lies in none of the configured ranges");
    }
  }

  cni::Result result;
  std::vector<IpAddress> claimed;
  try {
    auto lock = store.Acquire();
    auto owned = store.FindOwned(req.env.container_id, req.env.ifname);
    for (size_t i = 0; i < cfg.range_sets.size(); ++i) {
      const RangeSet& set = cfg.range_sets[i];
      if (!wanted[i]) {
        for (const auto& ip : owned) {
          if (set.RangeFor(ip)) {
            throw Error(cni::kInternal,
                        ip.ToString() + " has been allocated to " + req.env.container_id +
                            ", duplicate allocation is not allowed",
                        "interface " + req.env.ifname + " already holds an address of range set " +
                            set.ToString());
          }
        }
      }
      Allocation a = Allocator(store, set, static_cast<int>(i))
                         .Allocate(req.env.container_id, req.env.ifname, wanted[i]);
      claimed.push_back(a.ip);
      result.ips.push_back({IpPrefix(a.ip, a.range->subnet.length()), a.range->gateway, {}});
    }
  } catch (...) {
    // Nothing half-made: give back what this ADD took before failing.
    auto lock = store.Acquire();
    for (const auto& r : store.List()) {
      if (std::find(claimed.begin(), claimed.end(), r.ip) != claimed.end()) store.Release(r);
    }
    throw;
  }
  result.routes = cfg.routes;
  result.dns = cfg.dns;
  return result;
}

void Del(const cni::Request& req) {
  IpamConfig cfg = ParseIpamConfig(req);
  DiskStore store = OpenStore(cfg, req);
  auto lock = store.Acquire();
  store.ReleaseOwned(req.env.container_id, req.env.ifname);
}

void Check(const cni::Request& req) {
  IpamConfig cfg = ParseIpamConfig(req);
  DiskStore store = OpenStore(cfg, req);
  auto lock = store.Acquire();
  auto owned = store.FindOwned(req.env.container_id, req.env.ifname);
  if (owned.empty()) {
    throw Error(cni::kInternal,
                "host-local: Failed to find address added by container " + req.env.container_id,
                "no reservation for interface " + req.env.ifname + " in " + store.dir());
  }
  // Every address in prevResult that lies in our ranges must be one of ours.
  if (req.prev_result) {
    for (const auto& ip : req.prev_result->ips) {
      const IpAddress& a = ip.address.address();
      bool ours = std::any_of(cfg.range_sets.begin(), cfg.range_sets.end(),
                              [&](const RangeSet& s) { return s.RangeFor(a) != nullptr; });
      if (ours && std::find(owned.begin(), owned.end(), a) == owned.end()) {
        throw Error(cni::kInternal, "host-local: address " + a.ToString() +
                                        " is not reserved for container " + req.env.container_id);
      }
    }
  }
}

void Gc(const cni::Request& req) {
  IpamConfig cfg = ParseIpamConfig(req);
  DiskStore store = OpenStore(cfg, req);
  auto lock = store.Acquire();
  store.RemoveStaleTemporaries();
  const auto ids = ValidIds(req.valid_attachments);
  std::string errors;
  for (const auto& r : store.List()) {
    bool valid = r.ifname.empty() ? ids.contains(r.container_id)
                                  : req.valid_attachments.contains({r.container_id, r.ifname});
    if (valid) continue;
    try {
      store.Release(r);
    } catch (const std::exception& e) {
      errors += std::string(errors.empty() ? "" : "; ") + e.what();
    }
  }
  if (!errors.empty()) throw Error(cni::kIoFailure, "GC could not release every address", errors);
}

void Status(const cni::Request& req) {
  IpamConfig cfg = ParseIpamConfig(req);
  DiskStore store = [&] {
    try {
      return DiskStore(cfg.data_dir, req.name);
    } catch (const std::system_error& e) {
      throw Error(cni::kNotAvailable, std::string("IPAM store unusable: ") + e.what());
    }
  }();
  auto reservations = store.List();
  for (const auto& set : cfg.range_sets) {
    uint64_t used = std::count_if(reservations.begin(), reservations.end(),
                                  [&](const Reservation& r) { return set.RangeFor(r.ip); });
    if (used >= set.Capacity()) {
      throw Error(cni::kNotAvailable, "no IP addresses available in range set: " + set.ToString());
    }
  }
}

cni::Plugin MakePlugin() {
  cni::Plugin p;
  p.about = "host-local IPAM plugin (Sluice)";
  p.known_args = {"IP"};
  p.add = Add;
  p.del = Del;
  p.check = Check;
  p.gc = Gc;
  p.status = Status;
  return p;
}

}  // namespace sluice::hostlocal
