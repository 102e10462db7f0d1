// How long the iptables backend's restore texts take to render, without any tool: N ClusterIP
// Services x 10 endpoints, the full text (and how soon its first piece is out: the backend streams
// it into the tool) and a one-endpoint partial text, without and with the shared chains' state
// the full text left (as the backend has it: it renders the changed Service only). Prints
// milliseconds.
//   [NAT_SECTION_CHAINS=1000] [DUMP=file] [DUMP_PARTIAL=file] sluice-iptables-render-bench [N...]
// NAT_SECTION_CHAINS: the nat table in sections, as the backend writes it for iptables-nft.
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "proxy/backends/iptables/layout.h"

using namespace sluice;

namespace {

state::NodeState Make(int n) {
  state::NodeState st;
  st.node.node_ips = {IpAddress::MustParse("192.168.0.2")};
  for (int i = 0; i < n; ++i) {
    state::ServicePortState p;
    p.name = {"default", "svc-" + std::to_string(i), "", api::Protocol::kTcp};
    p.family = IpFamily::kV4;
    p.cluster_ip = IpAddress::MustParse("10.96." + std::to_string(i / 250) + "." +
                                        std::to_string(i % 250 + 1));
    p.port = 80;
    for (int e = 0; e < 10; ++e) {
      state::Endpoint ep;
      const int k = i * 10 + e;
      ep.ip = IpAddress::MustParse("10.244." + std::to_string(k / 250 % 256) + "." +
                                   std::to_string(k % 250 + 1));
      ep.port = 8080;
      p.cluster_endpoints.push_back(ep);
    }
    p.has_any_endpoints = true;
    p.internal_verdict = p.external_verdict = state::TrafficVerdict::kForward;
    auto s =
        std::make_shared<const state::ServiceState>(state::ServiceState{p.name.ServiceKey(), {p}});
    st.services[s->key] = s;
  }
  return st;
}

double Ms(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int> sizes;
  for (int i = 1; i < argc; ++i) {
    char* end = nullptr;
    const long n = std::strtol(argv[i], &end, 10);
    if (end == argv[i] || *end != '\0' || n < 1 || n > 60000) {
      std::fprintf(stderr,
                   "sluice-iptables-render-bench: %s: not a Service count (1 to 60000)\n"
                   "usage: [NAT_SECTION_CHAINS=N] [DUMP=file] [DUMP_PARTIAL=file] "
                   "sluice-iptables-render-bench [SERVICES...]\n",
                   argv[i]);
      return 2;
    }
    sizes.push_back(static_cast<int>(n));
  }
  if (sizes.empty()) sizes = {1000, 10000, 30000};
  proxy::iptables::LayoutOptions o;
  o.cluster_cidrs = {IpPrefix::MustParse("10.244.0.0/16")};
  if (const char* sections = std::getenv("NAT_SECTION_CHAINS")) {
    o.nat_section_chains = std::strtoul(sections, nullptr, 10);
  }
  for (int n : sizes) {
    state::NodeState st = Make(n);
    // As the backend decides it: 10 endpoints per Service.
    o.large_cluster = static_cast<size_t>(n) * 10 > proxy::iptables::kLargeClusterEndpoints;
    // As the backend streams it: the time to the first piece (what the tool waits for before it
    // starts) and to the last.
    std::string full;
    std::chrono::steady_clock::time_point first{};
    proxy::iptables::SharedChainState shared;
    auto t0 = std::chrono::steady_clock::now();
    proxy::iptables::WriteFullRestore(
        st, IpFamily::kV4, o, {}, {},
        [&](std::string_view piece) {
          if (full.empty()) first = std::chrono::steady_clock::now();
          full += piece;
        },
        &shared);
    auto t1 = std::chrono::steady_clock::now();
    const auto& key = st.services.begin()->first;
    auto before = st.services.at(key);
    state::ServiceState changed = *before;
    changed.ports[0].cluster_endpoints[0].ip = IpAddress::MustParse("10.250.0.1");
    auto after = std::make_shared<const state::ServiceState>(changed);
    st.services[key] = after;
    std::vector<state::ServiceDiff> diff = {{key, before, after}};
    auto t2 = std::chrono::steady_clock::now();
    std::string partial = proxy::iptables::PartialRestoreText(st, IpFamily::kV4, o, diff);
    auto t3 = std::chrono::steady_clock::now();
    std::string known;
    proxy::iptables::WritePartialRestore(
        st, IpFamily::kV4, o, diff, [&](std::string_view piece) { known += piece; }, &shared);
    auto t4 = std::chrono::steady_clock::now();
    // DUMP=file, DUMP_PARTIAL=file: the texts, to feed the tools by hand.
    for (const auto& [var, text] :
         {std::pair{"DUMP", &full}, std::pair{"DUMP_PARTIAL", &partial}}) {
      if (const char* dump = std::getenv(var)) {
        FILE* f = std::fopen(dump, "w");
        const bool ok =
            f != nullptr && std::fwrite(text->data(), 1, text->size(), f) == text->size();
        if (f == nullptr || std::fclose(f) != 0 || !ok) {
          std::fprintf(stderr, "sluice-iptables-render-bench: %s=%s: cannot write: %s\n", var, dump,
                       std::strerror(errno));
          return 1;
        }
      }
    }
    std::printf(
        "%6d Services: full text %.1f MB in %.1f ms (first piece after %.1f ms); one-endpoint "
        "partial %.1f MB in %.1f ms, %zu bytes in %.2f ms with the shared chains known\n",
        n, full.size() / 1e6, Ms(t1 - t0), Ms(first - t0), partial.size() / 1e6, Ms(t3 - t2),
        known.size(), Ms(t4 - t3));
  }
  return 0;
}
