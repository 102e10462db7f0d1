// The kernel's connection tracking table over libnetfilter_conntrack: list entries and delete the
// ones a Service change made stale (kube-proxy's ClearEntriesForIP/Port/NAT/PortNAT), several
// filters per table dump.
#pragma once

#include <netinet/in.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/ip_address.h"

struct nfct_handle;

namespace sluice::conntrack {

class ConntrackError : public std::runtime_error {
 public:
  // `context` says what was attempted ("dump ipv4 conntrack table"); the errno text is appended.
  ConntrackError(int error, const std::string& context);
  int error() const noexcept { return error_; }

 private:
  int error_;
};

// One direction of a connection as conntrack records it.
struct FlowTuple {
  IpAddress src;
  IpAddress dst;
  uint16_t src_port = 0;
  uint16_t dst_port = 0;

  bool operator==(const FlowTuple&) const = default;
};

// A conntrack entry of a port protocol (UDP, TCP, SCTP).
struct Flow {
  uint8_t protocol = 0;
  // As the client sent it: for a Service, dst is the ClusterIP/NodePort address.
  FlowTuple original;
  // As the answer comes back: after DNAT, src is the chosen endpoint.
  FlowTuple reply;
  uint16_t zone = 0;

  bool operator==(const Flow&) const = default;
  // "udp 10.0.0.1:40001 -> 10.96.0.10:53 reply 10.1.0.5:5353 -> 10.0.0.1:40001"
  std::string ToString() const;
};

// Matches entries of one protocol and family on every field that is set. kube-proxy's four calls
// are: orig_dst (ClearEntriesForIP), orig_dst_port (ClearEntriesForPort), orig_dst + reply_src
// (ClearEntriesForNAT), orig_dst_port + reply_src (ClearEntriesForPortNAT).
struct FlowFilter {
  uint8_t protocol = IPPROTO_UDP;  // IPPROTO_UDP, IPPROTO_TCP or IPPROTO_SCTP
  IpFamily family = IpFamily::kV4;
  std::optional<IpAddress> orig_dst;
  std::optional<uint16_t> orig_dst_port;
  std::optional<IpAddress> reply_src;
  // Only entries that were not DNATed: the reply comes from the address the client sent to
  // (a packet that was rejected, dropped or sent before any rule existed). kube-proxy clears
  // these when a Service gets its first endpoint, leaving flows already DNATed alone.
  bool not_dnated = false;

  bool Matches(const Flow& flow) const;
  // "udp ipv4 orig_dst=10.96.0.10 orig_dst_port=53"
  std::string ToString() const;
};

// A conntrack netlink handle, bound in the network namespace of the thread that constructs it; it
// stays there for its whole life, whatever the thread does later. Not thread-safe.
class ConntrackTable {
 public:
  // Throws ConntrackError.
  ConntrackTable();
  ~ConntrackTable();
  ConntrackTable(ConntrackTable&&) noexcept;
  ConntrackTable& operator=(ConntrackTable&&) noexcept;
  ConntrackTable(const ConntrackTable&) = delete;
  ConntrackTable& operator=(const ConntrackTable&) = delete;

  // Every entry of `protocol` (UDP, TCP or SCTP) in `family`, in the kernel's order.
  std::vector<Flow> List(IpFamily family, uint8_t protocol);

  // Deletes every entry that matches `filter`; returns how many were deleted. Entries that expire
  // between the dump and their deletion are not counted and are not errors. A filter with a bad
  // protocol, an address of another family, or no field set (it would delete every entry of the
  // protocol) throws std::invalid_argument before anything is deleted.
  size_t Delete(const FlowFilter& filter);
  // Deletes every entry that matches any of `filters`, with one dump of the table (both families
  // at once if the filters mix them).
  size_t DeleteAll(std::span<const FlowFilter> filters);

 private:
  struct Closer {
    void operator()(nfct_handle* handle) const;
  };

  // Dumps `af` (AF_INET, AF_INET6 or AF_UNSPEC for both) and hands each entry of a port protocol
  // to `on_flow`; throws ConntrackError naming `context`.
  void Dump(uint8_t af, const std::string& context, const std::function<void(Flow&&)>& on_flow);
  // False if the entry was already gone.
  bool DeleteEntry(const Flow& flow);

  std::unique_ptr<nfct_handle, Closer> handle_;
};

}  // namespace sluice::conntrack
