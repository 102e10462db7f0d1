#include "proxy/backends/dryrun/dry_run_backend.h"

namespace sluice::proxy {

namespace {

void PrintService(std::ostream& out, char mark, const state::ServiceState& s) {
  for (const auto& port : s.ports) out << mark << ' ' << port.ToString() << '\n';
}

}  // namespace

void DryRunBackend::Sync(const state::NodeState& desired, const state::NodeStateChange& change) {
  ++syncs_;
  const bool first = syncs_ == 1;
  // A sync that found nothing to do prints nothing (the agent logs every sync at --v=1).
  if (!first && change.empty()) return;
  size_t changed = change.services.size();
  out_ << "sync " << syncs_ << " (" << (change.full ? "full" : "partial") << "): ";
  if (first) {
    out_ << desired.services.size() << (desired.services.size() == 1 ? " service" : " services");
  } else {
    out_ << changed << (changed == 1 ? " service" : " services") << " changed";
  }
  out_ << ", " << desired.services.size() << " services / " << desired.ServicePortCount()
       << " ports in total";
  if (change.node_changed || first) {
    out_ << "; node " << desired.node.name;
    if (!desired.node.known) out_ << " (no Node object yet)";
    if (!desired.node.zone.empty()) out_ << " zone " << desired.node.zone;
    for (const auto& ip : desired.node.node_ips) out_ << " " << ip.ToString();
  }
  out_ << '\n';
  if (first) {
    for (const auto& [key, s] : desired.services) PrintService(out_, '+', *s);
  } else {
    for (const auto& d : change.services) {
      if (!d.after) {
        out_ << "- " << d.key << '\n';
      } else {
        PrintService(out_, d.before ? '~' : '+', *d.after);
      }
    }
  }
  out_.flush();
}

}  // namespace sluice::proxy
