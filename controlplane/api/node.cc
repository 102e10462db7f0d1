#include "controlplane/api/node.h"

#include "controlplane/api/field_reader.h"

namespace sluice::api {
namespace {

constexpr EnumName<NodeAddressType> kAddressTypes[] = {
    {"Hostname", NodeAddressType::kHostname},       {"InternalIP", NodeAddressType::kInternalIp},
    {"ExternalIP", NodeAddressType::kExternalIp},   {"InternalDNS", NodeAddressType::kInternalDns},
    {"ExternalDNS", NodeAddressType::kExternalDns},
};

NodeAddressType AddressTypeOf(std::string_view text) {
  for (const auto& n : kAddressTypes) {
    if (n.text == text) return n.value;
  }
  return NodeAddressType::kOther;
}

void ReadPodCidrs(FieldReader& r, JsonObject spec, Node& n) {
  std::vector<std::string> list = r.StringList(spec, "podCIDRs");
  {
    auto scope = r.Enter("podCIDRs");
    for (size_t i = 0; i < list.size(); ++i) {
      auto p = ParseApiCidr(list[i]);
      if (!p) r.FailAt(i, "invalid CIDR " + FieldReader::Quote(list[i]));
      n.pod_cidrs.push_back(*p);
    }
  }
  auto single = r.String(spec, "podCIDR");
  if (!single || single->empty()) return;
  IpPrefix p = r.Cidr(*single, "podCIDR");
  if (n.pod_cidrs.empty()) {
    n.pod_cidrs.push_back(p);
  } else if (n.pod_cidrs[0] != p) {
    r.Fail("podCIDR", FieldReader::Quote(*single) + " differs from spec.podCIDRs[0] " +
                          FieldReader::Quote(list[0]));
  }
}

}  // namespace

std::string_view ToString(NodeAddressType t) {
  for (const auto& n : kAddressTypes) {
    if (n.value == t) return n.text;
  }
  return "Other";
}

std::string_view ToString(ConditionStatus s) {
  switch (s) {
    case ConditionStatus::kTrue:
      return "True";
    case ConditionStatus::kFalse:
      return "False";
    default:
      return "Unknown";
  }
}

std::string_view Node::Zone() const { return metadata.Label(kZoneLabel).value_or(""); }

std::vector<IpAddress> Node::NodeIps() const {
  std::vector<IpAddress> out;
  for (auto want : {NodeAddressType::kInternalIp, NodeAddressType::kExternalIp}) {
    for (const auto& a : addresses) {
      if (a.type != want || !a.ip) continue;
      bool have_family = false;
      for (const auto& o : out) have_family |= o.family() == a.ip->family();
      if (!have_family) out.push_back(*a.ip);
    }
  }
  return out;
}

Node ParseNode(JsonElement json) {
  FieldReader r("Node", ObjectIdentity(json));
  JsonObject object = CheckTypeMeta(r, json, "Node", "v1");
  Node n;
  n.metadata = ReadObjectMeta(r, object);
  if (auto spec = r.Object(object, "spec")) {
    auto scope = r.Enter("spec");
    ReadPodCidrs(r, *spec, n);
    n.unschedulable = r.Bool(*spec, "unschedulable").value_or(false);
    if (auto taints = r.Array(*spec, "taints")) {
      auto list = r.Enter("taints");
      size_t i = 0;
      for (JsonElement t : *taints) {
        if (!t.is_object()) r.FailAt(i, "expected an object, got " + FieldReader::Describe(t));
        auto item = r.Enter(i++);
        if (auto key = r.String(t.get_object().value_unsafe(), "key"))
          n.taint_keys.emplace_back(*key);
      }
    }
  }
  if (auto status = r.Object(object, "status")) {
    auto scope = r.Enter("status");
    if (auto addresses = r.Array(*status, "addresses")) {
      auto list = r.Enter("addresses");
      size_t i = 0;
      for (JsonElement address : *addresses) {
        if (!address.is_object())
          r.FailAt(i, "expected an object, got " + FieldReader::Describe(address));
        auto item = r.Enter(i++);
        JsonObject a = address.get_object().value_unsafe();
        NodeAddress na;
        if (auto v = r.String(a, "type")) na.type_name = *v;
        na.type = AddressTypeOf(na.type_name);
        if (auto v = r.String(a, "address")) na.address = *v;
        if (na.type == NodeAddressType::kInternalIp || na.type == NodeAddressType::kExternalIp) {
          na.ip = r.Ip(na.address, "address");
        }
        n.addresses.push_back(std::move(na));
      }
    }
    if (auto conditions = r.Array(*status, "conditions")) {
      auto list = r.Enter("conditions");
      size_t i = 0;
      for (JsonElement condition : *conditions) {
        if (!condition.is_object())
          r.FailAt(i, "expected an object, got " + FieldReader::Describe(condition));
        auto item = r.Enter(i++);
        JsonObject c = condition.get_object().value_unsafe();
        auto type = r.String(c, "type");
        auto st = r.String(c, "status");
        if (!type || *type != "Ready") continue;
        n.ready = !st              ? ConditionStatus::kUnknown
                  : *st == "True"  ? ConditionStatus::kTrue
                  : *st == "False" ? ConditionStatus::kFalse
                                   : ConditionStatus::kUnknown;
      }
    }
  }
  return n;
}

Node ParseNode(const nlohmann::json& object) {
  return ParseNlohmann(object, [](JsonElement e) { return ParseNode(e); });
}

void Validate(const Node& n) {
  auto fail = [&](std::string field, std::string reason) {
    throw ValidationError("Node", n.metadata.Key(), std::move(field), std::move(reason));
  };
  if (n.metadata.name.empty()) fail("metadata.name", "required");
  if (n.pod_cidrs.size() > 2) {
    fail("spec.podCIDRs",
         "at most two CIDRs, one per family; got " + std::to_string(n.pod_cidrs.size()));
  }
  if (n.pod_cidrs.size() == 2 && n.pod_cidrs[0].family() == n.pod_cidrs[1].family()) {
    fail("spec.podCIDRs[1]",
         n.pod_cidrs[1].ToString() + " is of the same family as " + n.pod_cidrs[0].ToString());
  }
}

}  // namespace sluice::api
