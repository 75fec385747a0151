// Owns: a loopback TCP forwarder (listening socket, every accepted connection and its upstream socket) and
//       the thread that copies bytes between them.
// Thread: one forwarding thread; blackhole()/heal()/counters may be called from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

namespace sidecar::test {

// Sits between the agent and etcd so a test can cut the network without touching either process. A
// black hole is what a real partition looks like: connections stay open and nothing is refused, bytes
// simply stop flowing (new connections complete the TCP handshake in the kernel backlog and then hear
// nothing). Bytes already read are held, not dropped, and flow again after heal(), like TCP
// retransmission after a partition ends.
class TcpProxy {
 public:
  // Listens on a free 127.0.0.1 port and forwards each connection to 127.0.0.1:upstream_port (connected
  // when the client connection is accepted; a refused upstream closes the client). nullptr on failure.
  static std::unique_ptr<TcpProxy> start(std::uint16_t upstream_port);
  ~TcpProxy();  // stops the thread and closes every socket
  TcpProxy(const TcpProxy&) = delete;
  TcpProxy& operator=(const TcpProxy&) = delete;

  std::uint16_t port() const { return port_; }
  std::string client_url() const { return "http://127.0.0.1:" + std::to_string(port_); }

  void blackhole();  // returns once the forwarding thread has stopped moving bytes
  void heal();
  bool blackholed() const { return blackholed_.load(); }
  // Bytes copied in either direction so far; a test can check a cut really stopped the traffic.
  std::uint64_t bytes_forwarded() const { return bytes_forwarded_.load(); }
  std::uint64_t connections_accepted() const { return accepted_.load(); }

 private:
  TcpProxy() = default;
  void run();
  void wake();

  int listen_fd_ = -1;
  int wake_fd_ = -1;  // eventfd: state changes and shutdown interrupt poll()
  std::uint16_t port_ = 0;
  std::uint16_t upstream_port_ = 0;
  std::atomic<bool> blackholed_{false};
  std::atomic<bool> stopping_{false};
  std::atomic<std::uint64_t> generation_{0};       // bumped by blackhole(); the thread acknowledges it
  std::atomic<std::uint64_t> acknowledged_{0};
  std::atomic<std::uint64_t> bytes_forwarded_{0};
  std::atomic<std::uint64_t> accepted_{0};
  std::thread thread_;
};

}  // namespace sidecar::test
