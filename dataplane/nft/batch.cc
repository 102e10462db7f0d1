#include "dataplane/nft/batch.h"

#include <libmnl/libmnl.h>
#include <libnftnl/common.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <optional>

#include "dataplane/nft/netfilter_headers.h"
#include "dataplane/nft/nft_error.h"
#include "dataplane/nft/nft_socket.h"

namespace sluice::nft {
namespace {

// Room reserved for one message: every nf_tables attribute is below 64 KiB, and the element
// builder stops a list at 64 KiB plus one element.
constexpr size_t kMessageRoom = 256 * 1024;
// Chunks hold many messages; a new one starts when the room for one message is not left.
constexpr size_t kChunkSize = 2 * 1024 * 1024;
// Receive-buffer budget per ACK (an skb each, about 700 bytes of truesize).
constexpr size_t kAckRoom = 1024;

std::string Str(const char* s) { return s != nullptr ? s : "?"; }

std::string Describe(const nftnl_table& t) {
  return "table " + FamilyName(nftnl_table_get_u32(&t, NFTNL_TABLE_FAMILY)) + " " +
         Str(nftnl_table_get_str(&t, NFTNL_TABLE_NAME));
}

std::string Describe(const nftnl_chain& c) {
  return "chain " + FamilyName(nftnl_chain_get_u32(&c, NFTNL_CHAIN_FAMILY)) + " " +
         Str(nftnl_chain_get_str(&c, NFTNL_CHAIN_TABLE)) + " " +
         Str(nftnl_chain_get_str(&c, NFTNL_CHAIN_NAME));
}

std::string Describe(const nftnl_rule& r) {
  std::string s = "rule in chain " + FamilyName(nftnl_rule_get_u32(&r, NFTNL_RULE_FAMILY)) + " " +
                  Str(nftnl_rule_get_str(&r, NFTNL_RULE_TABLE)) + " " +
                  Str(nftnl_rule_get_str(&r, NFTNL_RULE_CHAIN));
  if (nftnl_rule_is_set(&r, NFTNL_RULE_HANDLE)) {
    s += " handle " + std::to_string(nftnl_rule_get_u64(&r, NFTNL_RULE_HANDLE));
  }
  if (std::optional<std::string> comment = GetComment(r)) s += " \"" + *comment + "\"";
  return s;
}

std::string Describe(const nftnl_set& s) {
  return "set " + FamilyName(nftnl_set_get_u32(&s, NFTNL_SET_FAMILY)) + " " +
         Str(nftnl_set_get_str(&s, NFTNL_SET_TABLE)) + " " +
         Str(nftnl_set_get_str(&s, NFTNL_SET_NAME));
}

size_t CountElems(const nftnl_set& set) {
  size_t count = 0;
  nftnl_set_elems_iter* iter = nftnl_set_elems_iter_create(&set);
  if (iter == nullptr) throw std::bad_alloc();
  while (nftnl_set_elems_iter_next(iter) != nullptr) ++count;
  nftnl_set_elems_iter_destroy(iter);
  return count;
}

uint16_t CreateFlags(IfExists if_exists) {
  return NLM_F_CREATE | (if_exists == IfExists::kFail ? NLM_F_EXCL : 0);
}

}  // namespace

Batch::Batch() {
  // BEGIN is not a message of ours (no ACK, no description); its seq is set in Send().
  // BEGIN lives apart from the messages: chunks are allocated only once a message comes (a
  // transaction written in parts has several batches, most of them small or empty).
  const nlmsghdr* begin = nftnl_batch_begin(begin_, 0);
  begin_len_ = NLMSG_ALIGN(begin->nlmsg_len);
  size_ = begin_len_;
}
Batch::Batch(Batch&&) noexcept = default;
Batch& Batch::operator=(Batch&&) noexcept = default;
Batch::~Batch() = default;

char* Batch::Next() {
  if (chunks_.empty() || chunks_.back().capacity - chunks_.back().used < kMessageRoom) {
    // The first chunk starts small: most batches are a handful of messages.
    const size_t capacity = chunks_.empty() ? kMessageRoom * 2 : kChunkSize;
    chunks_.push_back(Chunk{std::make_unique_for_overwrite<char[]>(capacity), 0, capacity});
  }
  return chunks_.back().data.get() + chunks_.back().used;
}

size_t Batch::Commit(std::string description) {
  Chunk& chunk = chunks_.back();
  const auto* message = reinterpret_cast<const nlmsghdr*>(chunk.data.get() + chunk.used);
  if (message->nlmsg_len > kMessageRoom) {
    // The builder has already written past our reservation: memory is corrupt.
    std::fprintf(stderr, "nft batch: message of %u bytes overran its buffer (%s)\n",
                 message->nlmsg_len, description.c_str());
    std::abort();
  }
  chunk.used += NLMSG_ALIGN(message->nlmsg_len);
  size_ += NLMSG_ALIGN(message->nlmsg_len);
  descriptions_.push_back(std::move(description));
  return descriptions_.size() - 1;
}

void Batch::Append(Batch&& other) {
  if (other.descriptions_.empty()) return;
  size_ += other.size_ - other.begin_len_;
  for (Chunk& c : other.chunks_) chunks_.push_back(std::move(c));
  descriptions_.insert(descriptions_.end(), std::make_move_iterator(other.descriptions_.begin()),
                       std::make_move_iterator(other.descriptions_.end()));
  other.chunks_.clear();
  other.descriptions_.clear();
  other.size_ = other.begin_len_;
}

size_t Batch::AddTable(const nftnl_table& table, IfExists if_exists) {
  nlmsghdr* nlh = nftnl_nlmsg_build_hdr(Next(), NFT_MSG_NEWTABLE,
                                        nftnl_table_get_u32(&table, NFTNL_TABLE_FAMILY),
                                        CreateFlags(if_exists) | NLM_F_ACK, 0);
  nftnl_table_nlmsg_build_payload(nlh, &table);
  return Commit((if_exists == IfExists::kFail ? "create " : "add ") + Describe(table));
}

size_t Batch::DeleteTable(const nftnl_table& table) {
  nlmsghdr* nlh = nftnl_nlmsg_build_hdr(
      Next(), NFT_MSG_DELTABLE, nftnl_table_get_u32(&table, NFTNL_TABLE_FAMILY), NLM_F_ACK, 0);
  nftnl_table_nlmsg_build_payload(nlh, &table);
  return Commit("delete " + Describe(table));
}

size_t Batch::AddChain(const nftnl_chain& chain, IfExists if_exists) {
  nlmsghdr* nlh = nftnl_nlmsg_build_hdr(Next(), NFT_MSG_NEWCHAIN,
                                        nftnl_chain_get_u32(&chain, NFTNL_CHAIN_FAMILY),
                                        CreateFlags(if_exists) | NLM_F_ACK, 0);
  nftnl_chain_nlmsg_build_payload(nlh, &chain);
  return Commit((if_exists == IfExists::kFail ? "create " : "add ") + Describe(chain));
}

size_t Batch::DeleteChain(const nftnl_chain& chain) {
  nlmsghdr* nlh = nftnl_nlmsg_build_hdr(
      Next(), NFT_MSG_DELCHAIN, nftnl_chain_get_u32(&chain, NFTNL_CHAIN_FAMILY), NLM_F_ACK, 0);
  nftnl_chain_nlmsg_build_payload(nlh, &chain);
  return Commit("delete " + Describe(chain));
}

size_t Batch::AddSet(nftnl_set& set) {
  // The kernel requires a transaction-local set id (it lets later messages refer to a set
  // before it has a handle); name lookups work as well, so any unique number will do.
  if (!nftnl_set_is_set(&set, NFTNL_SET_ID)) {
    nftnl_set_set_u32(&set, NFTNL_SET_ID, static_cast<uint32_t>(descriptions_.size() + 1));
  }
  nlmsghdr* nlh =
      nftnl_nlmsg_build_hdr(Next(), NFT_MSG_NEWSET, nftnl_set_get_u32(&set, NFTNL_SET_FAMILY),
                            NLM_F_CREATE | NLM_F_ACK, 0);
  nftnl_set_nlmsg_build_payload(nlh, &set);
  return Commit("add " + Describe(set));
}

size_t Batch::DeleteSet(const nftnl_set& set) {
  nlmsghdr* nlh = nftnl_nlmsg_build_hdr(
      Next(), NFT_MSG_DELSET, nftnl_set_get_u32(&set, NFTNL_SET_FAMILY), NLM_F_ACK, 0);
  nftnl_set_nlmsg_build_payload(nlh, const_cast<nftnl_set*>(&set));
  return Commit("delete " + Describe(set));
}

size_t Batch::AppendRule(nftnl_rule& rule) {
  nlmsghdr* nlh =
      nftnl_nlmsg_build_hdr(Next(), NFT_MSG_NEWRULE, nftnl_rule_get_u32(&rule, NFTNL_RULE_FAMILY),
                            NLM_F_CREATE | NLM_F_APPEND | NLM_F_ACK, 0);
  nftnl_rule_nlmsg_build_payload(nlh, &rule);
  return Commit("add " + Describe(rule));
}

size_t Batch::DeleteRule(nftnl_rule& rule) {
  nlmsghdr* nlh = nftnl_nlmsg_build_hdr(Next(), NFT_MSG_DELRULE,
                                        nftnl_rule_get_u32(&rule, NFTNL_RULE_FAMILY), NLM_F_ACK, 0);
  nftnl_rule_nlmsg_build_payload(nlh, &rule);
  return Commit("delete " + Describe(rule));
}

size_t Batch::FlushChain(uint16_t family, std::string_view table, std::string_view chain) {
  // DELRULE naming only table and chain deletes every rule of the chain.
  RulePtr rule = NewRuleObject();
  nftnl_rule_set_u32(rule.get(), NFTNL_RULE_FAMILY, family);
  nftnl_rule_set_str(rule.get(), NFTNL_RULE_TABLE, std::string(table).c_str());
  nftnl_rule_set_str(rule.get(), NFTNL_RULE_CHAIN, std::string(chain).c_str());
  nlmsghdr* nlh = nftnl_nlmsg_build_hdr(Next(), NFT_MSG_DELRULE, family, NLM_F_ACK, 0);
  nftnl_rule_nlmsg_build_payload(nlh, rule.get());
  return Commit("flush chain " + FamilyName(family) + " " + std::string(table) + " " +
                std::string(chain));
}

namespace {

template <typename Build>
size_t AppendElems(nftnl_set& set, Build&& build_one_message, size_t first_index) {
  nftnl_set_elems_iter* iter = nftnl_set_elems_iter_create(&set);
  if (iter == nullptr) throw std::bad_alloc();
  int more = 0;
  do {
    more = build_one_message(iter);
  } while (more > 0);
  nftnl_set_elems_iter_destroy(iter);
  return first_index;
}

}  // namespace

size_t Batch::AddSetElems(nftnl_set& set, IfExists if_exists, std::string_view what) {
  size_t count = CountElems(set);
  if (count == 0) return message_count();
  std::string description = std::string(if_exists == IfExists::kFail ? "create " : "add ") +
                            std::to_string(count) +
                            (count == 1 ? " element in " : " elements in ") + Describe(set);
  if (!what.empty()) description += " (" + std::string(what) + ")";
  uint16_t family = nftnl_set_get_u32(&set, NFTNL_SET_FAMILY);
  return AppendElems(
      set,
      [&](nftnl_set_elems_iter* iter) {
        nlmsghdr* nlh = nftnl_nlmsg_build_hdr(Next(), NFT_MSG_NEWSETELEM, family,
                                              CreateFlags(if_exists) | NLM_F_ACK, 0);
        int more = nftnl_set_elems_nlmsg_build_payload_iter(nlh, iter);
        Commit(description);
        return more;
      },
      message_count());
}

size_t Batch::DeleteSetElems(nftnl_set& set, std::string_view what) {
  size_t count = CountElems(set);
  if (count == 0) return message_count();
  std::string description = "delete " + std::to_string(count) +
                            (count == 1 ? " element of " : " elements of ") + Describe(set);
  if (!what.empty()) description += " (" + std::string(what) + ")";
  uint16_t family = nftnl_set_get_u32(&set, NFTNL_SET_FAMILY);
  return AppendElems(
      set,
      [&](nftnl_set_elems_iter* iter) {
        nlmsghdr* nlh = nftnl_nlmsg_build_hdr(Next(), NFT_MSG_DELSETELEM, family, NLM_F_ACK, 0);
        int more = nftnl_set_elems_nlmsg_build_payload_iter(nlh, iter);
        Commit(description);
        return more;
      },
      message_count());
}

void Batch::Send(NftSocket& socket) {
  const size_t count = descriptions_.size();
  if (count == 0) return;

  // Sequence numbers are assigned now, so a Batch is a pure value until it is sent.
  const uint32_t base = socket.ReserveSeq(static_cast<uint32_t>(count + 2));
  char* end_message = Next();  // room for END past the messages, not committed
  nftnl_batch_end(end_message, base + static_cast<uint32_t>(count) + 1);
  const size_t end_len = NLMSG_ALIGN(reinterpret_cast<nlmsghdr*>(end_message)->nlmsg_len);
  std::vector<iovec> iov;
  reinterpret_cast<nlmsghdr*>(begin_)->nlmsg_seq = base;
  iov.push_back(iovec{begin_, begin_len_});
  {
    uint32_t seq = base + 1;
    for (Chunk& chunk : chunks_) {
      size_t offset = 0;
      while (offset < chunk.used) {
        auto* message = reinterpret_cast<nlmsghdr*>(chunk.data.get() + offset);
        message->nlmsg_seq = seq++;
        offset += NLMSG_ALIGN(message->nlmsg_len);
      }
      if (chunk.used > 0) iov.push_back(iovec{chunk.data.get(), chunk.used});
    }
    iov.push_back(iovec{end_message, end_len});
  }

  socket.EnsureReceiveBuffer(count * kAckRoom + 64 * 1024);
  socket.Send(iov, size_ + end_len);

  // Every message asked for an ACK; the kernel queued them all before sendmsg() returned.
  const uint32_t first_seq = base + 1;
  const uint32_t end_seq = base + static_cast<uint32_t>(count) + 1;
  size_t acked = 0;
  std::optional<Ack> first_failure;
  size_t failures = 0;
  while (acked < count) {
    std::span<const uint8_t> data = socket.Receive();
    const auto* message = reinterpret_cast<const nlmsghdr*>(data.data());
    int remaining = static_cast<int>(data.size());
    for (; mnl_nlmsg_ok(message, remaining); message = mnl_nlmsg_next(message, &remaining)) {
      std::optional<Ack> ack = ParseAck(*message);
      if (!ack) continue;
      if (ack->seq == base || ack->seq == end_seq) {
        // The kernel refused the transaction as a whole (e.g. no memory to queue the errors).
        throw NftError(ack->error, "batch of " + std::to_string(count) +
                                       " messages starting with " + descriptions_.front());
      }
      if (ack->seq < first_seq || ack->seq >= end_seq) continue;  // from an earlier batch
      ++acked;
      if (ack->error != 0) {
        ++failures;
        if (!first_failure || ack->seq < first_failure->seq) first_failure = *ack;
      }
    }
  }
  if (first_failure) {
    size_t index = first_failure->seq - first_seq;
    std::string context = descriptions_[index];
    if (!first_failure->message.empty()) context += " (" + first_failure->message + ")";
    if (failures > 1) context += " [and " + std::to_string(failures - 1) + " more refused]";
    throw NftError(first_failure->error, context, index);
  }
}

}  // namespace sluice::nft
