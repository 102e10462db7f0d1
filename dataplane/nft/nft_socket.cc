#include "dataplane/nft/nft_socket.h"

#include <libmnl/libmnl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>

#include "dataplane/nft/netfilter_headers.h"
#include "dataplane/nft/nft_error.h"

namespace sluice::nft {
namespace {

// Large enough for any nf_tables message (attributes are capped at 64 KiB) and a dump skb.
constexpr size_t kReceiveBufferSize = 256 * 1024;
// nf_tables answers a batch while sendmsg() runs, so replies are queued when we read; the
// timeout only guards against a broken kernel or a foreign socket state.
constexpr int kReceiveTimeoutSeconds = 30;

int GetIntSockopt(int fd, int option) {
  int value = 0;
  socklen_t len = sizeof(value);
  if (getsockopt(fd, SOL_SOCKET, option, &value, &len) != 0) return 0;
  return value;
}

}  // namespace

NftError::NftError(int error, const std::string& context, std::optional<size_t> message_index)
    : std::runtime_error("nft: " + context + ": " + std::strerror(error)),
      error_(error),
      message_index_(message_index) {}

std::optional<Ack> ParseAck(const nlmsghdr& message) {
  if (message.nlmsg_type != NLMSG_ERROR) return std::nullopt;
  if (message.nlmsg_len < NLMSG_LENGTH(sizeof(nlmsgerr))) return std::nullopt;
  const auto* err = static_cast<const nlmsgerr*>(mnl_nlmsg_get_payload(&message));
  Ack ack;
  ack.seq = message.nlmsg_seq;
  ack.error = -err->error;
  if (message.nlmsg_flags & NLM_F_ACK_TLVS) {
    // TLVs follow the echoed request: only its header when the kernel capped the echo.
    size_t offset = sizeof(nlmsgerr);
    if (!(message.nlmsg_flags & NLM_F_CAPPED)) offset += err->msg.nlmsg_len - sizeof(nlmsghdr);
    if (NLMSG_LENGTH(offset) <= message.nlmsg_len) {
      // mnl_attr_for_each is C (void* to pointer); walk the attributes by hand.
      const auto* attr = static_cast<const nlattr*>(static_cast<const void*>(
          reinterpret_cast<const char*>(&message) + NLMSG_HDRLEN + offset));
      int remaining = static_cast<int>(message.nlmsg_len - NLMSG_LENGTH(offset));
      for (; mnl_attr_ok(attr, remaining); attr = mnl_attr_next(attr)) {
        remaining -= static_cast<int>(MNL_ALIGN(attr->nla_len));
        if (mnl_attr_get_type(attr) == NLMSGERR_ATTR_MSG &&
            mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) == 0) {
          ack.message = mnl_attr_get_str(attr);
        }
      }
    }
  }
  return ack;
}

void NftSocket::Closer::operator()(mnl_socket* socket) const { mnl_socket_close(socket); }

NftSocket::NftSocket() : receive_buffer_(kReceiveBufferSize) {
  socket_.reset(mnl_socket_open(NETLINK_NETFILTER));
  if (!socket_) throw NftError(errno, "open NETLINK_NETFILTER socket");
  if (mnl_socket_bind(socket_.get(), 0, MNL_SOCKET_AUTOPID) < 0) {
    throw NftError(errno, "bind NETLINK_NETFILTER socket");
  }
  portid_ = mnl_socket_get_portid(socket_.get());
  int fd = mnl_socket_get_fd(socket_.get());
  int one = 1;
  // Short error ACKs (no echoed request) with the kernel's text when it has one.
  setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
  setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
  timeval timeout{kReceiveTimeoutSeconds, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  sndbuf_ = GetIntSockopt(fd, SO_SNDBUF);
  rcvbuf_ = GetIntSockopt(fd, SO_RCVBUF);
  next_seq_ = static_cast<uint32_t>(time(nullptr));
}

NftSocket::~NftSocket() = default;
NftSocket::NftSocket(NftSocket&&) noexcept = default;
NftSocket& NftSocket::operator=(NftSocket&&) noexcept = default;

uint32_t NftSocket::ReserveSeq(uint32_t count) {
  uint32_t first = next_seq_;
  next_seq_ += count;
  return first;
}

void NftSocket::Send(const void* data, size_t size) {
  const iovec one{const_cast<void*>(data), size};
  Send(std::span<const iovec>(&one, 1), size);
}

void NftSocket::Send(std::span<const iovec> iov, size_t size) {
  int fd = mnl_socket_get_fd(socket_.get());
  // The kernel refuses a datagram above sk_sndbuf; it reports the doubled value we read back.
  size_t needed = size + 4096;
  if (needed > static_cast<size_t>(sndbuf_)) {
    int value = static_cast<int>(needed);
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &value, sizeof(value)) != 0) {
      setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &value, sizeof(value));
    }
    sndbuf_ = GetIntSockopt(fd, SO_SNDBUF);
  }
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  msghdr msg{};
  msg.msg_name = &kernel;
  msg.msg_namelen = sizeof kernel;
  msg.msg_iov = const_cast<iovec*>(iov.data());
  msg.msg_iovlen = iov.size();
  if (sendmsg(fd, &msg, 0) < 0) {
    throw NftError(errno, "send " + std::to_string(size) + " bytes to nf_tables");
  }
}

void NftSocket::EnsureReceiveBuffer(size_t bytes) {
  if (bytes <= static_cast<size_t>(rcvbuf_)) return;
  int fd = mnl_socket_get_fd(socket_.get());
  int value = static_cast<int>(bytes);
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &value, sizeof(value)) != 0) {
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &value, sizeof(value));
  }
  rcvbuf_ = GetIntSockopt(fd, SO_RCVBUF);
}

std::span<const uint8_t> NftSocket::Receive() {
  ssize_t n = mnl_socket_recvfrom(socket_.get(), receive_buffer_.data(), receive_buffer_.size());
  if (n < 0) {
    int error = errno;
    if (error == EAGAIN || error == EWOULDBLOCK) error = ETIMEDOUT;
    throw NftError(error, "receive from nf_tables");
  }
  return {receive_buffer_.data(), static_cast<size_t>(n)};
}

void NftSocket::Query(nlmsghdr& request, const std::string& context,
                      const std::function<void(const nlmsghdr&)>& on_message) {
  const bool dump = (request.nlmsg_flags & NLM_F_DUMP) == NLM_F_DUMP;
  if (!dump) request.nlmsg_flags |= NLM_F_ACK;
  request.nlmsg_seq = ReserveSeq(1);
  request.nlmsg_pid = 0;
  Send(&request, request.nlmsg_len);

  bool interrupted = false;
  for (;;) {
    std::span<const uint8_t> data = Receive();
    const auto* message = reinterpret_cast<const nlmsghdr*>(data.data());
    int remaining = static_cast<int>(data.size());
    for (; mnl_nlmsg_ok(message, remaining); message = mnl_nlmsg_next(message, &remaining)) {
      if (message->nlmsg_seq != request.nlmsg_seq) continue;  // late reply to an earlier call
      if (message->nlmsg_flags & NLM_F_DUMP_INTR) interrupted = true;
      if (message->nlmsg_type == NLMSG_DONE) {
        if (message->nlmsg_len >= NLMSG_LENGTH(sizeof(int))) {
          int status = *static_cast<const int*>(mnl_nlmsg_get_payload(message));
          if (status < 0) throw NftError(-status, context);
        }
        if (interrupted) throw NftError(EINTR, context + " (ruleset changed during the dump)");
        return;
      }
      if (std::optional<Ack> ack = ParseAck(*message)) {
        if (ack->error != 0) {
          throw NftError(ack->error,
                         ack->message.empty() ? context : context + " (" + ack->message + ")");
        }
        if (!dump) return;
        continue;
      }
      if (message->nlmsg_type < NLMSG_MIN_TYPE) continue;  // NOOP, OVERRUN
      on_message(*message);
    }
  }
}

}  // namespace sluice::nft
