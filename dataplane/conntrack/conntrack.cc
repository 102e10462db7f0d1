#include "dataplane/conntrack/conntrack.h"

#include <arpa/inet.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>
#include <new>
#include <unordered_set>
#include <utility>

namespace sluice::conntrack {
namespace {

// The kernel answers at once; the timeout only guards against a wedged socket.
constexpr int kReceiveTimeoutSeconds = 30;

bool IsPortProtocol(uint8_t protocol) {
  return protocol == IPPROTO_UDP || protocol == IPPROTO_TCP || protocol == IPPROTO_SCTP;
}

std::string ProtocolName(uint8_t protocol) {
  switch (protocol) {
    case IPPROTO_UDP:
      return "udp";
    case IPPROTO_TCP:
      return "tcp";
    case IPPROTO_SCTP:
      return "sctp";
    default:
      return "protocol " + std::to_string(protocol);
  }
}

std::string FamilyName(IpFamily family) { return family == IpFamily::kV4 ? "ipv4" : "ipv6"; }

uint8_t AddressFamily(IpFamily family) { return family == IpFamily::kV4 ? AF_INET : AF_INET6; }

std::string Endpoint(const IpAddress& address, uint16_t port) {
  std::string text = address.is_v4() ? "" : "[";
  text += address.ToString();
  if (!address.is_v4()) text += ']';
  text += ':';
  text += std::to_string(port);
  return text;
}

struct ConntrackFree {
  void operator()(nf_conntrack* ct) const { nfct_destroy(ct); }
};
using ConntrackPtr = std::unique_ptr<nf_conntrack, ConntrackFree>;

// libnetfilter_conntrack's attribute ids for one direction of an entry.
struct TupleAttrs {
  nf_conntrack_attr v4_src, v4_dst, v6_src, v6_dst, port_src, port_dst;
};
constexpr TupleAttrs kOriginalAttrs = {ATTR_ORIG_IPV4_SRC, ATTR_ORIG_IPV4_DST, ATTR_ORIG_IPV6_SRC,
                                       ATTR_ORIG_IPV6_DST, ATTR_ORIG_PORT_SRC, ATTR_ORIG_PORT_DST};
constexpr TupleAttrs kReplyAttrs = {ATTR_REPL_IPV4_SRC, ATTR_REPL_IPV4_DST, ATTR_REPL_IPV6_SRC,
                                    ATTR_REPL_IPV6_DST, ATTR_REPL_PORT_SRC, ATTR_REPL_PORT_DST};

std::optional<IpAddress> GetAddress(const nf_conntrack* ct, uint8_t af, nf_conntrack_attr v4,
                                    nf_conntrack_attr v6) {
  if (af == AF_INET) {
    if (nfct_attr_is_set(ct, v4) <= 0) return std::nullopt;
    in_addr address{};
    address.s_addr = nfct_get_attr_u32(ct, v4);  // network order as the kernel sent it
    return IpAddress::V4(address);
  }
  const void* bytes = nfct_get_attr(ct, v6);
  if (bytes == nullptr) return std::nullopt;
  in6_addr address{};
  std::memcpy(&address, bytes, sizeof(address));
  return IpAddress::V6(address);
}

std::optional<FlowTuple> GetTuple(const nf_conntrack* ct, uint8_t af, const TupleAttrs& attrs) {
  std::optional<IpAddress> src = GetAddress(ct, af, attrs.v4_src, attrs.v6_src);
  std::optional<IpAddress> dst = GetAddress(ct, af, attrs.v4_dst, attrs.v6_dst);
  if (!src || !dst) return std::nullopt;
  FlowTuple tuple;
  tuple.src = *src;
  tuple.dst = *dst;
  tuple.src_port = ntohs(nfct_get_attr_u16(ct, attrs.port_src));
  tuple.dst_port = ntohs(nfct_get_attr_u16(ct, attrs.port_dst));
  return tuple;
}

// Entries of other protocols (ICMP, GRE, ...) have no ports and are of no use to a Service proxy.
std::optional<Flow> ToFlow(const nf_conntrack* ct) {
  const uint8_t protocol = nfct_get_attr_u8(ct, ATTR_L4PROTO);
  const uint8_t af = nfct_get_attr_u8(ct, ATTR_L3PROTO);
  if (!IsPortProtocol(protocol) || (af != AF_INET && af != AF_INET6)) return std::nullopt;
  std::optional<FlowTuple> original = GetTuple(ct, af, kOriginalAttrs);
  std::optional<FlowTuple> reply = GetTuple(ct, af, kReplyAttrs);
  if (!original || !reply) return std::nullopt;
  Flow flow;
  flow.protocol = protocol;
  flow.original = *original;
  flow.reply = *reply;
  if (nfct_attr_is_set(ct, ATTR_ZONE) > 0) flow.zone = nfct_get_attr_u16(ct, ATTR_ZONE);
  return flow;
}

void Validate(const FlowFilter& filter) {
  auto fail = [&filter](const std::string& why) {
    throw std::invalid_argument("conntrack filter " + filter.ToString() + ": " + why);
  };
  if (!IsPortProtocol(filter.protocol)) fail("protocol must be udp, tcp or sctp");
  if (!filter.orig_dst && !filter.orig_dst_port && !filter.reply_src) {
    fail("no field set (it would delete every entry)");
  }
  for (const std::optional<IpAddress>& address : {filter.orig_dst, filter.reply_src}) {
    if (address && address->family() != filter.family) {
      fail(address->ToString() + " is not an " + FamilyName(filter.family) + " address");
    }
  }
}

// The filters as hash sets, one per combination of fields set (at most seven), so an entry costs
// a few lookups however many filters a sync batches, not one comparison per filter.
class FilterIndex {
 public:
  explicit FilterIndex(std::span<const FlowFilter> filters) {
    for (const FlowFilter& filter : filters) {
      Validate(filter);
      const uint8_t fields = (filter.orig_dst ? kOrigDst : 0) |
                             (filter.orig_dst_port ? kOrigDstPort : 0) |
                             (filter.reply_src ? kReplySrc : 0) |
                             (filter.not_dnated ? kNotDnated : 0);
      if (std::find(field_sets_.begin(), field_sets_.end(), fields) == field_sets_.end()) {
        field_sets_.push_back(fields);
      }
      keys_.insert(Key{filter.protocol, filter.family, fields, filter.orig_dst_port.value_or(0),
                       filter.orig_dst.value_or(IpAddress()),
                       filter.reply_src.value_or(IpAddress())});
      families_.insert(filter.family);
    }
  }

  bool Matches(const Flow& flow) const {
    const bool dnated = flow.reply.src != flow.original.dst;
    for (uint8_t fields : field_sets_) {
      if ((fields & kNotDnated) && dnated) continue;
      Key key{flow.protocol,
              flow.original.dst.family(),
              fields,
              (fields & kOrigDstPort) ? flow.original.dst_port : uint16_t{0},
              (fields & kOrigDst) ? flow.original.dst : IpAddress(),
              (fields & kReplySrc) ? flow.reply.src : IpAddress()};
      if (keys_.contains(key)) return true;
    }
    return false;
  }

  // The family to dump: AF_UNSPEC (both) when the filters mix them.
  uint8_t DumpFamily() const {
    return families_.size() == 1 ? AddressFamily(*families_.begin()) : AF_UNSPEC;
  }

 private:
  static constexpr uint8_t kOrigDst = 1;
  static constexpr uint8_t kOrigDstPort = 2;
  static constexpr uint8_t kReplySrc = 4;
  static constexpr uint8_t kNotDnated = 8;

  // Fields not in `fields` hold their zero value.
  struct Key {
    uint8_t protocol;
    IpFamily family;
    uint8_t fields;
    uint16_t orig_dst_port;
    IpAddress orig_dst;
    IpAddress reply_src;
    bool operator==(const Key&) const = default;
  };
  struct KeyHash {
    size_t operator()(const Key& key) const {
      uint64_t hash = 14695981039346656037ull;  // FNV-1a
      auto mix = [&hash](const uint8_t* bytes, size_t size) {
        for (size_t i = 0; i < size; ++i) hash = (hash ^ bytes[i]) * 1099511628211ull;
      };
      const uint8_t head[] = {key.protocol, static_cast<uint8_t>(key.family), key.fields,
                              static_cast<uint8_t>(key.orig_dst_port >> 8),
                              static_cast<uint8_t>(key.orig_dst_port)};
      mix(head, sizeof(head));
      mix(key.orig_dst.data(), key.orig_dst.size());
      mix(key.reply_src.data(), key.reply_src.size());
      return static_cast<size_t>(hash);
    }
  };

  std::unordered_set<Key, KeyHash> keys_;
  std::vector<uint8_t> field_sets_;
  std::unordered_set<IpFamily> families_;
};

std::string DumpContext(uint8_t af) {
  switch (af) {
    case AF_INET:
      return "dump ipv4 conntrack table";
    case AF_INET6:
      return "dump ipv6 conntrack table";
    default:
      return "dump ipv4 and ipv6 conntrack tables";
  }
}

struct DumpState {
  const std::function<void(Flow&&)>* on_flow;
  std::exception_ptr error;
};

int OnDumpEntry(nf_conntrack_msg_type /*type*/, nf_conntrack* ct, void* data) {
  auto& state = *static_cast<DumpState*>(data);
  if (state.error) return NFCT_CB_CONTINUE;
  try {
    if (std::optional<Flow> flow = ToFlow(ct)) (*state.on_flow)(std::move(*flow));
  } catch (...) {
    state.error = std::current_exception();
  }
  // Never stop early: the rest of the dump would stay queued and confuse the next query.
  return NFCT_CB_CONTINUE;
}

// After a failed dump, reads what is left of it so the next query starts clean. Each recv lets
// the kernel produce the next part of the dump, so this ends at its last part.
void DrainSocket(nfct_handle* handle) {
  const int fd = nfct_fd(handle);
  char buffer[16384];
  for (;;) {
    if (recv(fd, buffer, sizeof(buffer), MSG_DONTWAIT) >= 0) continue;
    if (errno != EINTR && errno != ENOBUFS) return;
  }
}

}  // namespace

ConntrackError::ConntrackError(int error, const std::string& context)
    : std::runtime_error("conntrack: " + context + ": " + std::strerror(error)), error_(error) {}

std::string Flow::ToString() const {
  return ProtocolName(protocol) + " " + Endpoint(original.src, original.src_port) + " -> " +
         Endpoint(original.dst, original.dst_port) + " reply " +
         Endpoint(reply.src, reply.src_port) + " -> " + Endpoint(reply.dst, reply.dst_port) +
         (zone != 0 ? " zone " + std::to_string(zone) : "");
}

bool FlowFilter::Matches(const Flow& flow) const {
  return flow.protocol == protocol && flow.original.dst.family() == family &&
         (!orig_dst || flow.original.dst == *orig_dst) &&
         (!orig_dst_port || flow.original.dst_port == *orig_dst_port) &&
         (!reply_src || flow.reply.src == *reply_src) &&
         (!not_dnated || flow.reply.src == flow.original.dst);
}

std::string FlowFilter::ToString() const {
  std::string text = ProtocolName(protocol) + " " + FamilyName(family);
  if (orig_dst) text += " orig_dst=" + orig_dst->ToString();
  if (orig_dst_port) text += " orig_dst_port=" + std::to_string(*orig_dst_port);
  if (reply_src) text += " reply_src=" + reply_src->ToString();
  if (not_dnated) text += " not_dnated";
  return text;
}

void ConntrackTable::Closer::operator()(nfct_handle* handle) const { nfct_close(handle); }

ConntrackTable::ConntrackTable() {
  handle_.reset(nfct_open(CONNTRACK, 0));
  if (!handle_) throw ConntrackError(errno, "open conntrack netlink handle");
  timeval timeout{kReceiveTimeoutSeconds, 0};
  setsockopt(nfct_fd(handle_.get()), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
}

ConntrackTable::~ConntrackTable() = default;
ConntrackTable::ConntrackTable(ConntrackTable&&) noexcept = default;
ConntrackTable& ConntrackTable::operator=(ConntrackTable&&) noexcept = default;

void ConntrackTable::Dump(uint8_t af, const std::string& context,
                          const std::function<void(Flow&&)>& on_flow) {
  DumpState state{&on_flow, nullptr};
  if (nfct_callback_register(handle_.get(), NFCT_T_ALL, &OnDumpEntry, &state) != 0) {
    throw ConntrackError(errno, context + " (register callback)");
  }
  uint32_t family = af;
  const int result = nfct_query(handle_.get(), NFCT_Q_DUMP, &family);
  int error = errno;
  nfct_callback_unregister(handle_.get());
  if (result != 0) {
    DrainSocket(handle_.get());
    if (error == EAGAIN || error == EWOULDBLOCK) error = ETIMEDOUT;
    throw ConntrackError(error, context);
  }
  if (state.error) std::rethrow_exception(state.error);
}

bool ConntrackTable::DeleteEntry(const Flow& flow) {
  // The original tuple (and zone) is the entry's key; the kernel needs nothing else to find it.
  ConntrackPtr ct(nfct_new());
  if (!ct) throw std::bad_alloc();
  const FlowTuple& tuple = flow.original;
  nfct_set_attr_u8(ct.get(), ATTR_L3PROTO, static_cast<uint8_t>(tuple.src.af()));
  nfct_set_attr_u8(ct.get(), ATTR_L4PROTO, flow.protocol);
  if (tuple.src.is_v4()) {
    nfct_set_attr_u32(ct.get(), ATTR_ORIG_IPV4_SRC, tuple.src.v4().s_addr);
    nfct_set_attr_u32(ct.get(), ATTR_ORIG_IPV4_DST, tuple.dst.v4().s_addr);
  } else {
    const in6_addr src = tuple.src.v6();
    const in6_addr dst = tuple.dst.v6();
    nfct_set_attr(ct.get(), ATTR_ORIG_IPV6_SRC, &src);
    nfct_set_attr(ct.get(), ATTR_ORIG_IPV6_DST, &dst);
  }
  nfct_set_attr_u16(ct.get(), ATTR_ORIG_PORT_SRC, htons(tuple.src_port));
  nfct_set_attr_u16(ct.get(), ATTR_ORIG_PORT_DST, htons(tuple.dst_port));
  if (flow.zone != 0) nfct_set_attr_u16(ct.get(), ATTR_ZONE, flow.zone);

  if (nfct_query(handle_.get(), NFCT_Q_DESTROY, ct.get()) == 0) return true;
  if (errno == ENOENT) return false;  // expired or deleted by someone else since the dump
  throw ConntrackError(errno, "delete conntrack entry " + flow.ToString());
}

std::vector<Flow> ConntrackTable::List(IpFamily family, uint8_t protocol) {
  if (!IsPortProtocol(protocol)) {
    throw std::invalid_argument("conntrack list: " + ProtocolName(protocol) +
                                " is not udp, tcp or sctp");
  }
  std::vector<Flow> flows;
  const uint8_t af = AddressFamily(family);
  Dump(af, DumpContext(af), [&](Flow&& flow) {
    if (flow.protocol == protocol) flows.push_back(std::move(flow));
  });
  return flows;
}

size_t ConntrackTable::Delete(const FlowFilter& filter) {
  return DeleteAll(std::span<const FlowFilter>(&filter, 1));
}

size_t ConntrackTable::DeleteAll(std::span<const FlowFilter> filters) {
  if (filters.empty()) return 0;
  const FilterIndex index(filters);
  // A delete cannot be sent while the dump is being read on the same handle, so collect first.
  std::vector<Flow> stale;
  const uint8_t af = index.DumpFamily();
  Dump(af, DumpContext(af), [&](Flow&& flow) {
    if (index.Matches(flow)) stale.push_back(std::move(flow));
  });
  size_t deleted = 0;
  for (const Flow& flow : stale) {
    if (DeleteEntry(flow)) ++deleted;
  }
  return deleted;
}

}  // namespace sluice::conntrack
