#include "proxy/backends/nftables/encode.h"

#include <libnftnl/udata.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_nat.h>
#include <linux/rtnetlink.h>

#include <array>
#include <cstdio>
#include <cstring>
#include <new>

#include "dataplane/nft/netfilter_headers.h"
#include "dataplane/nft/rule_builder.h"

namespace sluice::proxy::nftables {
namespace {

using Op = Stmt::Op;
using nft::ExprPtr;
using nft::NewExprObject;

// nft's datatype ids (src/datatype.h), and how it folds a concatenation into one id.
constexpr uint32_t kTypeInteger = 4;
constexpr uint32_t kTypeIpv4 = 7;
constexpr uint32_t kTypeIpv6 = 8;
constexpr uint32_t kTypeInetProto = 12;
constexpr uint32_t kTypeInetService = 13;
constexpr uint32_t kNftByteorderHostEndian = 1;  // nft's enum byteorder
constexpr uint32_t Concat(std::initializer_list<uint32_t> types) {
  uint32_t id = 0;
  for (uint32_t t : types) id = (id << 6) | t;
  return id;
}
uint32_t AddrType(IpFamily f) { return f == IpFamily::kV4 ? kTypeIpv4 : kTypeIpv6; }
uint32_t AddrLen(IpFamily f) { return f == IpFamily::kV4 ? 4 : 16; }

uint8_t IpProto(api::Protocol p) {
  switch (p) {
    case api::Protocol::kTcp: return IPPROTO_TCP;
    case api::Protocol::kUdp: return IPPROTO_UDP;
    case api::Protocol::kSctp: return IPPROTO_SCTP;
  }
  return IPPROTO_TCP;
}

std::array<uint8_t, 4> Port4(uint16_t port) {
  return {static_cast<uint8_t>(port >> 8), static_cast<uint8_t>(port & 0xff), 0, 0};
}

void AppendAddr(std::vector<uint8_t>& out, const IpAddress& ip) {
  out.insert(out.end(), ip.data(), ip.data() + ip.size());
}

// 32-bit register number `index` words after NFT_REG32_00.
uint32_t Reg32(uint32_t index) { return NFT_REG32_00 + index; }

ExprPtr Meta(uint32_t key, uint32_t dreg) {
  ExprPtr e = NewExprObject("meta");
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_META_KEY, key);
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_META_DREG, dreg);
  return e;
}

ExprPtr MetaSet(uint32_t key, uint32_t sreg) {
  ExprPtr e = NewExprObject("meta");
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_META_KEY, key);
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_META_SREG, sreg);
  return e;
}

ExprPtr Bitwise(uint32_t reg, uint32_t mask, uint32_t xor_value) {
  ExprPtr e = NewExprObject("bitwise");
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_BITWISE_SREG, reg);
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_BITWISE_DREG, reg);
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_BITWISE_LEN, 4);
  nftnl_expr_set(e.get(), NFTNL_EXPR_BITWISE_MASK, &mask, 4);
  nftnl_expr_set(e.get(), NFTNL_EXPR_BITWISE_XOR, &xor_value, 4);
  return e;
}

ExprPtr Payload(uint32_t base, uint32_t offset, uint32_t len, uint32_t dreg) {
  ExprPtr e = NewExprObject("payload");
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_PAYLOAD_BASE, base);
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_PAYLOAD_OFFSET, offset);
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_PAYLOAD_LEN, len);
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_PAYLOAD_DREG, dreg);
  return e;
}

ExprPtr Cmp(uint32_t sreg, uint32_t op, const void* data, uint32_t len) {
  ExprPtr e = NewExprObject("cmp");
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_CMP_SREG, sreg);
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_CMP_OP, op);
  nftnl_expr_set(e.get(), NFTNL_EXPR_CMP_DATA, data, len);
  return e;
}

ExprPtr Immediate(uint32_t dreg, const void* data, uint32_t len) {
  ExprPtr e = NewExprObject("immediate");
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_IMM_DREG, dreg);
  nftnl_expr_set(e.get(), NFTNL_EXPR_IMM_DATA, data, len);
  return e;
}

ExprPtr VerdictExpr(int verdict, std::string_view chain = {}) {
  ExprPtr e = NewExprObject("immediate");
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_IMM_VERDICT, static_cast<uint32_t>(verdict));
  if (!chain.empty()) nftnl_expr_set_str(e.get(), NFTNL_EXPR_IMM_CHAIN, std::string(chain).c_str());
  return e;
}

ExprPtr Lookup(uint32_t sreg, std::string_view set, uint32_t set_id, bool data, uint32_t dreg) {
  ExprPtr e = NewExprObject("lookup");
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_LOOKUP_SREG, sreg);
  if (data) nftnl_expr_set_u32(e.get(), NFTNL_EXPR_LOOKUP_DREG, dreg);
  nftnl_expr_set_str(e.get(), NFTNL_EXPR_LOOKUP_SET, std::string(set).c_str());
  if (set_id != 0) nftnl_expr_set_u32(e.get(), NFTNL_EXPR_LOOKUP_SET_ID, set_id);
  return e;
}

ExprPtr Fib(uint32_t flags, uint32_t dreg) {
  ExprPtr e = NewExprObject("fib");
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_FIB_RESULT, NFT_FIB_RESULT_ADDRTYPE);
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_FIB_FLAGS, flags);
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_FIB_DREG, dreg);
  return e;
}

ExprPtr Ct(uint32_t key, uint32_t dreg) {
  ExprPtr e = NewExprObject("ct");
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_CT_KEY, key);
  nftnl_expr_set_u32(e.get(), NFTNL_EXPR_CT_DREG, dreg);
  return e;
}

void SetKeyByteorderHost(nftnl_set& set);

class Encoder {
 public:
  Encoder(nft::Batch& batch, std::string_view chain)
      : batch_(batch), rule_(NFPROTO_INET, kTable, chain), chain_(chain) {}

  void Encode(const Rule& rule) {
    rule_fingerprint_ = Fingerprint(rule);
    for (const Stmt& s : rule) Statement(s);
    // The fingerprint travels as user data.
    nft::UdataBufPtr buf(nftnl_udata_buf_alloc(32));
    if (!buf) throw std::bad_alloc();
    nftnl_udata_put(buf.get(), kFingerprintUdataType, sizeof rule_fingerprint_,
                    &rule_fingerprint_);
    for (const Stmt& s : rule) {
      if (s.op != Op::kDnatMap) continue;
      uint8_t block[9];
      block[0] = s.block;
      std::memcpy(block + 1, &s.offset, 4);
      std::memcpy(block + 5, &s.capacity, 4);
      nftnl_udata_put(buf.get(), kBlockUdataType, sizeof block, block);
    }
    nft::RulePtr built = rule_.Build();
    nftnl_rule_set_data(built.get(), NFTNL_RULE_USERDATA, nftnl_udata_buf_data(buf.get()),
                        nftnl_udata_buf_len(buf.get()));
    batch_.AppendRule(*built);
  }

 private:
  void Add(ExprPtr e) { rule_.AddExpr(std::move(e)); }

  void Nfproto(IpFamily f) {
    const uint8_t proto = f == IpFamily::kV4 ? NFPROTO_IPV4 : NFPROTO_IPV6;
    Add(Meta(NFT_META_NFPROTO, NFT_REG_1));
    Add(Cmp(NFT_REG_1, NFT_CMP_EQ, &proto, 1));
  }
  // ip saddr / ip daddr into `reg` (with the nfproto dependency an inet table needs).
  void LoadAddr(IpFamily f, bool source, uint32_t reg, bool with_nfproto = true) {
    if (with_nfproto) Nfproto(f);
    const bool v4 = f == IpFamily::kV4;
    const uint32_t offset = v4 ? (source ? 12 : 16) : (source ? 8 : 24);
    Add(Payload(NFT_PAYLOAD_NETWORK_HEADER, offset, AddrLen(f), reg));
  }
  void FibLocal(bool source) {
    const uint32_t local = RTN_LOCAL;
    Add(Fib(source ? NFTA_FIB_F_SADDR : NFTA_FIB_F_DADDR, NFT_REG_1));
    Add(Cmp(NFT_REG_1, NFT_CMP_EQ, &local, 4));
  }
  void CtBits(uint32_t key, uint32_t bits) {
    const uint32_t zero = 0;
    Add(Ct(key, NFT_REG_1));
    Add(Bitwise(NFT_REG_1, bits, 0));
    Add(Cmp(NFT_REG_1, NFT_CMP_NEQ, &zero, 4));
  }

  void Statement(const Stmt& s) {
    const IpFamily f = s.family;
    switch (s.op) {
      case Op::kSaddrPrefix: {
        const IpAddress net = s.prefix.NetworkAddress();
        // nft loads only the bytes the prefix covers when it ends on a byte boundary.
        const int bits = s.prefix.length();
        Nfproto(f);
        const uint32_t offset = f == IpFamily::kV4 ? 12 : 8;
        if (bits % 8 == 0) {
          const uint32_t len = static_cast<uint32_t>(bits / 8);
          Add(Payload(NFT_PAYLOAD_NETWORK_HEADER, offset, len, NFT_REG_1));
          Add(Cmp(NFT_REG_1, s.flag ? NFT_CMP_NEQ : NFT_CMP_EQ, net.data(), len));
        } else {
          const uint32_t len = AddrLen(f);
          Add(Payload(NFT_PAYLOAD_NETWORK_HEADER, offset, len, NFT_REG_1));
          std::vector<uint8_t> mask(len, 0), zero(len, 0);
          for (int b = 0; b < bits; ++b) mask[b / 8] |= static_cast<uint8_t>(0x80 >> (b % 8));
          ExprPtr e = NewExprObject("bitwise");
          nftnl_expr_set_u32(e.get(), NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
          nftnl_expr_set_u32(e.get(), NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
          nftnl_expr_set_u32(e.get(), NFTNL_EXPR_BITWISE_LEN, len);
          nftnl_expr_set(e.get(), NFTNL_EXPR_BITWISE_MASK, mask.data(), len);
          nftnl_expr_set(e.get(), NFTNL_EXPR_BITWISE_XOR, zero.data(), len);
          Add(std::move(e));
          Add(Cmp(NFT_REG_1, s.flag ? NFT_CMP_NEQ : NFT_CMP_EQ, net.data(), len));
        }
        break;
      }
      case Op::kFibSaddrLocal: FibLocal(true); break;
      case Op::kFibDaddrLocal: FibLocal(false); break;
      case Op::kDaddrNotLoopback:
        Nfproto(f);
        if (f == IpFamily::kV4) {
          const uint8_t net = 127;
          Add(Payload(NFT_PAYLOAD_NETWORK_HEADER, 16, 1, NFT_REG_1));
          Add(Cmp(NFT_REG_1, NFT_CMP_NEQ, &net, 1));
        } else {
          const IpAddress lo = IpAddress::MustParse("::1");
          Add(Payload(NFT_PAYLOAD_NETWORK_HEADER, 24, 16, NFT_REG_1));
          Add(Cmp(NFT_REG_1, NFT_CMP_NEQ, lo.data(), 16));
        }
        break;
      case Op::kL4proto: {
        const uint8_t proto = IpProto(s.proto);
        Add(Meta(NFT_META_L4PROTO, NFT_REG_1));
        Add(Cmp(NFT_REG_1, NFT_CMP_EQ, &proto, 1));
        break;
      }
      case Op::kCtStateNew: CtBits(NFT_CT_STATE, NF_CT_STATE_BIT(IP_CT_NEW)); break;
      case Op::kCtStateInvalid: CtBits(NFT_CT_STATE, NF_CT_STATE_INVALID_BIT); break;
      case Op::kCtStatusDnat: CtBits(NFT_CT_STATUS, IPS_DST_NAT); break;
      case Op::kMarkUnset: {
        const uint32_t zero = 0;
        Add(Meta(NFT_META_MARK, NFT_REG_1));
        Add(Bitwise(NFT_REG_1, kMasqueradeMark, 0));
        Add(Cmp(NFT_REG_1, NFT_CMP_EQ, &zero, 4));
        break;
      }
      case Op::kSaddrInSet:
        LoadAddr(f, true, NFT_REG_1);
        Add(Lookup(NFT_REG_1, s.name, 0, false, 0));
        break;
      case Op::kDaddrInSet:
        LoadAddr(f, false, NFT_REG_1);
        Add(Lookup(NFT_REG_1, s.name, 0, false, 0));
        break;
      case Op::kSaddrDaddrInSet:
        LoadAddr(f, true, NFT_REG_1);
        LoadAddr(f, false, Reg32(f == IpFamily::kV4 ? 1 : 4), false);
        Add(Lookup(NFT_REG_1, s.name, 0, false, 0));
        break;
      case Op::kVmapDaddrProtoPort: {
        const uint32_t words = f == IpFamily::kV4 ? 1 : 4;
        LoadAddr(f, false, NFT_REG_1);
        Add(Meta(NFT_META_L4PROTO, Reg32(words)));
        Add(Payload(NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, Reg32(words + 1)));
        Add(Lookup(NFT_REG_1, s.name, 0, true, NFT_REG_VERDICT));
        break;
      }
      case Op::kVmapProtoPort:
        Nfproto(f);
        Add(Meta(NFT_META_L4PROTO, NFT_REG_1));
        Add(Payload(NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2, Reg32(1)));
        Add(Lookup(NFT_REG_1, s.name, 0, true, NFT_REG_VERDICT));
        break;
      case Op::kNumgenVmap: {
        const std::string name = NextMapName();
        nft::SetPtr map = AnonymousMap(name, kTypeInteger, 4, NFT_DATA_VERDICT, 0);
        for (uint32_t i = 0; i < s.chains.size(); ++i) {
          nft::SetElemPtr elem = nft::MakeSetElem(
              std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(&i), 4));
          nftnl_set_elem_set_u32(elem.get(), NFTNL_SET_ELEM_VERDICT, static_cast<uint32_t>(NFT_GOTO));
          nftnl_set_elem_set_str(elem.get(), NFTNL_SET_ELEM_CHAIN, s.chains[i].c_str());
          nftnl_set_elem_add(map.get(), elem.release());
        }
        const uint32_t id = Commit(*map);
        Numgen(static_cast<uint32_t>(s.chains.size()));
        Add(Lookup(NFT_REG_1, name, id, true, NFT_REG_VERDICT));
        break;
      }
      case Op::kUpdateSaddrSet: {
        LoadAddr(f, true, NFT_REG_1);
        ExprPtr e = NewExprObject("dynset");
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_DYNSET_OP, NFT_DYNSET_OP_UPDATE);
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_DYNSET_SREG_KEY, NFT_REG_1);
        nftnl_expr_set_str(e.get(), NFTNL_EXPR_DYNSET_SET_NAME, s.name.c_str());
        Add(std::move(e));
        break;
      }
      case Op::kSetMark:
        Add(Meta(NFT_META_MARK, NFT_REG_1));
        Add(Bitwise(NFT_REG_1, ~kMasqueradeMark, kMasqueradeMark));
        Add(MetaSet(NFT_META_MARK, NFT_REG_1));
        break;
      case Op::kClearMark:
        Add(Meta(NFT_META_MARK, NFT_REG_1));
        Add(Bitwise(NFT_REG_1, 0xffffffffu, kMasqueradeMark));
        Add(MetaSet(NFT_META_MARK, NFT_REG_1));
        break;
      case Op::kJump: Add(VerdictExpr(NFT_JUMP, s.name)); break;
      case Op::kGoto: Add(VerdictExpr(NFT_GOTO, s.name)); break;
      case Op::kReturn: Add(VerdictExpr(NFT_RETURN)); break;
      case Op::kDrop: Add(VerdictExpr(NF_DROP)); break;
      case Op::kRejectTcpReset:
      case Op::kRejectIcmpx: {
        ExprPtr e = NewExprObject("reject");
        const bool tcp = s.op == Op::kRejectTcpReset;
        nftnl_expr_set_u32(e.get(), NFTNL_EXPR_REJECT_TYPE,
                           tcp ? NFT_REJECT_TCP_RST : NFT_REJECT_ICMPX_UNREACH);
        nftnl_expr_set_u8(e.get(), NFTNL_EXPR_REJECT_CODE,
                          tcp ? 0 : NFT_REJECT_ICMPX_PORT_UNREACH);
        Add(std::move(e));
        break;
      }
      case Op::kMasquerade: {
        ExprPtr e = NewExprObject("masq");
        if (s.flag) nftnl_expr_set_u32(e.get(), NFTNL_EXPR_MASQ_FLAGS, NF_NAT_RANGE_PROTO_RANDOM_FULLY);
        Add(std::move(e));
        break;
      }
      case Op::kDnat: Dnat(s); break;
      case Op::kDnatMap: {
        ExprPtr ng = NewExprObject("numgen");
        nftnl_expr_set_u32(ng.get(), NFTNL_EXPR_NG_DREG, NFT_REG_1);
        nftnl_expr_set_u32(ng.get(), NFTNL_EXPR_NG_MODULUS, s.count);
        nftnl_expr_set_u32(ng.get(), NFTNL_EXPR_NG_TYPE, NFT_NG_RANDOM);
        nftnl_expr_set_u32(ng.get(), NFTNL_EXPR_NG_OFFSET, s.offset);
        Add(std::move(ng));
        Add(Lookup(NFT_REG_1, EndpointsMapName(f, SlotShard(s.offset)), 0, true, NFT_REG_1));
        Nat(f, f == IpFamily::kV4 ? Reg32(1) : static_cast<uint32_t>(NFT_REG_2));
        break;
      }
    }
  }

  void Nat(IpFamily f, uint32_t port_reg) {
    ExprPtr e = NewExprObject("nat");
    nftnl_expr_set_u32(e.get(), NFTNL_EXPR_NAT_TYPE, NFT_NAT_DNAT);
    nftnl_expr_set_u32(e.get(), NFTNL_EXPR_NAT_FAMILY,
                       f == IpFamily::kV4 ? NFPROTO_IPV4 : NFPROTO_IPV6);
    nftnl_expr_set_u32(e.get(), NFTNL_EXPR_NAT_REG_ADDR_MIN, NFT_REG_1);
    nftnl_expr_set_u32(e.get(), NFTNL_EXPR_NAT_REG_PROTO_MIN, port_reg);
    nftnl_expr_set_u32(e.get(), NFTNL_EXPR_NAT_FLAGS, NF_NAT_RANGE_PROTO_SPECIFIED);
    Add(std::move(e));
  }

  void Numgen(uint32_t modulus) {
    ExprPtr e = NewExprObject("numgen");
    nftnl_expr_set_u32(e.get(), NFTNL_EXPR_NG_DREG, NFT_REG_1);
    nftnl_expr_set_u32(e.get(), NFTNL_EXPR_NG_MODULUS, modulus);
    nftnl_expr_set_u32(e.get(), NFTNL_EXPR_NG_TYPE, NFT_NG_RANDOM);
    nftnl_expr_set_u32(e.get(), NFTNL_EXPR_NG_OFFSET, 0);
    Add(std::move(e));
  }

  void Dnat(const Stmt& s) {
    const IpFamily f = s.family;
    uint32_t port_reg = NFT_REG_2;
    if (s.targets.size() == 1) {
      const DnatTarget& t = s.targets.front();
      const auto port = Port4(t.port);
      Add(Immediate(NFT_REG_1, t.ip.data(), AddrLen(f)));
      Add(Immediate(NFT_REG_2, port.data(), 2));
    } else {
      const uint32_t data_len = AddrLen(f) + 4;
      const std::string name = NextMapName();
      nft::SetPtr map = AnonymousMap(name, kTypeInteger, 4,
                                     Concat({AddrType(f), kTypeInetService}), data_len);
      for (uint32_t i = 0; i < s.targets.size(); ++i) {
        nft::SetElemPtr elem = nft::MakeSetElem(
            std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(&i), 4));
        std::vector<uint8_t> data;
        AppendAddr(data, s.targets[i].ip);
        const auto port = Port4(s.targets[i].port);
        data.insert(data.end(), port.begin(), port.end());
        nftnl_set_elem_set(elem.get(), NFTNL_SET_ELEM_DATA, data.data(),
                           static_cast<uint32_t>(data.size()));
        nftnl_set_elem_add(map.get(), elem.release());
      }
      const uint32_t id = Commit(*map);
      Numgen(static_cast<uint32_t>(s.targets.size()));
      Add(Lookup(NFT_REG_1, name, id, true, NFT_REG_1));
      port_reg = f == IpFamily::kV4 ? Reg32(1) : static_cast<uint32_t>(NFT_REG_2);
    }
    Nat(f, port_reg);
  }

  // Anonymous maps get a name of ours: with "__map%d" the kernel scans every set of the table
  // for a free number, which makes a table of N such maps cost O(N^2) to load (21 s for 10,000).
  // The name is a hash of the chain, the rule and the map's place in it: unique in the table,
  // and the same on every run.
  std::string NextMapName() {
    uint64_t h = 1469598103934665603ull;
    for (unsigned char c : chain_) {
      h ^= c;
      h *= 1099511628211ull;
    }
    h ^= rule_fingerprint_ + 0x9e3779b97f4a7c15ull * ++map_index_;
    h *= 1099511628211ull;
    char text[24];
    std::snprintf(text, sizeof text, "__m%016llx", static_cast<unsigned long long>(h));
    return text;
  }

  nft::SetPtr AnonymousMap(const std::string& name, uint32_t key_type, uint32_t key_len,
                           uint32_t data_type, uint32_t data_len) {
    nft::SetPtr map = nft::MakeSetRef(NFPROTO_INET, kTable, name);
    nftnl_set_set_u32(map.get(), NFTNL_SET_FLAGS,
                      NFT_SET_ANONYMOUS | NFT_SET_CONSTANT | NFT_SET_MAP);
    nftnl_set_set_u32(map.get(), NFTNL_SET_KEY_TYPE, key_type);
    nftnl_set_set_u32(map.get(), NFTNL_SET_KEY_LEN, key_len);
    nftnl_set_set_u32(map.get(), NFTNL_SET_DATA_TYPE, data_type);
    if (data_type != NFT_DATA_VERDICT) nftnl_set_set_u32(map.get(), NFTNL_SET_DATA_LEN, data_len);
    SetKeyByteorderHost(*map);
    return map;
  }

  // Sends the set and its elements ahead of the rule; returns the transaction id to look it up.
  uint32_t Commit(nftnl_set& map) {
    nftnl_set_set_u32(&map, NFTNL_SET_ID, ++next_set_id_);
    batch_.AddSet(map);
    batch_.AddSetElems(map);
    return next_set_id_;
  }

  nft::Batch& batch_;
  nft::RuleBuilder rule_;
  std::string chain_;
  uint64_t rule_fingerprint_ = 0;
  uint32_t map_index_ = 0;
  // Above the ids Batch::AddSet gives (message indexes), unique within any transaction.
  static inline thread_local uint32_t next_set_id_ = 0x80000000u;
};

// The user data nft 1.0.6 writes for `typeof numgen random mod 1 : ip daddr . th dport` (and
// ip6): key and data byte order and the typeof expressions. Only nft reads it, to print the
// endpoints maps (and so that `nft list` output loads back with `nft -f`); the kernel ignores it.
constexpr uint8_t kEndpointsTypeofUdata4[] = {
    0x00, 0x04, 0x01, 0x00, 0x00, 0x00, 0x01, 0x04, 0x00, 0x00, 0x00, 0x00,
    0x03, 0x1a, 0x00, 0x04, 0x17, 0x00, 0x00, 0x00, 0x01, 0x12, 0x00, 0x04,
    0x01, 0x00, 0x00, 0x00, 0x01, 0x04, 0x01, 0x00, 0x00, 0x00, 0x02, 0x04,
    0x00, 0x00, 0x00, 0x00, 0x04, 0x34, 0x00, 0x04, 0x0d, 0x00, 0x00, 0x00,
    0x01, 0x2c, 0x00, 0x14, 0x00, 0x04, 0x07, 0x00, 0x00, 0x00, 0x01, 0x0c,
    0x00, 0x04, 0x0c, 0x00, 0x00, 0x00, 0x01, 0x04, 0x0c, 0x00, 0x00, 0x00,
    0x01, 0x14, 0x00, 0x04, 0x07, 0x00, 0x00, 0x00, 0x01, 0x0c, 0x00, 0x04,
    0x0b, 0x00, 0x00, 0x00, 0x01, 0x04, 0x02, 0x00, 0x00, 0x00, 0x06, 0x04,
    0x00, 0x00, 0x00, 0x00,
};
constexpr uint8_t kEndpointsTypeofUdata6[] = {
    0x00, 0x04, 0x01, 0x00, 0x00, 0x00, 0x01, 0x04, 0x00, 0x00, 0x00, 0x00,
    0x03, 0x1a, 0x00, 0x04, 0x17, 0x00, 0x00, 0x00, 0x01, 0x12, 0x00, 0x04,
    0x01, 0x00, 0x00, 0x00, 0x01, 0x04, 0x01, 0x00, 0x00, 0x00, 0x02, 0x04,
    0x00, 0x00, 0x00, 0x00, 0x04, 0x34, 0x00, 0x04, 0x0d, 0x00, 0x00, 0x00,
    0x01, 0x2c, 0x00, 0x14, 0x00, 0x04, 0x07, 0x00, 0x00, 0x00, 0x01, 0x0c,
    0x00, 0x04, 0x0d, 0x00, 0x00, 0x00, 0x01, 0x04, 0x09, 0x00, 0x00, 0x00,
    0x01, 0x14, 0x00, 0x04, 0x07, 0x00, 0x00, 0x00, 0x01, 0x0c, 0x00, 0x04,
    0x0b, 0x00, 0x00, 0x00, 0x01, 0x04, 0x02, 0x00, 0x00, 0x00, 0x06, 0x04,
    0x00, 0x00, 0x00, 0x00,
};

// numgen writes a host-endian integer; nft reads the byte order of keys from the set's user
// data to print them (as 0, 1, ... rather than 0, 16777216, ...).
void SetKeyByteorderHost(nftnl_set& set) {
  nft::UdataBufPtr buf(nftnl_udata_buf_alloc(16));
  if (!buf) throw std::bad_alloc();
  nftnl_udata_put_u32(buf.get(), NFTNL_UDATA_SET_KEYBYTEORDER, kNftByteorderHostEndian);
  nftnl_set_set_data(&set, NFTNL_SET_USERDATA, nftnl_udata_buf_data(buf.get()),
                     nftnl_udata_buf_len(buf.get()));
}

nft::SetPtr StaticSet(const std::string& name, uint32_t key_type, uint32_t key_len, bool map) {
  nft::SetPtr set = nft::MakeSetRef(NFPROTO_INET, kTable, name);
  nftnl_set_set_u32(set.get(), NFTNL_SET_FLAGS, map ? NFT_SET_MAP : 0);
  nftnl_set_set_u32(set.get(), NFTNL_SET_KEY_TYPE, key_type);
  nftnl_set_set_u32(set.get(), NFTNL_SET_KEY_LEN, key_len);
  if (map) nftnl_set_set_u32(set.get(), NFTNL_SET_DATA_TYPE, NFT_DATA_VERDICT);
  return set;
}

}  // namespace

uint64_t Fingerprint(const Rule& rule) {
  // FNV-1a over the rule's text: the text names every field that reaches the kernel.
  const std::string text = RuleText(rule);
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h == 0 ? 1 : h;
}

namespace {

// The value of the first user data TLV of `type` (1 byte type, 1 byte length, value) with
// `length` bytes, or an empty span.
std::span<const uint8_t> FindUdata(std::span<const uint8_t> udata, uint8_t type, size_t length) {
  size_t i = 0;
  while (i + 2 <= udata.size()) {
    const uint8_t t = udata[i];
    const uint8_t len = udata[i + 1];
    if (i + 2 + len > udata.size()) break;
    if (t == type && len == length) return udata.subspan(i + 2, len);
    i += 2 + len;
  }
  return {};
}

}  // namespace

uint64_t ReadFingerprint(std::span<const uint8_t> udata) {
  std::span<const uint8_t> v = FindUdata(udata, kFingerprintUdataType, 8);
  if (v.empty()) return 0;
  uint64_t fp;
  std::memcpy(&fp, v.data(), 8);
  return fp;
}

std::optional<RuleBlock> ReadBlock(std::span<const uint8_t> udata) {
  std::span<const uint8_t> v = FindUdata(udata, kBlockUdataType, 9);
  if (v.empty()) return std::nullopt;
  RuleBlock b;
  b.block = v[0];
  std::memcpy(&b.offset, v.data() + 1, 4);
  std::memcpy(&b.capacity, v.data() + 5, 4);
  return b;
}

void AddTable(nft::Batch& batch) { batch.AddTable(*nft::MakeTable(NFPROTO_INET, kTable)); }

void AddStaticSets(nft::Batch& batch, const LayoutOptions& options) {
  for (IpFamily f : {IpFamily::kV4, IpFamily::kV6}) {
    const uint32_t addr_key = Concat({AddrType(f), kTypeInetProto, kTypeInetService});
    for (MapId m : kAllMaps) {
      const bool addr = MapHasAddress(m);
      batch.AddSet(*StaticSet(MapName(m, f),
                              addr ? addr_key : Concat({kTypeInetProto, kTypeInetService}),
                              addr ? AddrLen(f) + 8 : 8, true));
    }
    batch.AddSet(*StaticSet(SetName(SetId::kClusterIps, f), AddrType(f), AddrLen(f), false));
    batch.AddSet(*StaticSet(SetName(SetId::kHairpin, f), Concat({AddrType(f), AddrType(f)}),
                            2 * AddrLen(f), false));
    if (!options.nodeports_on_all_local_addresses) {
      batch.AddSet(*StaticSet(SetName(SetId::kNodePortIps, f), AddrType(f), AddrLen(f), false));
    }
  }
}

void AddEndpointsMap(nft::Batch& batch, IpFamily f, uint32_t shard) {
  nft::SetPtr eps = nft::MakeSetRef(NFPROTO_INET, kTable, EndpointsMapName(f, shard));
  nftnl_set_set_u32(eps.get(), NFTNL_SET_FLAGS, NFT_SET_MAP);
  nftnl_set_set_u32(eps.get(), NFTNL_SET_KEY_TYPE, kTypeInteger);
  nftnl_set_set_u32(eps.get(), NFTNL_SET_KEY_LEN, 4);
  nftnl_set_set_u32(eps.get(), NFTNL_SET_DATA_TYPE, Concat({AddrType(f), kTypeInetService}));
  nftnl_set_set_u32(eps.get(), NFTNL_SET_DATA_LEN, AddrLen(f) + 4);
  if (f == IpFamily::kV4) {
    nftnl_set_set_data(eps.get(), NFTNL_SET_USERDATA, kEndpointsTypeofUdata4,
                       sizeof kEndpointsTypeofUdata4);
  } else {
    nftnl_set_set_data(eps.get(), NFTNL_SET_USERDATA, kEndpointsTypeofUdata6,
                       sizeof kEndpointsTypeofUdata6);
  }
  batch.AddSet(*eps);
}

void AddChain(nft::Batch& batch, const Chain& chain) {
  if (chain.base()) {
    batch.AddChain(*nft::MakeBaseChain(NFPROTO_INET, kTable, chain.name, chain.type, chain.hook,
                                       chain.priority));
  } else {
    batch.AddChain(*nft::MakeChain(NFPROTO_INET, kTable, chain.name));
  }
}

void DeleteChain(nft::Batch& batch, std::string_view chain) {
  batch.DeleteChain(*nft::MakeChain(NFPROTO_INET, kTable, chain));
}

void AppendRule(nft::Batch& batch, std::string_view chain, const Rule& rule) {
  Encoder(batch, chain).Encode(rule);
}

void AddAffinitySet(nft::Batch& batch, const AffinitySet& set) {
  nft::SetPtr s = StaticSet(set.name, AddrType(set.family), AddrLen(set.family), false);
  nftnl_set_set_u32(s.get(), NFTNL_SET_FLAGS, NFT_SET_TIMEOUT | NFT_SET_EVAL);
  nftnl_set_set_u64(s.get(), NFTNL_SET_TIMEOUT, uint64_t{set.timeout_seconds} * 1000);
  batch.AddSet(*s);
}

void DeleteSet(nft::Batch& batch, std::string_view set) {
  nft::SetPtr s = nft::MakeSetRef(NFPROTO_INET, kTable, set);
  batch.DeleteSet(*s);
}

std::vector<uint8_t> ElementKeyBytes(const ElementKey& key) {
  std::vector<uint8_t> out;
  if (MapHasAddress(key.map)) AppendAddr(out, key.ip);
  const std::array<uint8_t, 4> proto = {IpProto(key.proto), 0, 0, 0};
  out.insert(out.end(), proto.begin(), proto.end());
  const auto port = Port4(key.port);
  out.insert(out.end(), port.begin(), port.end());
  return out;
}

std::vector<uint8_t> MemberKeyBytes(SetId set, const IpAddress& ip) {
  std::vector<uint8_t> out;
  AppendAddr(out, ip);
  if (set == SetId::kHairpin) AppendAddr(out, ip);
  return out;
}

nftnl_set& ElementWriter::SetFor(const std::string& name) {
  for (auto& [n, s] : sets_) {
    if (n == name) return *s;
  }
  sets_.emplace_back(name, nft::MakeSetRef(NFPROTO_INET, kTable, name));
  return *sets_.back().second;
}

void ElementWriter::Add(const Element& element) {
  nftnl_set& set = SetFor(MapName(element.key.map, element.key.family));
  const std::vector<uint8_t> key = ElementKeyBytes(element.key);
  nft::SetElemPtr elem = nft::MakeSetElem(key);
  if (element.verdict.drop) {
    nftnl_set_elem_set_u32(elem.get(), NFTNL_SET_ELEM_VERDICT, static_cast<uint32_t>(NF_DROP));
  } else {
    nftnl_set_elem_set_u32(elem.get(), NFTNL_SET_ELEM_VERDICT, static_cast<uint32_t>(NFT_GOTO));
    nftnl_set_elem_set_str(elem.get(), NFTNL_SET_ELEM_CHAIN, element.verdict.chain.c_str());
  }
  nftnl_set_elem_add(&set, elem.release());
}

void ElementWriter::AddMember(SetId set_id, const IpAddress& ip) {
  nftnl_set& set = SetFor(SetName(set_id, ip.family()));
  nftnl_set_elem_add(&set, nft::MakeSetElem(MemberKeyBytes(set_id, ip)).release());
}

std::vector<uint8_t> SlotKeyBytes(uint32_t slot) {
  std::vector<uint8_t> out(4);
  std::memcpy(out.data(), &slot, 4);  // host order, as numgen writes it
  return out;
}

std::vector<uint8_t> SlotDataBytes(const DnatTarget& target) {
  std::vector<uint8_t> out;
  AppendAddr(out, target.ip);
  const auto port = Port4(target.port);
  out.insert(out.end(), port.begin(), port.end());
  return out;
}

void ElementWriter::AddSlot(const EndpointSlot& slot) {
  nftnl_set& set = SetFor(EndpointsMapName(slot.family, SlotShard(slot.slot)));
  nft::SetElemPtr elem = nft::MakeSetElem(SlotKeyBytes(slot.slot));
  const std::vector<uint8_t> data = SlotDataBytes(slot.target);
  nftnl_set_elem_set(elem.get(), NFTNL_SET_ELEM_DATA, data.data(),
                     static_cast<uint32_t>(data.size()));
  nftnl_set_elem_add(&set, elem.release());
}

void ElementWriter::AddSlotKey(IpFamily family, uint32_t slot) {
  nftnl_set& set = SetFor(EndpointsMapName(family, SlotShard(slot)));
  nftnl_set_elem_add(&set, nft::MakeSetElem(SlotKeyBytes(slot)).release());
}

void ElementWriter::AppendAdds(nft::Batch& batch) {
  for (auto& [name, set] : sets_) batch.AddSetElems(*set);
}

void ElementWriter::AppendDeletes(nft::Batch& batch) {
  for (auto& [name, set] : sets_) batch.DeleteSetElems(*set);
}

}  // namespace sluice::proxy::nftables
