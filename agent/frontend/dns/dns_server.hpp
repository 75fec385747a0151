// Owns: the DNS listeners (UDP and TCP on one address) and their connections; answers come from a
//       DnsResponder over the catalog.
// Thread: io_context thread; one coroutine reads UDP, one accepts TCP, one per TCP connection and one per
//         UDP query waiting for its service's first sync. All in one TaskScope.
#pragma once

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without including it
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "agent/frontend/dns/dns_responder.hpp"
#include "agent/frontend/dns/udp_batch.hpp"
#include "agent/runtime/task_scope.hpp"

namespace sidecar::frontend::dns {

class DnsServer {
 public:
  // Binds UDP and TCP on options.host:options.port (port 0: one free port for both) at once, so a bad or
  // taken address is an error at start. nullptr with `error` set ("127.0.0.1:53: Permission denied").
  static std::unique_ptr<DnsServer> bind(asio::io_context& io, runtime::Catalog& catalog, DnsOptions options,
                                         std::string* error);
  DnsServer(const DnsServer&) = delete;
  DnsServer& operator=(const DnsServer&) = delete;

  void start();
  // Closes the sockets; the loops end on the next turn, queries waiting for a sync when it ends (at most
  // lookup_timeout, or at once when the catalog stops).
  void stop();
  asio::awaitable<void> join() { return scope_.join(); }

  uint16_t port() const { return port_; }
  const DnsResponder& responder() const { return responder_; }
  const DnsOptions& options() const { return responder_.options(); }

 private:
  DnsServer(asio::io_context& io, runtime::Catalog& catalog, DnsOptions options);
  asio::awaitable<void> udp_loop();
  asio::awaitable<void> udp_after_sync(std::vector<uint8_t> message, asio::ip::udp::endpoint from);
  asio::awaitable<void> accept_loop();
  asio::awaitable<void> serve(asio::ip::tcp::socket socket);
  void send_udp(const uint8_t* data, size_t size, const asio::ip::udp::endpoint& to);

  asio::io_context& io_;
  DnsResponder responder_;
  asio::ip::udp::socket udp_;
  asio::ip::tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  UdpBatch batch_;            // the UDP loop's queries and answers (kMaxTcpMessage each: the encoder's contract)
  size_t pending_ = 0;        // UDP queries waiting for a first sync
  std::set<asio::ip::tcp::socket*> live_;
  bool stopping_ = false;
  runtime::TaskScope scope_;  // last: every loop uses the members above
};

}  // namespace sidecar::frontend::dns
