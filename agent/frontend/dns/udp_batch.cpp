#include "agent/frontend/dns/udp_batch.hpp"

#include <cerrno>
#include <cstring>

namespace sidecar::frontend::dns {

// new[] without (): default-initialized, so the pages stay untouched until written.
UdpBatch::UdpBatch(size_t answer_capacity)
    : capacity_(answer_capacity),
      in_(new uint8_t[kSize * kMaxQuery]),
      out_(new uint8_t[kSize * answer_capacity]) {}

int UdpBatch::receive(int fd) {
  queued_ = 0;
  for (int i = 0; i < kSize; ++i) {
    rx_iov_[i] = {in_.get() + static_cast<size_t>(i) * kMaxQuery, kMaxQuery};
    rx_[i] = {};
    rx_[i].msg_hdr.msg_name = &from_[i];
    rx_[i].msg_hdr.msg_namelen = sizeof from_[i];
    rx_[i].msg_hdr.msg_iov = &rx_iov_[i];
    rx_[i].msg_hdr.msg_iovlen = 1;
  }
  const int got = ::recvmmsg(fd, rx_.data(), kSize, MSG_DONTWAIT, nullptr);
  return got < 0 ? 0 : got;
}

boost::asio::ip::udp::endpoint UdpBatch::sender(int i) const {
  boost::asio::ip::udp::endpoint ep;
  const socklen_t len = rx_[i].msg_hdr.msg_namelen;
  if (len <= ep.capacity()) {
    std::memcpy(ep.data(), &from_[i], len);
    ep.resize(len);
  }
  return ep;
}

void UdpBatch::queue_answer(int i, size_t size) {
  if (size == 0) return;
  tx_iov_[queued_] = {next_answer(), size};
  tx_[queued_] = {};
  tx_[queued_].msg_hdr.msg_name = &from_[i];
  tx_[queued_].msg_hdr.msg_namelen = rx_[i].msg_hdr.msg_namelen;
  tx_[queued_].msg_hdr.msg_iov = &tx_iov_[queued_];
  tx_[queued_].msg_hdr.msg_iovlen = 1;
  ++queued_;
}

int UdpBatch::flush(int fd) {
  int sent = 0;
  while (sent < queued_) {
    const int n = ::sendmmsg(fd, tx_.data() + sent, static_cast<unsigned>(queued_ - sent), MSG_DONTWAIT);
    if (n > 0) {
      sent += n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    // EAGAIN (buffer full) or an error for the first message (e.g. ICMP unreachable): skip it, send the rest.
    ++sent;
  }
  queued_ = 0;
  return sent;
}

}  // namespace sidecar::frontend::dns
