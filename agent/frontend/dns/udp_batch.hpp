// Owns: the buffers of one batch of UDP queries and their answers, read with recvmmsg(2) and sent with
//       sendmmsg(2): two system calls per batch instead of two per query (knotd batches the same way).
// Thread: the DNS server's UDP loop only.
#pragma once

#include <sys/socket.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>

#include <boost/asio/ip/udp.hpp>

namespace sidecar::frontend::dns {

class UdpBatch {
 public:
  static constexpr int kSize = 16;
  // A DNS query is a few dozen bytes; a datagram longer than this is cut (and then fails to parse).
  static constexpr size_t kMaxQuery = 4096;

  // `answer_capacity`: what the encoder may write per answer (kMaxTcpMessage). Memory is reserved, not
  // touched: only the pages answers are written to become resident.
  explicit UdpBatch(size_t answer_capacity);

  // Reads up to kSize waiting datagrams without blocking; how many (0: none waiting, or an error).
  int receive(int fd);
  const uint8_t* query(int i) const { return in_.get() + static_cast<size_t>(i) * kMaxQuery; }
  size_t query_size(int i) const { return rx_[i].msg_len; }
  boost::asio::ip::udp::endpoint sender(int i) const;

  // Where the next answer is encoded (answer_capacity bytes), and queue it, `size` bytes, to query i's sender.
  uint8_t* next_answer() { return out_.get() + static_cast<size_t>(queued_) * capacity_; }
  void queue_answer(int i, size_t size);
  // Sends the queued answers without blocking; those the socket buffer cannot take are dropped (the
  // client retries), as a full buffer would drop one send_to. Returns how many went out.
  int flush(int fd);

 private:
  size_t capacity_;
  std::unique_ptr<uint8_t[]> in_;
  std::unique_ptr<uint8_t[]> out_;
  std::array<mmsghdr, kSize> rx_{};
  std::array<iovec, kSize> rx_iov_{};
  std::array<sockaddr_storage, kSize> from_{};
  std::array<mmsghdr, kSize> tx_{};
  std::array<iovec, kSize> tx_iov_{};
  int queued_ = 0;
};

}  // namespace sidecar::frontend::dns
