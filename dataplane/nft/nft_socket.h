// A netlink socket to nf_tables (NETLINK_NETFILTER), bound in the network namespace of the thread
// that constructs it; it stays there for its whole life, whatever the thread does later. Not
// thread-safe: one user at a time.
#pragma once

#include <linux/netlink.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

struct mnl_socket;

namespace sluice::nft {

// What one NLMSG_ERROR message says: the seq it answers, the errno (0 = plain ACK) and the
// kernel's extended-ACK text, if any.
struct Ack {
  uint32_t seq = 0;
  int error = 0;
  std::string message;
};
std::optional<Ack> ParseAck(const nlmsghdr& message);

class NftSocket {
 public:
  // Opens and binds; throws NftError.
  NftSocket();
  ~NftSocket();
  NftSocket(NftSocket&&) noexcept;
  NftSocket& operator=(NftSocket&&) noexcept;
  NftSocket(const NftSocket&) = delete;
  NftSocket& operator=(const NftSocket&) = delete;

  uint32_t portid() const { return portid_; }
  // Reserves `count` consecutive sequence numbers and returns the first.
  uint32_t ReserveSeq(uint32_t count);

  // Sends one datagram, first growing SO_SNDBUF if it would not fit.
  void Send(const void* data, size_t size);
  // The same, gathered from `iov` (`size` bytes in all).
  void Send(std::span<const iovec> iov, size_t size);
  // Makes sure `bytes` of replies can queue up without loss (each ACK is a separate skb).
  void EnsureReceiveBuffer(size_t bytes);
  // Blocks (with a timeout) for the next datagram; the view is valid until the next call.
  std::span<const uint8_t> Receive();

  // Sends a GET request built by the caller (its seq and ACK flag are set here) and hands every
  // reply message to `on_message`. A dump ends at NLMSG_DONE, a single get at its ACK. Errors
  // throw NftError naming `context`; an interrupted dump (the ruleset changed meanwhile) throws
  // NftError(EINTR) after draining, so the caller can retry.
  void Query(nlmsghdr& request, const std::string& context,
             const std::function<void(const nlmsghdr&)>& on_message);

 private:
  struct Closer {
    void operator()(mnl_socket* socket) const;
  };
  std::unique_ptr<mnl_socket, Closer> socket_;
  uint32_t portid_ = 0;
  uint32_t next_seq_ = 0;
  int sndbuf_ = 0;
  int rcvbuf_ = 0;
  std::vector<uint8_t> receive_buffer_;
};

}  // namespace sluice::nft
