#include "tests/support/tcp_proxy.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "tests/support/wait.hpp"

namespace sidecar::test {
namespace {

constexpr std::size_t kBufferBytes = 64 * 1024;

void set_nonblocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

sockaddr_in loopback(std::uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  return addr;
}

// One direction of one connection: bytes read from `from`, not yet written to `to`.
struct Pipe {
  int from = -1;
  int to = -1;
  std::string pending;
  bool eof = false;  // `from` reached end of stream; shut `to` down for writing once `pending` drains
};

struct Connection {
  Pipe up;    // client -> etcd
  Pipe down;  // etcd -> client
  bool closed = false;
};

// Moves bytes for one direction; false when the connection must be closed (error or both sides done).
bool pump(Pipe& p, bool readable, bool writable, std::atomic<std::uint64_t>& counter) {
  if (readable && p.pending.size() < kBufferBytes && !p.eof) {
    char buf[16384];
    const ssize_t n = ::read(p.from, buf, sizeof buf);
    if (n > 0) {
      p.pending.append(buf, static_cast<std::size_t>(n));
    } else if (n == 0) {
      p.eof = true;
    } else if (errno != EAGAIN && errno != EINTR) {
      return false;
    }
  }
  if (!p.pending.empty()) {  // nonblocking: a full socket is just EAGAIN
    const ssize_t n = ::send(p.to, p.pending.data(), p.pending.size(), MSG_NOSIGNAL);
    if (n > 0) {
      p.pending.erase(0, static_cast<std::size_t>(n));
      counter += static_cast<std::uint64_t>(n);
    } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
      return false;
    }
  }
  if (p.eof && p.pending.empty()) ::shutdown(p.to, SHUT_WR);
  return true;
}

}  // namespace

std::unique_ptr<TcpProxy> TcpProxy::start(std::uint16_t upstream_port) {
  std::unique_ptr<TcpProxy> proxy(new TcpProxy());
  proxy->upstream_port_ = upstream_port;
  proxy->listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (proxy->listen_fd_ < 0) return nullptr;
  const int one = 1;
  ::setsockopt(proxy->listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr = loopback(0);
  if (::bind(proxy->listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(proxy->listen_fd_, 64) != 0) {
    std::perror("TcpProxy: bind/listen");
    return nullptr;
  }
  socklen_t len = sizeof addr;
  ::getsockname(proxy->listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  proxy->port_ = ntohs(addr.sin_port);
  set_nonblocking(proxy->listen_fd_);
  proxy->wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (proxy->wake_fd_ < 0) return nullptr;
  proxy->thread_ = std::thread([p = proxy.get()] { p->run(); });
  return proxy;
}

TcpProxy::~TcpProxy() {
  stopping_ = true;
  wake();
  if (thread_.joinable()) thread_.join();
  if (listen_fd_ >= 0) ::close(listen_fd_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

void TcpProxy::wake() {
  const std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof one);
}

void TcpProxy::blackhole() {
  blackholed_ = true;
  const auto target = ++generation_;
  wake();
  // The thread may be in the middle of a pump; once it acknowledges, no further byte moves.
  wait_until([&] { return acknowledged_.load() >= target; }, std::chrono::seconds(2), std::chrono::milliseconds(1));
}

void TcpProxy::heal() {
  blackholed_ = false;
  wake();
}

void TcpProxy::run() {
  std::vector<Connection> connections;
  while (!stopping_) {
    const bool cut = blackholed_.load();
    acknowledged_ = generation_.load();
    std::vector<pollfd> fds;
    fds.push_back({wake_fd_, POLLIN, 0});
    // Not accepting while cut: the kernel still completes the handshake into the backlog, so a new
    // connection looks established and silent, exactly like a partition.
    if (!cut) fds.push_back({listen_fd_, POLLIN, 0});
    const std::size_t first_conn = fds.size();
    if (!cut) {
      for (auto& c : connections) {
        fds.push_back({c.up.from, static_cast<short>((c.up.eof ? 0 : POLLIN) | (c.down.pending.empty() ? 0 : POLLOUT)), 0});
        fds.push_back({c.down.from, static_cast<short>((c.down.eof ? 0 : POLLIN) | (c.up.pending.empty() ? 0 : POLLOUT)), 0});
      }
    }
    if (::poll(fds.data(), fds.size(), 1000) < 0 && errno != EINTR) break;
    if (fds[0].revents & POLLIN) {
      std::uint64_t drained;
      [[maybe_unused]] auto n = ::read(wake_fd_, &drained, sizeof drained);
    }
    if (stopping_) break;
    if (cut || blackholed_.load()) continue;

    for (std::size_t i = 0; i < connections.size(); ++i) {
      auto& c = connections[i];
      const short client_ev = fds[first_conn + 2 * i].revents;
      const short server_ev = fds[first_conn + 2 * i + 1].revents;
      const bool client_in = client_ev & (POLLIN | POLLHUP | POLLERR);
      const bool server_in = server_ev & (POLLIN | POLLHUP | POLLERR);
      if (!pump(c.up, client_in, server_ev & POLLOUT, bytes_forwarded_) ||
          !pump(c.down, server_in, client_ev & POLLOUT, bytes_forwarded_) || (c.up.eof && c.down.eof && c.up.pending.empty() && c.down.pending.empty())) {
        c.closed = true;
      }
    }
    for (auto& c : connections) {
      if (c.closed) {
        ::close(c.up.from);
        ::close(c.down.from);
      }
    }
    std::erase_if(connections, [](const Connection& c) { return c.closed; });

    if (fds[1].revents & POLLIN) {
      while (true) {
        const int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (client < 0) break;
        ++accepted_;
        const int server = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in addr = loopback(upstream_port_);
        if (server < 0 || ::connect(server, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
          // etcd is down: refuse the way a dead server does (the client sees the connection close).
          if (server >= 0) ::close(server);
          ::close(client);
          continue;
        }
        const int one = 1;
        ::setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        ::setsockopt(server, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        set_nonblocking(client);
        set_nonblocking(server);
        Connection c;
        c.up.from = client;
        c.up.to = server;
        c.down.from = server;
        c.down.to = client;
        connections.push_back(std::move(c));
      }
    }
  }
  for (auto& c : connections) {
    ::close(c.up.from);
    ::close(c.down.from);
  }
}

}  // namespace sidecar::test
