#include "proxy/backends/iptables/layout.h"

#include <algorithm>
#include <cstdio>
#include <exception>
#include <iterator>
#include <optional>
#include <set>
#include <stdexcept>
#include <thread>
#include <utility>

#include "common/sha256.h"

namespace sluice::proxy::iptables {
namespace {

using state::TrafficVerdict;

constexpr std::string_view kNodePortsJumpComment =
    "kubernetes service nodeports; NOTE: this must be the last rule in this chain";

std::string_view ProtoName(api::Protocol p) {
  switch (p) {
    case api::Protocol::kTcp:
      return "tcp";
    case api::Protocol::kUdp:
      return "udp";
    case api::Protocol::kSctp:
      return "sctp";
  }
  return "tcp";
}

std::string HashName(std::string_view prefix, std::string_view input) {
  const Sha256Digest digest = Sha256(input);
  return std::string(prefix) + Base32(digest.data(), digest.size()).substr(0, 16);
}

std::string Hex(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%#x", v);
  return buf;
}

bool IsLoopback(const IpAddress& ip) {
  if (ip.is_v4()) return ip.data()[0] == 127;
  static const IpAddress kV6Loopback = IpAddress::MustParse("::1");
  return ip == kV6Loopback;
}

const IpPrefix* CidrFor(const LayoutOptions& o, IpFamily f) {
  for (const auto& c : o.cluster_cidrs) {
    if (c.family() == f) return &c;
  }
  return nullptr;
}

// One restore line, "-A CHAIN" and its matches and target. Comments with spaces are quoted, as
// iptables-restore reads them (and as kube-proxy writes them).
class Line {
 public:
  explicit Line(std::string_view chain) : text_("-A ") { text_ += chain; }
  Line& Add(std::string_view arg) {
    text_ += ' ';
    text_ += arg;
    return *this;
  }
  Line& Comment(std::string_view comment) {
    Add("-m comment --comment");
    if (comment.find(' ') == std::string_view::npos) return Add(comment);
    text_ += " \"";
    text_ += comment;
    text_ += '"';
    return *this;
  }
  std::string Jump(std::string_view target) { return Add("-j").Add(target).Take(); }
  std::string Take() { return std::move(text_); }

 private:
  std::string text_;
};

// Builds the rules of one service port of one family.
class PortRenderer {
 public:
  PortRenderer(const state::ServicePortState& p, const LayoutOptions& o,
               const state::NodeInfo& node, bool with_chains, ServiceRules& out)
      : p_(p),
        o_(o),
        node_(node),
        with_chains_(with_chains),
        out_(out),
        name_(p.name.ToString()),
        proto_(ProtoName(p.name.protocol)),
        hash_(PortProtoHash(name_, proto_)),
        svc_("KUBE-SVC-" + hash_),
        svl_("KUBE-SVL-" + hash_),
        ext_("KUBE-EXT-" + hash_),
        fw_("KUBE-FW-" + hash_) {}

  // The port's own chains, in the order Render() adds them.
  void AppendChainNames(std::vector<std::string>& names) const {
    const Plan plan = MakePlan();
    if (plan.uses_cluster_chain) names.push_back(svc_);
    if (plan.uses_local_chain) names.push_back(svl_);
    if (plan.uses_ext) names.push_back(ext_);
    if (plan.uses_fw) names.push_back(fw_);
    for (const auto& e : plan.endpoints) names.push_back(EndpointChainName(p_.name, e));
  }

  void Render() {
    const Plan plan = MakePlan();
    const bool has_endpoints = p_.has_any_endpoints;
    const bool has_internal = p_.internal_verdict == TrafficVerdict::kForward;
    const bool has_external = p_.external_verdict == TrafficVerdict::kForward;
    const bool uses_cluster_chain = plan.uses_cluster_chain;
    const bool uses_local_chain = plan.uses_local_chain;
    const std::string& internal_chain = p_.internal_policy_local ? svl_ : svc_;
    const std::string& external_policy_chain = p_.external_policy_local ? svl_ : svc_;
    const bool uses_ext = plan.uses_ext;
    const std::vector<IpPrefix>& ranges = plan.ranges;
    const bool uses_fw = plan.uses_fw;
    const std::string& lb_chain = uses_fw ? fw_ : ext_;

    // Destinations: nat jumps for those with endpoints, filter REJECT/DROP for the others.
    const std::string port = std::to_string(p_.port);
    if (has_internal) {
      Shared(SharedChain::kNatServices, Line(kServicesChain)
                                            .Comment(name_ + " cluster IP")
                                            .Add(Dest(p_.cluster_ip, port))
                                            .Jump(internal_chain));
    } else {
      Shared(SharedChain::kFilterServices, Line(kServicesChain)
                                               .Comment(NoEndpointsComment(p_.internal_verdict))
                                               .Add(Dest(p_.cluster_ip, port))
                                               .Jump(Target(p_.internal_verdict)));
    }
    for (const IpAddress& ip : p_.external_ips) {
      if (has_endpoints) {
        Shared(SharedChain::kNatServices,
               Line(kServicesChain).Comment(name_ + " external IP").Add(Dest(ip, port)).Jump(ext_));
      }
      if (!has_external) BlockExternal(Dest(ip, port));
    }
    for (const IpAddress& ip : p_.load_balancer_ips) {
      if (has_endpoints) {
        Shared(SharedChain::kNatServices, Line(kServicesChain)
                                              .Comment(name_ + " loadbalancer IP")
                                              .Add(Dest(ip, port))
                                              .Jump(lb_chain));
      }
      if (uses_fw) {
        // Whatever KUBE-FW- did not send on is still addressed to the LoadBalancer IP here.
        Shared(SharedChain::kFilterProxyFirewall,
               Line(kProxyFirewallChain)
                   .Comment(name_ + " traffic not accepted by " + fw_)
                   .Add(Dest(ip, port))
                   .Jump("DROP"));
      }
    }
    if (!has_external) {
      for (const IpAddress& ip : p_.load_balancer_ips) {
        BlockExternal(Dest(ip, port));
      }
    }
    if (p_.node_port != 0) {
      const std::string node_port = std::to_string(p_.node_port);
      if (has_endpoints) {
        Shared(SharedChain::kNatNodePorts, Line(kNodePortsChain)
                                               .Comment(name_)
                                               .Add(Proto())
                                               .Add("--dport " + node_port)
                                               .Jump(ext_));
      }
      if (!has_external) {
        BlockExternal("-m addrtype --dst-type LOCAL " + Proto() + " --dport " + node_port);
      }
    }
    if (p_.health_check_node_port != 0) {
      Shared(SharedChain::kFilterNodePorts,
             Line(kNodePortsChain)
                 .Comment(name_ + " health check node port")
                 .Add("-m tcp -p tcp --dport " + std::to_string(p_.health_check_node_port))
                 .Jump("ACCEPT"));
    }

    if (!with_chains_) return;
    const std::vector<state::Endpoint>& endpoints = plan.endpoints;
    std::vector<std::string> endpoint_chains;
    for (const auto& e : endpoints) endpoint_chains.push_back(EndpointChainName(p_.name, e));
    sorted_endpoints_ = &endpoints;
    endpoint_chains_ = &endpoint_chains;
    if (uses_cluster_chain) AddChain(svc_);
    if (uses_local_chain) AddChain(svl_);
    if (uses_ext) AddChain(ext_);
    if (uses_fw) AddChain(fw_);
    for (const auto& c : endpoint_chains) AddChain(c);

    const IpPrefix* cidr = CidrFor(o_, p_.family);
    if (has_internal) {
      // Off-cluster clients of a ClusterIP (a route to the service range via this node) are
      // masqueraded: the endpoint may be on another node.
      Line masq(internal_chain);
      masq.Comment(name_ + " cluster IP").Add(Dest(p_.cluster_ip, port));
      if (o_.masquerade_all) {
        Rules(internal_chain).push_back(masq.Jump(kMarkMasqChain));
      } else if (cidr != nullptr) {
        Rules(internal_chain).push_back(masq.Add("! -s " + cidr->ToString()).Jump(kMarkMasqChain));
      }
    }
    if (uses_ext) {
      auto& rules = Rules(ext_);
      const std::string dests = name_ + " external destinations";
      if (!p_.external_policy_local) {
        rules.push_back(Line(ext_).Comment("masquerade traffic for " + dests).Jump(kMarkMasqChain));
      } else if (uses_cluster_chain) {
        // Pods and the node itself reach external destinations as if through an outside load
        // balancer: any endpoint, policy ignored (the node's traffic masqueraded, its source
        // being the destination's address).
        if (cidr != nullptr) {
          rules.push_back(Line(ext_)
                              .Comment("pod traffic for " + dests)
                              .Add("-s " + cidr->ToString())
                              .Jump(svc_));
        }
        rules.push_back(Line(ext_)
                            .Comment("masquerade LOCAL traffic for " + dests)
                            .Add("-m addrtype --src-type LOCAL")
                            .Jump(kMarkMasqChain));
        rules.push_back(Line(ext_)
                            .Comment("route LOCAL traffic for " + dests)
                            .Add("-m addrtype --src-type LOCAL")
                            .Jump(svc_));
      }
      if (has_external) rules.push_back(Line(ext_).Jump(external_policy_chain));
    }
    if (uses_fw) {
      auto& rules = Rules(fw_);
      bool allow_from_node = false;
      for (const auto& r : ranges) {
        rules.push_back(
            Line(fw_).Comment(name_ + " loadbalancer IP").Add("-s " + r.ToString()).Jump(ext_));
        for (const auto& ip : node_.node_ips) allow_from_node |= r.Contains(ip);
      }
      // A node reaching a LoadBalancer IP it holds itself comes from that address.
      if (allow_from_node) {
        for (const auto& ip : p_.load_balancer_ips) {
          rules.push_back(
              Line(fw_).Comment(name_ + " loadbalancer IP").Add("-s " + ip.ToString()).Jump(ext_));
        }
      }
      rules.push_back(
          Line(fw_)
              .Comment("other traffic to " + name_ + " will be dropped by KUBE-PROXY-FIREWALL")
              .Take());
    }
    if (uses_cluster_chain) Select(svc_, p_.cluster_endpoints);
    if (uses_local_chain) Select(svl_, p_.local_endpoints);
    for (size_t i = 0; i < endpoints.size(); ++i) {
      const auto& sep = endpoint_chains[i];
      auto& rules = Rules(sep);
      // Hairpin: an endpoint reaching itself through the service must see another source.
      Line hairpin(sep);
      EndpointComment(hairpin, name_);
      rules.push_back(hairpin.Add("-s " + endpoints[i].ip.ToString()).Jump(kMarkMasqChain));
      Line dnat(sep);
      EndpointComment(dnat, name_);
      if (p_.affinity_timeout_seconds != 0) dnat.Add("-m recent --name " + sep + " --set");
      rules.push_back(dnat.Add(Proto()).Jump("DNAT --to-destination " + endpoints[i].ToString()));
    }
  }

 private:
  // Which chains the port has.
  struct Plan {
    // Each endpoint list only where a policy uses it (kube-proxy's UsesClusterEndpoints and
    // UsesLocalEndpoints); NodeState leaves the unused one empty already.
    bool uses_cluster_chain = false;
    bool uses_local_chain = false;
    // The EXT chain exists whenever anything does: under policy Local its short-circuit rules
    // serve pods and the node even when this node has no endpoint.
    bool uses_ext = false;
    bool uses_fw = false;
    std::vector<IpPrefix> ranges;  // loadBalancerSourceRanges of the port's family
    // Every endpoint a used list holds gets a KUBE-SEP- chain, sorted, once.
    std::vector<state::Endpoint> endpoints;
  };
  Plan MakePlan() const {
    Plan plan;
    const bool has_endpoints = p_.has_any_endpoints;
    plan.uses_cluster_chain =
        !p_.cluster_endpoints.empty() && (!p_.internal_policy_local || p_.externally_accessible());
    plan.uses_local_chain =
        !p_.local_endpoints.empty() &&
        (p_.internal_policy_local || (p_.external_policy_local && p_.externally_accessible()));
    plan.uses_ext = has_endpoints && p_.externally_accessible();
    for (const auto& r : p_.load_balancer_source_ranges) {
      if (r.family() == p_.family) plan.ranges.push_back(r);
    }
    plan.uses_fw = has_endpoints && !p_.load_balancer_ips.empty() && !plan.ranges.empty();
    if (plan.uses_cluster_chain) plan.endpoints = p_.cluster_endpoints;
    if (plan.uses_local_chain) {
      plan.endpoints.insert(plan.endpoints.end(), p_.local_endpoints.begin(),
                            p_.local_endpoints.end());
    }
    auto key = [](const state::Endpoint& e) { return std::make_pair(e.ip, e.port); };
    std::sort(plan.endpoints.begin(), plan.endpoints.end(),
              [&](const auto& a, const auto& b) { return key(a) < key(b); });
    plan.endpoints.erase(
        std::unique(plan.endpoints.begin(), plan.endpoints.end(),
                    [&](const auto& a, const auto& b) { return key(a) == key(b); }),
        plan.endpoints.end());
    return plan;
  }

  std::string Proto() const { return "-m " + std::string(proto_) + " -p " + std::string(proto_); }
  std::string Dest(const IpAddress& ip, const std::string& port) const {
    return Proto() + " -d " + ip.ToString() + " --dport " + port;
  }
  // kube-proxy's large-cluster mode: the per-endpoint rules carry no comment (in the legacy
  // kernel tables a comment costs 256 bytes a rule, per CPU).
  void EndpointComment(Line& line, std::string_view comment) const {
    if (!o_.large_cluster) line.Comment(comment);
  }
  std::string NoEndpointsComment(TrafficVerdict v) const {
    return name_ + (v == TrafficVerdict::kDrop ? " has no local endpoints" : " has no endpoints");
  }
  static std::string_view Target(TrafficVerdict v) {
    return v == TrafficVerdict::kDrop ? "DROP" : "REJECT";
  }
  void BlockExternal(const std::string& matches) {
    Shared(SharedChain::kFilterExternalServices,
           Line(kExternalServicesChain)
               .Comment(NoEndpointsComment(p_.external_verdict))
               .Add(matches)
               .Jump(Target(p_.external_verdict)));
  }
  void Shared(SharedChain chain, std::string line) {
    out_.shared[static_cast<size_t>(chain)].push_back(std::move(line));
  }
  void AddChain(const std::string& name) {
    index_.emplace_back(name, out_.chains.size());
    out_.chains.push_back(Chain{.name = name, .rules = {}});
  }
  std::vector<std::string>& Rules(const std::string& chain) {
    for (const auto& [name, i] : index_) {
      if (name == chain) return out_.chains[i].rules;
    }
    throw std::logic_error("iptables layout: rule for undeclared chain " + chain);
  }

  // Rules in `chain` sending the packet to one of `endpoints`: a remembered client to its
  // endpoint (ClientIP affinity), else each endpoint in turn with probability 1/remaining, so
  // each is picked with probability 1/n; the last rule takes what is left.
  void Select(const std::string& chain, const std::vector<state::Endpoint>& endpoints) {
    auto& rules = Rules(chain);
    if (p_.affinity_timeout_seconds != 0) {
      for (const auto& e : endpoints) {
        const std::string& sep = EndpointChain(e);
        Line line(chain);
        EndpointComment(line, name_ + " -> " + e.ToString());
        rules.push_back(line.Add("-m recent --name " + sep + " --rcheck --seconds " +
                                 std::to_string(p_.affinity_timeout_seconds) + " --reap")
                            .Jump(sep));
      }
    }
    for (size_t i = 0; i < endpoints.size(); ++i) {
      Line line(chain);
      EndpointComment(line, name_ + " -> " + endpoints[i].ToString());
      if (i + 1 < endpoints.size()) {
        line.Add("-m statistic --mode random --probability " + Probability(endpoints.size() - i));
      }
      rules.push_back(line.Jump(EndpointChain(endpoints[i])));
    }
  }

  // The KUBE-SEP- chain of one of the plan's endpoints (named once, in Render).
  const std::string& EndpointChain(const state::Endpoint& e) const {
    auto key = [](const state::Endpoint& x) { return std::make_pair(x.ip, x.port); };
    auto it = std::lower_bound(sorted_endpoints_->begin(), sorted_endpoints_->end(), e,
                               [&](const auto& a, const auto& b) { return key(a) < key(b); });
    if (it == sorted_endpoints_->end() || key(*it) != key(e)) {
      throw std::logic_error("iptables layout: no chain for endpoint " + e.ToString());
    }
    return (*endpoint_chains_)[static_cast<size_t>(it - sorted_endpoints_->begin())];
  }

  const state::ServicePortState& p_;
  const LayoutOptions& o_;
  const state::NodeInfo& node_;
  const bool with_chains_;
  ServiceRules& out_;
  const std::string name_;
  const std::string_view proto_;
  const std::string hash_;
  const std::string svc_, svl_, ext_, fw_;
  std::vector<std::pair<std::string, size_t>> index_;  // this port's chains in out_.chains
  // During Render: the plan's endpoints (sorted) and their chain names.
  const std::vector<state::Endpoint>* sorted_endpoints_ = nullptr;
  const std::vector<std::string>* endpoint_chains_ = nullptr;
};

ServiceRules Render(const state::ServiceState& service, IpFamily family, const LayoutOptions& o,
                    const state::NodeInfo& node, bool with_chains) {
  ServiceRules out;
  for (const auto& port : service.ports) {
    if (port.family == family) PortRenderer(port, o, node, with_chains, out).Render();
  }
  return out;
}

// "-I CHAIN spec..." restore lines for the jumps of `table`, arguments with spaces quoted.
std::vector<std::string> JumpLines(std::span<const JumpRule> jumps, std::string_view table) {
  std::vector<std::string> out;
  for (const JumpRule& j : jumps) {
    if (j.table != table) continue;
    std::string line = "-I " + j.chain;
    for (const auto& a : j.spec) {
      line += ' ';
      if (a.find(' ') != std::string::npos) {
        line.append("\"").append(a).append("\"");
      } else {
        line += a;
      }
    }
    out.push_back(std::move(line));
  }
  return out;
}

// How much text is handed to the sink at a time.
constexpr size_t kSinkChunk = 1 << 20;

// Restore text on its way to a sink, handed over a megabyte at a time (so that the tool reads
// the first part while the rest is written) or when Send() says so.
class TextOut {
 public:
  explicit TextOut(const RestoreSink& sink) : sink_(sink) { out_.reserve(kSinkChunk + 4096); }
  void Raw(std::string_view s) {
    out_ += s;
    Flush();
  }
  void Line(std::string_view l) {
    out_ += l;
    out_ += '\n';
    Flush();
  }
  void Lines(const std::vector<std::string>& v) {
    for (const auto& l : v) Line(l);
  }
  void Declare(std::string_view chain) {
    out_ += ':';
    out_ += chain;
    out_ += " - [0:0]\n";
    Flush();
  }
  void Send() {
    if (out_.empty()) return;
    sink_(out_);
    out_.clear();
  }

 private:
  void Flush() {
    if (out_.size() >= kSinkChunk) Send();
  }
  const RestoreSink& sink_;
  std::string out_;
};

// The rules of the static nat chains, which only a full sync writes.
std::vector<Chain> StaticNatChains(const LayoutOptions& o) {
  const std::string mark = Hex(o.masquerade_mark);
  Chain postrouting{std::string(kPostroutingChain), {}};
  postrouting.rules.push_back("-A KUBE-POSTROUTING -m mark ! --mark " + mark + "/" + mark +
                              " -j RETURN");
  // Cleared so that a packet traversing the stack again is not masqueraded twice.
  postrouting.rules.push_back("-A KUBE-POSTROUTING -j MARK --xor-mark " + mark);
  postrouting.rules.push_back(Line(kPostroutingChain)
                                  .Comment("kubernetes service traffic requiring SNAT")
                                  .Jump("MASQUERADE --random-fully"));
  Chain mark_masq{std::string(kMarkMasqChain), {"-A KUBE-MARK-MASQ -j MARK --or-mark " + mark}};
  return {std::move(postrouting), std::move(mark_masq)};
}

// The NodePort dispatch comes last in nat KUBE-SERVICES: a ClusterIP or external IP rule must
// win over it for addresses that are also local.
void AppendNodePortDispatch(std::vector<std::string>& nat_services, IpFamily family,
                            const LayoutOptions& o) {
  const bool v4 = family == IpFamily::kV4;
  const bool localhost = v4 && o.localhost_nodeports;
  if (o.nodeports_on_all_local_addresses) {
    Line l(kServicesChain);
    l.Comment(kNodePortsJumpComment).Add("-m addrtype --dst-type LOCAL");
    if (!v4) l.Add("! -d ::1/128");
    if (v4 && !localhost) l.Add("! -d 127.0.0.0/8");
    nat_services.push_back(l.Jump(kNodePortsChain));
    return;
  }
  for (const auto& ip : o.nodeport_addresses) {
    if (ip.family() != family || (IsLoopback(ip) && !localhost)) continue;
    nat_services.push_back(Line(kServicesChain)
                               .Comment(kNodePortsJumpComment)
                               .Add("-d " + ip.ToString())
                               .Jump(kNodePortsChain));
  }
}

// The shared chains' rules for one text, and which of them it writes. Without a state known
// for the text's options, node and family (full syncs, a first partial sync, changed options),
// every Service is rendered and every shared chain written, as kube-proxy does. With one, only
// the changed Services are rendered (the others' rules are the state's) and only the shared
// chains whose rules change are written. A state given ends as the text leaves the chains.
class SharedCollector {
 public:
  SharedCollector(SharedChainState* state, bool full, IpFamily family, const LayoutOptions& o,
                  const state::NodeInfo& node)
      : state_(state),
        family_(family),
        o_(o),
        cached_(state != nullptr && !full && state->known && state->family == family &&
                SameRules(state->options, o) && state->node == node) {
    if (state_ != nullptr && !cached_) {
      *state_ = SharedChainState{.known = false, .family = family, .options = o, .node = node};
    }
    write_.fill(!cached_);
  }

  // Whether only the changed Services are rendered (and the shared chains written decided once
  // they are).
  bool cached() const { return cached_; }

  // A rendered Service's rules, Services in key order. When cached(), also each changed Service
  // that is gone (no rules).
  void Add(const std::string& key, SharedChainRules rules) {
    const bool none = std::all_of(rules.begin(), rules.end(),
                                  [](const std::vector<std::string>& r) { return r.empty(); });
    if (cached_) {
      auto it = state_->services.find(key);
      static const SharedChainRules kNone;
      const SharedChainRules& before = it == state_->services.end() ? kNone : it->second;
      for (size_t i = 0; i < kSharedChainCount; ++i) write_[i] = write_[i] || before[i] != rules[i];
      if (none) {
        if (it != state_->services.end()) state_->services.erase(it);
      } else if (it == state_->services.end()) {
        state_->services.emplace(key, std::move(rules));
      } else {
        it->second = std::move(rules);
      }
      return;
    }
    for (size_t i = 0; i < kSharedChainCount; ++i) {
      if (state_ != nullptr) {
        rules_[i].insert(rules_[i].end(), rules[i].begin(), rules[i].end());
      } else {
        std::move(rules[i].begin(), rules[i].end(), std::back_inserter(rules_[i]));
      }
    }
    if (state_ != nullptr && !none) {
      state_->services.emplace_hint(state_->services.end(), key, std::move(rules));
    }
  }

  // After the last Add: the rules of the chains written, nat KUBE-SERVICES ending with the
  // NodePort dispatch.
  void Finish() {
    if (cached_ && std::find(write_.begin(), write_.end(), true) != write_.end()) {
      for (const auto& [key, rules] : state_->services) {
        for (size_t i = 0; i < kSharedChainCount; ++i) {
          if (write_[i]) rules_[i].insert(rules_[i].end(), rules[i].begin(), rules[i].end());
        }
      }
    }
    AppendNodePortDispatch(rules_[Index(SharedChain::kNatServices)], family_, o_);
    if (state_ != nullptr) state_->known = true;
  }

  // Whether shared chain `c` is written (when cached(), known after Finish()), and its rules.
  bool Write(SharedChain c) const { return write_[Index(c)]; }
  const std::vector<std::string>& Rules(SharedChain c) const { return rules_[Index(c)]; }

 private:
  static size_t Index(SharedChain c) { return static_cast<size_t>(c); }
  // Whether Services render the same rules under `a` and `b` (the sections do not matter).
  static bool SameRules(LayoutOptions a, const LayoutOptions& b) {
    a.nat_section_chains = b.nat_section_chains;
    return a == b;
  }
  SharedChainState* state_;
  const IpFamily family_;
  const LayoutOptions& o_;
  const bool cached_;
  std::array<bool, kSharedChainCount> write_{};
  SharedChainRules rules_;
};

// `deleted` sorted and without duplicates, plus (full syncs) the service chains among
// `existing` that no Service wants (`wanted` sorted).
void SettleDeleted(bool full, std::span<const std::string> existing,
                   std::span<const std::string> wanted, std::vector<std::string>& deleted) {
  if (full) {
    for (const auto& c : existing) {
      if (IsServiceChain(c) && !std::binary_search(wanted.begin(), wanted.end(), c)) {
        deleted.push_back(c);
      }
    }
  }
  std::sort(deleted.begin(), deleted.end());
  deleted.erase(std::unique(deleted.begin(), deleted.end()), deleted.end());
}

// The filter section, after every Service is rendered.
// Left out when it would change nothing (a partial sync whose filter chains are as they were).
void WriteFilter(TextOut& w, IpFamily family, const LayoutOptions& o,
                 const SharedCollector& shared, bool full, std::span<const JumpRule> jumps) {
  const bool localhost = family == IpFamily::kV4 && o.localhost_nodeports;
  const std::string mark = Hex(o.masquerade_mark);
  const std::pair<SharedChain, std::string_view> chains[] = {
      {SharedChain::kFilterServices, kServicesChain},
      {SharedChain::kFilterExternalServices, kExternalServicesChain},
      {SharedChain::kFilterNodePorts, kNodePortsChain},
      {SharedChain::kFilterProxyFirewall, kProxyFirewallChain}};
  std::vector<std::pair<SharedChain, std::string_view>> written;
  for (const auto& c : chains) {
    if (shared.Write(c.first)) written.push_back(c);
  }
  const std::vector<std::string> jump_lines = JumpLines(jumps, "filter");
  if (!full && written.empty() && jump_lines.empty()) return;
  w.Raw("*filter\n");
  for (const auto& c : written) w.Declare(c.second);
  if (full) {
    w.Declare(kForwardChain);
    if (localhost) w.Declare(kFirewallChain);
  }
  for (const auto& c : written) w.Lines(shared.Rules(c.first));
  if (full) {
    // INVALID packets would otherwise reach a pod un-DNATed (or reset a connection) when
    // conntrack cannot follow them.
    w.Line("-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP");
    w.Line(Line(kForwardChain)
               .Comment("kubernetes forwarding rules")
               .Add("-m mark --mark " + mark + "/" + mark)
               .Jump("ACCEPT"));
    w.Line(Line(kForwardChain)
               .Comment("kubernetes forwarding conntrack rule")
               .Add("-m conntrack --ctstate RELATED,ESTABLISHED")
               .Jump("ACCEPT"));
    if (localhost) {
      // route_localnet lets 127.0.0.0/8 arrive from outside: only DNATed NodePort traffic may.
      w.Line(Line(kFirewallChain)
                 .Comment("block incoming localnet connections")
                 .Add(
                     "-d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate "
                     "RELATED,ESTABLISHED,DNAT")
                 .Jump("DROP"));
    }
  }
  w.Lines(jump_lines);
  w.Raw("COMMIT\n");
}

// A nat chain to write: its name and rules (held elsewhere).
struct Filled {
  std::string_view name;
  const std::vector<std::string>* rules;
};

// Declarations in reverse name order, then the rules in name order. Both tools keep the chains
// a section names in lists sorted by name, and iptables-nft-restore 1.8.9 inserts every name a
// line mentions (its chain, its jump target) by walking its list from the smallest: declared
// largest first, each declaration stops at the head. Measured against iptables-save's order
// (ascending declarations): iptables-nft-restore 0.72x at 1,000 Services, 0.67x at 3,000;
// iptables-legacy-restore 0.78x at 1,000, 0.88x at 10,000. Filling the chains in name order
// (rather than Service by Service) makes iptables-legacy-restore about 15% faster at 10,000.
void WriteDeclarations(TextOut& w, std::vector<std::string_view> chains) {
  std::sort(chains.begin(), chains.end(), std::greater<>());
  for (std::string_view c : chains) w.Declare(c);
}
void WriteRules(TextOut& w, std::vector<Filled> chains) {
  std::sort(chains.begin(), chains.end(),
            [](const Filled& a, const Filled& b) { return a.name < b.name; });
  for (const Filled& c : chains) w.Lines(*c.rules);
}

// The Services whose own chains a text writes; none given: every one.
using Rewritten = std::set<std::string, std::less<>>;

// Calls f(key, service, write_chains) for each Service a text renders, in key order: every
// Service, or with `shared.cached()` the `rewritten` ones only (those still there).
template <typename F>
void ForEachRendered(const state::NodeState& st, const Rewritten* rewritten,
                     const SharedCollector& shared, F&& f) {
  if (rewritten != nullptr && shared.cached()) {
    for (const auto& key : *rewritten) {
      if (auto it = st.services.find(key); it != st.services.end()) f(key, *it->second, true);
    }
    return;
  }
  for (const auto& [key, service] : st.services) {
    f(key, *service, rewritten == nullptr || rewritten->contains(key));
  }
}

// The restore text, nat first, in one nat section. `rewritten` says which Services' chains are
// written; `full` adds the static chains and deletes the service chains among
// `existing` that no Service wants; `shared` renders the Services and gathers the shared chains
// (see SharedCollector).
//
// A pipeline, so that the tool is busy from the start: another thread renders the rules while
// this one lists the nat chains' names (much cheaper than rendering) and hands their declarations
// to the sink (and so to the tool, which takes a while over each one); the rules follow, chain by
// chain in name order; the filter section, which needs every Service rendered, last. (When
// unchanged shared chains are left out, which of them are written is known only once every
// Service is rendered: their declarations follow the others then.)
void RestoreTextOneSection(const state::NodeState& st, IpFamily family, const LayoutOptions& o,
                           const Rewritten* rewritten, std::vector<std::string> deleted, bool full,
                           std::span<const std::string> existing,
                           std::span<const JumpRule> jumps, SharedCollector& shared,
                           TextOut& w) {
  // The rules, rendered on another thread meanwhile.
  std::vector<Chain> chains;
  std::exception_ptr render_error;
  std::thread renderer([&] {
    try {
      ForEachRendered(st, rewritten, shared, [&](const std::string& key,
                                                 const state::ServiceState& service,
                                                 bool write_chains) {
        ServiceRules r = Render(service, family, o, st.node, write_chains);
        shared.Add(key, std::move(r.shared));
        if (write_chains) std::move(r.chains.begin(), r.chains.end(), std::back_inserter(chains));
      });
    } catch (...) {
      render_error = std::current_exception();
    }
  });
  struct Join {
    std::thread& t;
    ~Join() {
      if (t.joinable()) t.join();
    }
  } join{renderer};

  std::vector<std::string> names;
  ForEachRendered(st, rewritten, shared,
                  [&](const std::string&, const state::ServiceState& service, bool write_chains) {
                    if (!write_chains) return;
                    for (const auto& port : service.ports) {
                      if (port.family != family) continue;
                      ServiceRules unused;
                      PortRenderer(port, o, st.node, true, unused).AppendChainNames(names);
                    }
                  });
  std::sort(names.begin(), names.end());
  SettleDeleted(full, existing, names, deleted);
  const std::vector<Chain> static_chains = full ? StaticNatChains(o) : std::vector<Chain>{};

  // Unless cached(), both shared chains are written: declared with the others.
  bool write_services = !shared.cached();
  bool write_nodeports = !shared.cached();
  std::vector<std::string_view> declared;
  declared.reserve(names.size() + deleted.size() + 4);
  if (write_services) declared.push_back(kServicesChain);
  if (write_nodeports) declared.push_back(kNodePortsChain);
  for (const auto& c : names) declared.push_back(c);
  for (const auto& c : deleted) declared.push_back(c);
  for (const auto& c : static_chains) declared.push_back(c.name);
  bool nat_section = !declared.empty();
  if (nat_section) {
    w.Raw("*nat\n");
    WriteDeclarations(w, std::move(declared));
    w.Send();  // the tool has work while the rendering ends
  }

  renderer.join();
  if (render_error) std::rethrow_exception(render_error);
  shared.Finish();
  if (shared.cached()) {
    write_services = shared.Write(SharedChain::kNatServices);
    write_nodeports = shared.Write(SharedChain::kNatNodePorts);
    std::vector<std::string_view> more;
    if (write_services) more.push_back(kServicesChain);
    if (write_nodeports) more.push_back(kNodePortsChain);
    if (!more.empty() && !nat_section) w.Raw("*nat\n");
    nat_section = nat_section || !more.empty();
    WriteDeclarations(w, std::move(more));
  }
  const std::vector<std::string> jump_lines = JumpLines(jumps, "nat");  // full syncs only
  std::sort(chains.begin(), chains.end(),
            [](const Chain& a, const Chain& b) { return a.name < b.name; });
  if (chains.size() != names.size() ||
      !std::equal(chains.begin(), chains.end(), names.begin(),
                  [](const Chain& c, const std::string& n) { return c.name == n; })) {
    throw std::logic_error("iptables layout: the rendered chains are not the declared ones");
  }
  if (nat_section) {
    std::vector<Filled> nat;
    nat.reserve(chains.size() + 4);
    if (write_services) nat.push_back({kServicesChain, &shared.Rules(SharedChain::kNatServices)});
    if (write_nodeports) {
      nat.push_back({kNodePortsChain, &shared.Rules(SharedChain::kNatNodePorts)});
    }
    for (const auto& c : chains) nat.push_back({c.name, &c.rules});
    for (const auto& c : static_chains) nat.push_back({c.name, &c.rules});
    WriteRules(w, std::move(nat));
    w.Lines(jump_lines);
    for (const auto& c : deleted) w.Line("-X " + c);
    w.Raw("COMMIT\n");
  }
  WriteFilter(w, family, o, shared, full, jumps);
}

// The same text with the nat table in several sections (LayoutOptions::nat_section_chains), for
// iptables-nft-restore 1.8.9, whose time is quadratic in the chains one section names (see
// WriteDeclarations): 10,000 Services of 10 endpoints (110,000 chains) take 150 to 210 s in one
// section, 9.5 s in sections of about 1,000 chains. Each section is a transaction of its own,
// so they are ordered for traffic to always find whole chains: the static chains first, then
// the Services (all chains of one Service in one section, KUBE-SVC- and KUBE-SEP- alike), then
// the shared chains pointing at them, the jumps from the built-in chains and the deletions.
// More deletions than a section takes (thousands of Services gone at once) go in sections of
// their own after that: first all the stale chains flushed (so that none points at another),
// then deleted. A section the kernel refuses leaves the ones before it applied: each Service
// either old or new, nothing pointing at a chain that is gone.
//
// Rendered Service by Service as the sections go out: the tool parses one while the next is
// rendered. Unchanged shared chains left out (`shared`), a section with nothing in it is too.
void RestoreTextSections(const state::NodeState& st, IpFamily family, const LayoutOptions& o,
                         const Rewritten* rewritten, std::vector<std::string> deleted, bool full,
                         std::span<const std::string> existing, std::span<const JumpRule> jumps,
                         SharedCollector& shared, TextOut& w) {
  std::vector<Chain> group = full ? StaticNatChains(o) : std::vector<Chain>{};
  std::vector<std::string> names;  // of every chain written, for the stale ones
  auto write_group = [&](std::vector<Filled> extra, std::span<const std::string> deleted_chains,
                         bool last) {
    std::vector<std::string_view> declared;
    std::vector<Filled> filled = std::move(extra);
    for (const auto& f : filled) declared.push_back(f.name);
    for (const auto& c : group) {
      declared.push_back(c.name);
      filled.push_back({c.name, &c.rules});
    }
    for (const auto& c : deleted_chains) declared.push_back(c);
    const std::vector<std::string> jump_lines =
        last ? JumpLines(jumps, "nat") : std::vector<std::string>{};
    if (declared.empty() && jump_lines.empty()) return;
    w.Raw("*nat\n");
    WriteDeclarations(w, std::move(declared));
    WriteRules(w, std::move(filled));
    w.Lines(jump_lines);
    if (last) {
      for (const auto& c : deleted_chains) w.Line("-X " + c);
    }
    w.Raw("COMMIT\n");
    w.Send();
    group.clear();
  };
  ForEachRendered(st, rewritten, shared,
                  [&](const std::string& key, const state::ServiceState& service,
                      bool write_chains) {
                    ServiceRules r = Render(service, family, o, st.node, write_chains);
                    shared.Add(key, std::move(r.shared));
                    if (!write_chains) return;
                    for (auto& c : r.chains) {
                      if (full) names.push_back(c.name);
                      group.push_back(std::move(c));
                    }
                    if (group.size() >= o.nat_section_chains) write_group({}, {}, false);
                  });
  std::sort(names.begin(), names.end());
  SettleDeleted(full, existing, names, deleted);
  shared.Finish();
  // The Services left over go with the shared chains: a small change is one section.
  const bool few_deleted = deleted.size() <= o.nat_section_chains;
  std::vector<Filled> last;
  for (const auto& [c, name] : {std::pair{SharedChain::kNatServices, kServicesChain},
                                std::pair{SharedChain::kNatNodePorts, kNodePortsChain}}) {
    if (shared.Write(c)) last.push_back({name, &shared.Rules(c)});
  }
  write_group(std::move(last),
              few_deleted ? std::span<const std::string>(deleted) : std::span<const std::string>(),
              true);
  if (!few_deleted) {
    // Largest name first in both kinds of section: each line's name then goes to the head of
    // the tool's list.
    std::reverse(deleted.begin(), deleted.end());
    for (bool flush : {true, false}) {
      for (size_t i = 0; i < deleted.size(); i += o.nat_section_chains) {
        w.Raw("*nat\n");
        const size_t end = std::min(deleted.size(), i + o.nat_section_chains);
        for (size_t k = i; k < end; ++k) {
          if (flush) {
            w.Declare(deleted[k]);
          } else {
            w.Line("-X " + deleted[k]);
          }
        }
        w.Raw("COMMIT\n");
        w.Send();
      }
    }
  }
  WriteFilter(w, family, o, shared, full, jumps);
}

void RestoreText(const state::NodeState& st, IpFamily family, const LayoutOptions& o,
                 const Rewritten* rewritten, std::vector<std::string> deleted, bool full,
                 std::span<const std::string> existing, std::span<const JumpRule> jumps,
                 SharedCollector& shared, const RestoreSink& sink) {
  TextOut w(sink);
  if (o.nat_section_chains > 0) {
    RestoreTextSections(st, family, o, rewritten, std::move(deleted), full, existing, jumps,
                        shared, w);
  } else {
    RestoreTextOneSection(st, family, o, rewritten, std::move(deleted), full, existing, jumps,
                          shared, w);
  }
  w.Send();
}

std::string Collect(const std::function<void(const RestoreSink&)>& write) {
  std::string text;
  write([&](std::string_view piece) { text += piece; });
  return text;
}

}  // namespace

std::string PortProtoHash(std::string_view service_port_name, std::string_view protocol) {
  std::string input(service_port_name);
  input += protocol;
  return HashName("", input);
}

std::string ServicePortChainName(PortChain kind, const state::ServicePortName& name) {
  static constexpr std::string_view kPrefixes[] = {"KUBE-SVC-", "KUBE-SVL-", "KUBE-EXT-",
                                                   "KUBE-FW-"};
  return std::string(kPrefixes[static_cast<size_t>(kind)]) +
         PortProtoHash(name.ToString(), ProtoName(name.protocol));
}

std::string EndpointChainName(const state::ServicePortName& name, const state::Endpoint& endpoint) {
  std::string input = name.ToString();
  input += ProtoName(name.protocol);
  input += endpoint.ToString();
  return HashName("KUBE-SEP-", input);
}

bool IsServiceChain(std::string_view chain) {
  for (std::string_view p : {"KUBE-SVC-", "KUBE-SVL-", "KUBE-EXT-", "KUBE-FW-", "KUBE-SEP-"}) {
    if (chain.starts_with(p)) return true;
  }
  return false;
}

std::string Probability(size_t n) {
  // Formatting a double is slow; most Services have few endpoints.
  static const std::vector<std::string> kSmall = [] {
    std::vector<std::string> v(257);
    for (size_t i = 1; i < v.size(); ++i) {
      char buf[32];
      std::snprintf(buf, sizeof(buf), "%0.10f", 1.0 / static_cast<double>(i));
      v[i] = buf;
    }
    return v;
  }();
  if (n > 0 && n < kSmall.size()) return kSmall[n];
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%0.10f", 1.0 / static_cast<double>(n));
  return buf;
}

ServiceRules RenderService(const state::ServiceState& service, IpFamily family,
                           const LayoutOptions& options, const state::NodeInfo& node) {
  return Render(service, family, options, node, true);
}

void WriteFullRestore(const state::NodeState& state, IpFamily family,
                      const LayoutOptions& options,
                      std::span<const std::string> existing_nat_chains,
                      std::span<const JumpRule> missing_jumps, const RestoreSink& sink,
                      SharedChainState* shared) {
  SharedCollector collector(shared, true, family, options, state.node);
  RestoreText(
      state, family, options, nullptr, {}, true, existing_nat_chains, missing_jumps, collector,
      sink);
}

std::string FullRestoreText(const state::NodeState& state, IpFamily family,
                            const LayoutOptions& options,
                            std::span<const std::string> existing_nat_chains,
                            std::span<const JumpRule> missing_jumps) {
  return Collect([&](const RestoreSink& sink) {
    WriteFullRestore(state, family, options, existing_nat_chains, missing_jumps, sink);
  });
}

bool HasJump(std::string_view save_output, const JumpRule& rule) {
  const std::string prefix = "-A " + rule.chain + " ";
  const std::string target = "-j " + rule.spec.back();
  std::string comment;
  for (size_t i = 0; i + 1 < rule.spec.size(); ++i) {
    if (rule.spec[i] == "--comment") comment = rule.spec[i + 1];
  }
  size_t pos = 0;
  while (pos < save_output.size()) {
    size_t end = save_output.find('\n', pos);
    if (end == std::string_view::npos) end = save_output.size();
    std::string_view line = save_output.substr(pos, end - pos);
    while (!line.empty() && line.back() == ' ') line.remove_suffix(1);
    if (line.starts_with(prefix) && line.ends_with(target) &&
        (comment.empty() ? line.find("--comment") == std::string_view::npos
                         : line.find(comment) != std::string_view::npos)) {
      return true;
    }
    pos = end + 1;
  }
  return false;
}

std::string PartialRestoreText(const state::NodeState& desired, IpFamily family,
                               const LayoutOptions& options,
                               std::span<const state::ServiceDiff> changed,
                               const SharedChainState* in_kernel) {
  std::optional<SharedChainState> shared;
  if (in_kernel != nullptr) shared = *in_kernel;
  return Collect([&](const RestoreSink& sink) {
    WritePartialRestore(desired, family, options, changed, sink, shared ? &*shared : nullptr);
  });
}

void WritePartialRestore(const state::NodeState& desired, IpFamily family,
                         const LayoutOptions& options, std::span<const state::ServiceDiff> changed,
                         const RestoreSink& sink, SharedChainState* shared) {
  Rewritten rewritten;
  std::vector<std::string> deleted;
  for (const auto& diff : changed) {
    rewritten.insert(diff.key);
    if (!diff.before) continue;
    std::set<std::string> after;
    if (diff.after) {
      for (auto& c : Render(*diff.after, family, options, desired.node, true).chains) {
        after.insert(std::move(c.name));
      }
    }
    for (auto& c : Render(*diff.before, family, options, desired.node, true).chains) {
      if (!after.contains(c.name)) deleted.push_back(std::move(c.name));
    }
  }
  SharedCollector collector(shared, false, family, options, desired.node);
  if (collector.cached()) {
    for (const auto& key : rewritten) {
      if (!desired.services.contains(key)) collector.Add(key, {});  // gone: its rules too
    }
  }
  RestoreText(desired, family, options, &rewritten, std::move(deleted), false, {}, {}, collector,
              sink);
}

std::vector<JumpRule> JumpRules(IpFamily family, const LayoutOptions& options) {
  auto rule = [](std::string table, std::string chain, bool ct_new, std::string comment,
                 std::string_view target) {
    JumpRule r{.table = std::move(table), .chain = std::move(chain), .spec = {}};
    if (ct_new) r.spec = {"-m", "conntrack", "--ctstate", "NEW"};
    if (!comment.empty()) {
      r.spec.insert(r.spec.end(), {"-m", "comment", "--comment", std::move(comment)});
    }
    r.spec.insert(r.spec.end(), {"-j", std::string(target)});
    return r;
  };
  const std::string portals = "kubernetes service portals";
  const std::string external = "kubernetes externally-visible service portals";
  const std::string firewall = "kubernetes load balancer firewall";
  std::vector<JumpRule> rules = {
      rule("filter", "INPUT", true, external, kExternalServicesChain),
      rule("filter", "FORWARD", true, external, kExternalServicesChain),
      rule("filter", "INPUT", false, "kubernetes health check service ports", kNodePortsChain),
      rule("filter", "FORWARD", true, portals, kServicesChain),
      rule("filter", "OUTPUT", true, portals, kServicesChain),
      rule("filter", "FORWARD", false, "kubernetes forwarding rules", kForwardChain),
      rule("filter", "INPUT", true, firewall, kProxyFirewallChain),
      rule("filter", "OUTPUT", true, firewall, kProxyFirewallChain),
      rule("filter", "FORWARD", true, firewall, kProxyFirewallChain),
      rule("nat", "OUTPUT", false, portals, kServicesChain),
      rule("nat", "PREROUTING", false, portals, kServicesChain),
      rule("nat", "POSTROUTING", false, "kubernetes postrouting rules", kPostroutingChain),
  };
  if (family == IpFamily::kV4 && options.localhost_nodeports) {
    rules.push_back(rule("filter", "INPUT", false, "", kFirewallChain));
    rules.push_back(rule("filter", "OUTPUT", false, "", kFirewallChain));
  }
  return rules;
}

std::vector<std::string> JumpArgv(const JumpRule& rule, std::string_view op) {
  std::vector<std::string> argv = {"-w", "5", "-t", rule.table, std::string(op), rule.chain};
  argv.insert(argv.end(), rule.spec.begin(), rule.spec.end());
  return argv;
}

}  // namespace sluice::proxy::iptables
