#include "tests/support/parked_requests.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace sidecar::test {

ParkedRequests::~ParkedRequests() {
  for (size_t i = 0; i < requests_.size(); ++i) close(i);
}

bool ParkedRequests::open(std::uint16_t port, std::string_view request) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  requests_.push_back(Request{.fd = fd, .received = {}, .closed = false});
  ++open_;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return false;
  size_t sent = 0;
  while (sent < request.size()) {
    const ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  // Reads from here on never block: one poll() serves them all.
  return ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK) == 0;
}

bool ParkedRequests::read_now(Request& r) {
  char buf[4096];
  while (true) {
    const ssize_t n = ::recv(r.fd, buf, sizeof buf, 0);
    if (n > 0) {
      r.received.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return true;
    return false;
  }
}

void ParkedRequests::read_available(size_t i) {
  Request& r = requests_[i];
  if (r.closed || r.fd < 0) return;
  if (!read_now(r)) close(i);
}

void ParkedRequests::close(size_t i) {
  Request& r = requests_[i];
  if (r.fd < 0) return;
  ::close(r.fd);
  r.fd = -1;
  r.closed = true;
  --open_;
}

size_t ParkedRequests::drain_until_closed(std::chrono::milliseconds timeout) {
  // epoll, not poll: 10,000 descriptors scanned per wake-up would measure this loop, not the server.
  const int ep = ::epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) return open_;
  for (size_t i = 0; i < requests_.size(); ++i) {
    if (requests_[i].fd < 0) continue;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.u64 = i;
    ::epoll_ctl(ep, EPOLL_CTL_ADD, requests_[i].fd, &ev);
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::vector<epoll_event> ready(1024);
  while (open_ > 0) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    const int n = ::epoll_wait(ep, ready.data(), static_cast<int>(ready.size()), static_cast<int>(left.count()));
    for (int k = 0; k < n; ++k) read_available(static_cast<size_t>(ready[k].data.u64));  // close() drops it from ep
  }
  ::close(ep);
  return open_;
}

std::uint64_t raise_open_file_limit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return 0;
  if (limit.rlim_cur < limit.rlim_max) {
    rlimit raised = limit;
    raised.rlim_cur = limit.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
  }
  return limit.rlim_cur;
}

}  // namespace sidecar::test
