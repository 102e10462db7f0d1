// One nf_tables transaction: NFNL_MSG_BATCH_BEGIN, the messages, NFNL_MSG_BATCH_END, applied by the
// kernel all or nothing. Building is pure (bytes in memory); Send() is the only I/O.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "dataplane/nft/objects.h"

namespace sluice::nft {

class NftSocket;

// How a NEW* message treats an object that already exists.
enum class IfExists {
  kKeep,  // NLM_F_CREATE: no error (for rules: a second rule is appended)
  kFail,  // NLM_F_CREATE | NLM_F_EXCL: EEXIST, which aborts the batch
};

class Batch {
 public:
  Batch();
  Batch(Batch&&) noexcept;
  Batch& operator=(Batch&&) noexcept;
  ~Batch();

  // Each call appends one message (element calls may append several) and returns the index of
  // the first one, to compare with NftError::message_index(). Objects must carry their family,
  // table and name; they are serialised immediately and may be freed afterwards.
  size_t AddTable(const nftnl_table& table, IfExists if_exists = IfExists::kKeep);
  size_t DeleteTable(const nftnl_table& table);
  size_t AddChain(const nftnl_chain& chain, IfExists if_exists = IfExists::kKeep);
  size_t DeleteChain(const nftnl_chain& chain);
  size_t AddSet(nftnl_set& set);
  // By name (the set must not be referenced by a rule when the transaction commits).
  size_t DeleteSet(const nftnl_set& set);
  size_t AppendRule(nftnl_rule& rule);
  // By NFTNL_RULE_HANDLE.
  size_t DeleteRule(nftnl_rule& rule);
  size_t FlushChain(uint16_t family, std::string_view table, std::string_view chain);
  // Elements attached to `set` (which names family, table and set). Split across messages so
  // that no element list exceeds the 64 KiB netlink attribute limit; appends nothing for an
  // empty list. `what` is added to error messages (e.g. the attachment the elements are for).
  size_t AddSetElems(nftnl_set& set, IfExists if_exists = IfExists::kKeep,
                     std::string_view what = {});
  size_t DeleteSetElems(nftnl_set& set, std::string_view what = {});

  // Moves `other`'s messages (not its BEGIN) to the end of this batch, without copying them:
  // a transaction can be built in parts that must be sent in a given order.
  void Append(Batch&& other);

  size_t message_count() const { return descriptions_.size(); }
  bool empty() const { return descriptions_.empty(); }
  // "create table inet sluice_cni_masq", ... one per message.
  const std::vector<std::string>& descriptions() const { return descriptions_; }
  size_t size_bytes() const { return size_; }

  // Sends the transaction and reads the ACK of every message. Throws NftError for the first
  // refused message (all others are undone by the kernel). An empty batch sends nothing.
  void Send(NftSocket& socket);

 private:
  char* Next();
  size_t Commit(std::string description);

  // Messages live in chunks (each message whole in one chunk) sent with one sendmsg() of an
  // iovec per chunk: a large batch is never copied to grow, and its memory is its size.
  struct Chunk {
    std::unique_ptr<char[]> data;
    size_t used = 0;
    size_t capacity = 0;
  };
  alignas(8) char begin_[64] = {};  // the BEGIN message (a netlink header and nfgenmsg)
  size_t begin_len_ = 0;
  std::vector<Chunk> chunks_;
  size_t size_ = 0;
  std::vector<std::string> descriptions_;
};

}  // namespace sluice::nft
