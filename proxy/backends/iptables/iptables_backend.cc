#include "proxy/backends/iptables/iptables_backend.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <stdexcept>

#include <sys/resource.h>

#include "common/log.h"
#include "common/subprocess.h"
#include "proxy/local_addresses.h"

namespace sluice::proxy::iptables {

namespace {

constexpr auto kRestoreTimeout = std::chrono::minutes(5);
constexpr auto kToolTimeout = std::chrono::seconds(30);
// iptables-nft: the nat table in sections of about this many chains (LayoutOptions). At 10,000
// Services of 10 endpoints, sections of ~550 and ~1,100 chains restored equally fast (9.6 and
// 9.5 s), ~275 and ~2,200 took 20-25% longer.
constexpr size_t kNftNatSectionChains = 1000;

// iptables-nft-save 1.8.9 sorts the chains with a quicksort that recurses once per chain when
// they were created in name order (as a restore of iptables-save's own text creates them):
// some 100,000 chains overflow an 8 MB stack and it dies of SIGSEGV (checked: with `ulimit -s
// unlimited` it lists them). The tools this process starts get up to this much stack: the soft
// limit raised towards the hard one, which needs no privilege.
constexpr rlim_t kToolStack = rlim_t{512} << 20;

void RaiseStackLimitForTools() {
  rlimit r{};
  if (getrlimit(RLIMIT_STACK, &r) != 0 || r.rlim_cur == RLIM_INFINITY || r.rlim_cur >= kToolStack) {
    return;
  }
  const rlim_t want = r.rlim_max == RLIM_INFINITY ? kToolStack : std::min(r.rlim_max, kToolStack);
  if (want <= r.rlim_cur) return;
  const rlimit raised{want, r.rlim_max};
  if (setrlimit(RLIMIT_STACK, &raised) == 0) {
    SLOG_V(1) << "iptables: stack limit for the tools raised to " << (want >> 20) << " MB";
  }
}

std::string FamilyName(IpFamily f) { return f == IpFamily::kV4 ? "IPv4" : "IPv6"; }

// Lines of iptables-save output that are rules ("-A ...").
size_t RuleCount(const std::string& save_output) {
  size_t n = 0;
  size_t pos = 0;
  while (pos < save_output.size()) {
    size_t end = save_output.find('\n', pos);
    if (end == std::string::npos) end = save_output.size();
    if (save_output.compare(pos, 3, "-A ") == 0) ++n;
    pos = end + 1;
  }
  return n;
}

// The chains --cleanup removes: kube-proxy's own and the per-Service ones. KUBE-FIREWALL,
// KUBE-MARK-DROP, KUBE-KUBELET-CANARY and KUBE-IPTABLES-HINT belong to the kubelet.
bool OwnedChain(std::string_view chain) {
  static constexpr std::string_view kOwned[] = {
      kServicesChain,  kExternalServicesChain, kNodePortsChain, kProxyFirewallChain,
      kForwardChain,   kPostroutingChain,      kMarkMasqChain,  "KUBE-PROXY-CANARY"};
  return IsServiceChain(chain) ||
         std::find(std::begin(kOwned), std::end(kOwned), chain) != std::end(kOwned);
}

std::optional<ProcessResult> TryRun(const std::vector<std::string>& argv,
                                    std::string_view input = {}) {
  try {
    return RunProcess(argv, input, kToolTimeout);
  } catch (const std::exception&) {
    return std::nullopt;  // not installed
  }
}

}  // namespace

std::string_view ToString(Variant v) { return v == Variant::kLegacy ? "legacy" : "nft"; }

std::string Tool(Variant variant, IpFamily family, std::string_view suffix) {
  std::string tool = family == IpFamily::kV4 ? "iptables-" : "ip6tables-";
  tool.append(ToString(variant));
  if (!suffix.empty()) tool.append("-").append(suffix);
  return tool;
}

Variant DetectVariant(std::string* why) {
  auto say = [&](std::string text) {
    if (why) *why = std::move(text);
  };
  size_t rules[2] = {0, 0};
  bool installed[2] = {false, false};
  for (Variant v : {Variant::kLegacy, Variant::kNft}) {
    for (IpFamily f : {IpFamily::kV4, IpFamily::kV6}) {
      auto r = TryRun({Tool(v, f, "save")});
      if (!r || !r->ok()) continue;
      installed[static_cast<int>(v)] = true;
      rules[static_cast<int>(v)] += RuleCount(r->out);
      if (v == Variant::kNft && (r->out.find("KUBE-IPTABLES-HINT") != std::string::npos ||
                                 r->out.find("KUBE-KUBELET-CANARY") != std::string::npos)) {
        say("the kubelet's hint chains are in iptables-nft");
        return Variant::kNft;
      }
    }
  }
  if (!installed[0] && !installed[1]) {
    throw std::runtime_error(
        "neither iptables-legacy-save nor iptables-nft-save runs; install iptables");
  }
  const size_t legacy = rules[0], nft = rules[1];
  if (!installed[1] || (installed[0] && legacy > nft)) {
    say(std::to_string(legacy) + " legacy rules, " + std::to_string(nft) + " nft rules");
    return Variant::kLegacy;
  }
  say(std::to_string(legacy) + " legacy rules, " + std::to_string(nft) + " nft rules");
  return Variant::kNft;
}

std::string CleanupRestoreText(std::string_view table, std::string_view save_output) {
  std::vector<std::string> chains;
  size_t pos = 0;
  while (pos < save_output.size()) {
    size_t end = save_output.find('\n', pos);
    if (end == std::string_view::npos) end = save_output.size();
    std::string_view line = save_output.substr(pos, end - pos);
    if (line.size() > 1 && line[0] == ':') {
      std::string_view name = line.substr(1, line.find(' ') - 1);
      if (OwnedChain(name)) chains.emplace_back(name);
    }
    pos = end + 1;
  }
  if (chains.empty()) return {};
  std::string text("*");
  text.append(table).append("\n");
  for (const auto& c : chains) text.append(":").append(c).append(" - [0:0]\n");
  for (const auto& c : chains) text.append("-X ").append(c).append("\n");
  text.append("COMMIT\n");
  return text;
}

IptablesBackend::IptablesBackend(IptablesOptions options) : options_(std::move(options)) {
  if (options_.variant) {
    variant_ = *options_.variant;
    SLOG_INFO << "iptables: " << ToString(variant_) << " (--iptables-mode)";
  } else {
    std::string why;
    variant_ = DetectVariant(&why);
    SLOG_INFO << "iptables: " << ToString(variant_) << " (detected: " << why << ")";
  }
  if (variant_ == Variant::kNft) RaiseStackLimitForTools();
  for (IpFamily f : options_.families) {
    const std::string tool = Tool(variant_, f, "restore");
    auto r = TryRun({tool, "--version"});
    if (!r) throw std::runtime_error(tool + " cannot be run: install iptables");
    if (!r->ok()) throw std::runtime_error(tool + " --version: " + r->Describe());
  }
}

LayoutOptions IptablesBackend::Layout(const state::NodeState& desired, IpFamily family) const {
  LayoutOptions o;
  for (const auto& c : options_.cluster_cidrs) {
    if (c.family() == family) o.cluster_cidrs.push_back(c);
  }
  o.masquerade_all = options_.masquerade_all;
  if (options_.nodeport_primary) {
    o.nodeports_on_all_local_addresses = false;
    for (const auto& ip : desired.node.node_ips) {
      if (ip.family() == family) o.nodeport_addresses.push_back(ip);
    }
  } else if (!options_.nodeport_cidrs.empty()) {
    const bool all = std::any_of(options_.nodeport_cidrs.begin(), options_.nodeport_cidrs.end(),
                                 [&](const IpPrefix& c) {
                                   return c.family() == family && c.length() == 0;
                                 });
    o.nodeports_on_all_local_addresses = all;
    if (!all) {
      for (const auto& ip : LocalAddressesIn(options_.nodeport_cidrs)) {
        if (ip.family() == family) o.nodeport_addresses.push_back(ip);
      }
    }
  }
  // As kube-proxy: IPv4 only, and only where NodePorts answer on loopback at all.
  o.localhost_nodeports =
      options_.localhost_nodeports && family == IpFamily::kV4 &&
      (o.nodeports_on_all_local_addresses ||
       std::any_of(o.nodeport_addresses.begin(), o.nodeport_addresses.end(),
                   [](const IpAddress& ip) { return ip.is_v4() && ip.data()[0] == 127; }));
  if (variant_ == Variant::kNft) o.nat_section_chains = kNftNatSectionChains;
  return o;
}

bool IptablesBackend::RouteLocalnet() {
  if (route_localnet_) return true;
  static constexpr const char* kPath = "/proc/sys/net/ipv4/conf/all/route_localnet";
  if (std::ifstream in(kPath); in) {
    std::string value;
    in >> value;
    if (value == "1") return route_localnet_ = true;
  }
  if (std::ofstream out(kPath); out << "1\n" && out.flush()) {
    SLOG_INFO << "iptables: set net.ipv4.conf.all.route_localnet=1 for localhost NodePorts";
    return route_localnet_ = true;
  }
  const std::string error = std::strerror(errno);
  if (!route_localnet_warned_) {
    route_localnet_warned_ = true;
    SLOG_WARN << "iptables: cannot set " << kPath << " to 1 (" << error
              << "): NodePorts do not answer on 127.0.0.0/8 (--iptables-localhost-nodeports)";
  }
  return false;
}

void IptablesBackend::Restore(
    IpFamily family, bool start_first,
    const std::function<void(const RestoreSink&, SharedChainState*)>& write) {
  // The text updates it as it is written: right once the tool has applied the text.
  SharedChainState& shared = shared_in_kernel_[family];
  try {
    RunRestore(family, start_first, [&](const RestoreSink& sink) { write(sink, &shared); });
  } catch (...) {
    shared_in_kernel_.erase(family);  // unknown now; the next sync, full, writes them whole
    throw;
  }
}

void IptablesBackend::RunRestore(IpFamily family, bool start_first,
                                 const std::function<void(const RestoreSink&)>& write) {
  const std::string tool = Tool(variant_, family, "restore");
  // The text goes into the pipe as it is written: the tool parses the first part while the rest
  // is rendered, and the rules are never joined into one text. With `start_first` the tool
  // starts before the text is rendered (its start-up and, with iptables-legacy, its read of the
  // table overlap the rendering); else with the first piece, so that a text with nothing to
  // change (a partial sync of Services of the other family only) runs no tool.
  const auto start = std::chrono::steady_clock::now();
  std::optional<FedProcess> process;
  auto start_tool = [&] {
    process.emplace(std::vector<std::string>{tool, "-w", "5", "--noflush"}, kRestoreTimeout);
    ++stats_.tool_runs;
  };
  if (start_first) start_tool();
  size_t bytes = 0;
  std::chrono::steady_clock::time_point first{};
  write([&](std::string_view piece) {
    if (piece.empty()) return;
    if (bytes == 0) first = std::chrono::steady_clock::now();
    if (!process) start_tool();
    bytes += piece.size();
    process->Write(piece);  // a tool gone early: the rest is dropped, Finish says why
  });
  if (!process) {
    SLOG_V(2) << "iptables: " << tool << ": nothing to change";
    return;
  }
  const auto written = std::chrono::steady_clock::now();
  stats_.bytes += bytes;
  ProcessResult r = process->Finish();
  const auto ms = [&](std::chrono::steady_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::microseconds>(t - start).count() / 1000.0;
  };
  SLOG_V(2) << "iptables: " << tool << ": first input after " << ms(first) << " ms, all "
            << bytes << " bytes in the pipe after " << ms(written) << " ms, tool done after "
            << ms(std::chrono::steady_clock::now()) << " ms";
  if (!r.ok()) {
    throw std::runtime_error(tool + " (" + FamilyName(family) + ", " + std::to_string(bytes) +
                             " bytes of input): " + r.Describe());
  }
}

std::string IptablesBackend::Save(IpFamily family, std::string_view table) {
  const std::string tool = Tool(variant_, family, "save");
  ProcessResult r = RunProcess({tool, "-t", std::string(table)}, {}, kToolTimeout);
  ++stats_.tool_runs;
  if (!r.ok()) throw std::runtime_error(tool + " -t " + std::string(table) + ": " + r.Describe());
  return std::move(r.out);
}

bool IptablesBackend::JumpInstalled(IpFamily family, const JumpRule& rule) {
  std::vector<std::string> check = {Tool(variant_, family, "")};
  for (auto& a : JumpArgv(rule, "-C")) check.push_back(std::move(a));
  ProcessResult r = RunProcess(check, {}, kToolTimeout);
  ++stats_.tool_runs;
  return r.ok();
}

std::vector<std::string> ChainNames(std::string_view save_output) {
  std::vector<std::string> chains;
  size_t pos = 0;
  while (pos < save_output.size()) {
    size_t end = save_output.find('\n', pos);
    if (end == std::string_view::npos) end = save_output.size();
    if (save_output[pos] == ':') {
      const size_t space = save_output.find(' ', pos);
      chains.emplace_back(save_output.substr(pos + 1, std::min(space, end) - pos - 1));
    }
    pos = end + 1;
  }
  return chains;
}

void IptablesBackend::Sync(const state::NodeState& desired,
                           const state::NodeStateChange& change) {
  size_t endpoints = 0;
  for (const auto& [key, service] : desired.services) {
    for (const auto& p : service->ports) {
      endpoints += std::max(p.cluster_endpoints.size(), p.local_endpoints.size());
    }
  }
  const bool large = endpoints > kLargeClusterEndpoints;
  // Every endpoint rule changes with the mode: a partial sync cannot switch it.
  const bool full = change.full || large != large_cluster_;
  if (large != large_cluster_) {
    SLOG_INFO << "iptables: " << endpoints << " endpoints: large-cluster mode "
              << (large ? "on (no comments on endpoint rules)" : "off");
  }
  large_cluster_ = large;
  stats_ = IptablesSyncStats{};
  stats_.full = full;
  for (IpFamily f : options_.families) {
    LayoutOptions layout = Layout(desired, f);
    layout.large_cluster = large;
    if (layout.localhost_nodeports && !RouteLocalnet()) layout.localhost_nodeports = false;
    if (full) {
      std::string nat, filter;
      bool saved = true;
      try {
        nat = Save(f, "nat");
        filter = Save(f, "filter");
      } catch (const std::exception& e) {
        // iptables-nft-save 1.8.9 dies of SIGSEGV on a nat table of some 300,000 rules: the
        // sync goes on without it; stale service chains stay until a read succeeds.
        SLOG_WARN << "iptables: " << e.what()
                  << "; syncing without reading the tables (jumps checked one by one)";
        saved = false;
      }
      std::vector<JumpRule> missing;
      for (JumpRule& j : JumpRules(f, layout)) {
        if (!saved) {
          if (!JumpInstalled(f, j)) missing.push_back(std::move(j));
          continue;
        }
        if (!HasJump(j.table == "nat" ? nat : filter, j)) {
          SLOG_V(1) << "iptables: jump " << j.table << " " << j.chain << " -> "
                    << j.spec.back() << " (" << FamilyName(f) << ") missing: inserted";
          missing.push_back(std::move(j));
        }
      }
      const std::vector<std::string> existing = ChainNames(nat);
      Restore(f, true, [&](const RestoreSink& sink, SharedChainState* shared) {
        WriteFullRestore(desired, f, layout, existing, missing, sink, shared);
      });
    } else if (!change.services.empty()) {
      // A changed Service with a port of this family has chains to write or delete.
      bool has_port = false;
      for (const auto& diff : change.services) {
        for (const auto* s : {diff.before.get(), diff.after.get()}) {
          if (!s) continue;
          for (const auto& p : s->ports) has_port = has_port || p.family == f;
        }
      }
      Restore(f, has_port, [&](const RestoreSink& sink, SharedChainState* shared) {
        WritePartialRestore(desired, f, layout, change.services, sink, shared);
      });
    }
  }
  SLOG_V(2) << "iptables: " << (stats_.full ? "full" : "partial") << " sync, " << stats_.bytes
            << " bytes of restore input, " << stats_.tool_runs << " tool runs";
}

void IptablesBackend::Cleanup() {
  shared_in_kernel_.clear();
  std::vector<std::string> failures;
  for (Variant v : {Variant::kLegacy, Variant::kNft}) {
    for (IpFamily f : {IpFamily::kV4, IpFamily::kV6}) {
      const std::string tool = Tool(v, f, "");
      if (!TryRun({Tool(v, f, "save")})) continue;  // not installed
      for (const JumpRule& rule : JumpRules(f, LayoutOptions{})) {
        std::vector<std::string> del = {tool};
        for (auto& a : JumpArgv(rule, "-D")) del.push_back(std::move(a));
        for (int i = 0; i < 8; ++i) {  // duplicates, if any
          auto r = TryRun(del);
          if (!r || !r->ok()) break;
        }
      }
      for (std::string_view table : {"nat", "filter"}) {
        auto save = TryRun({Tool(v, f, "save"), "-t", std::string(table)});
        if (!save || !save->ok()) continue;
        const std::string text = CleanupRestoreText(table, save->out);
        if (text.empty()) continue;
        auto r = TryRun({Tool(v, f, "restore"), "-w", "5", "--noflush"}, text);
        if (!r || !r->ok()) {
          failures.push_back(Tool(v, f, "restore") + " " + std::string(table) + ": " +
                             (r ? r->Describe() : std::string("cannot run")));
        } else {
          SLOG_INFO << "cleanup: removed our " << table << " chains (" << Tool(v, f, "")
                    << ")";
        }
      }
    }
  }
  if (!failures.empty()) {
    std::string msg = "iptables cleanup:";
    for (const auto& f : failures) msg += " " + f + ";";
    msg.pop_back();
    throw std::runtime_error(msg);
  }
}

}  // namespace sluice::proxy::iptables
