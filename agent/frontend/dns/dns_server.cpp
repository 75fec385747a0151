#include "agent/frontend/dns/dns_server.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/read.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/tcp_stream.hpp>

namespace sidecar::frontend::dns {

namespace beast = boost::beast;
using asio::ip::tcp;
using asio::ip::udp;
using asio::use_awaitable;

namespace {

// Datagrams read per wake-up before the loop yields to the rest of the agent (keepalives, watches).
constexpr int kUdpBurst = 64;
// How often a port-0 bind retries when the free UDP port is taken for TCP.
constexpr int kBindAttempts = 16;

std::string describe(const std::string& host, uint16_t port) {
  return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

}  // namespace

DnsServer::DnsServer(asio::io_context& io, runtime::Catalog& catalog, DnsOptions options)
    : io_(io),
      responder_(catalog, std::move(options)),
      udp_(io),
      acceptor_(io),
      batch_(kMaxTcpMessage),
      scope_(io, "dns") {}

std::unique_ptr<DnsServer> DnsServer::bind(asio::io_context& io, runtime::Catalog& catalog, DnsOptions options,
                                           std::string* error) {
  std::unique_ptr<DnsServer> server(new DnsServer(io, catalog, options));
  boost::system::error_code ec;
  const auto address = asio::ip::make_address(options.host, ec);
  if (ec) {
    *error = describe(options.host, options.port) + ": " + ec.message();
    return nullptr;
  }
  // UDP first; with port 0 its free port is then taken for TCP too (retried if TCP has it in use).
  for (int attempt = 0; attempt < kBindAttempts; ++attempt) {
    boost::system::error_code uec;
    boost::system::error_code tec;
    server->udp_ = udp::socket(io);
    server->acceptor_ = tcp::acceptor(io);
    server->udp_.open(address.is_v6() ? udp::v6() : udp::v4(), uec);
    if (!uec) server->udp_.bind(udp::endpoint(address, options.port), uec);
    if (uec) {
      *error = describe(options.host, options.port) + " (udp): " + uec.message();
      return nullptr;
    }
    const uint16_t port = server->udp_.local_endpoint().port();
    server->acceptor_.open(address.is_v6() ? tcp::v6() : tcp::v4(), tec);
    if (!tec) server->acceptor_.set_option(tcp::acceptor::reuse_address(true), tec);
    if (!tec) server->acceptor_.bind(tcp::endpoint(address, port), tec);
    if (!tec) server->acceptor_.listen(asio::socket_base::max_listen_connections, tec);
    if (!tec) {
      server->port_ = port;
      server->udp_.non_blocking(true, uec);
      return server;
    }
    if (options.port != 0 || tec != asio::error::address_in_use) {
      *error = describe(options.host, options.port) + " (tcp): " + tec.message();
      return nullptr;
    }
  }
  *error = describe(options.host, 0) + ": no port free for both UDP and TCP";
  return nullptr;
}

void DnsServer::start() {
  spdlog::info("dns: answering for {} on {} (udp and tcp)", responder_.options().domain,
               describe(responder_.options().host, port_));
  scope_.spawn("dns udp", udp_loop());
  scope_.spawn("dns tcp accept", accept_loop());
}

void DnsServer::stop() {
  if (stopping_) return;
  stopping_ = true;
  boost::system::error_code ec;
  udp_.close(ec);
  acceptor_.close(ec);
  for (tcp::socket* socket : live_) {
    socket->shutdown(tcp::socket::shutdown_both, ec);
    socket->close(ec);
  }
}

void DnsServer::send_udp(const uint8_t* data, size_t size, const udp::endpoint& to) {
  if (size == 0 || stopping_) return;
  boost::system::error_code ec;
  // Non-blocking: a full socket buffer drops this answer (the client retries), it never stalls the loop.
  udp_.send_to(asio::buffer(data, size), to, 0, ec);
}

asio::awaitable<void> DnsServer::udp_loop() {
  const int fd = udp_.native_handle();
  while (!stopping_) {
    boost::system::error_code ec;
    co_await udp_.async_wait(udp::socket::wait_read, asio::redirect_error(use_awaitable, ec));
    if (stopping_ || ec == asio::error::operation_aborted) break;
    for (int read = 0; read < kUdpBurst && !stopping_;) {
      const int got = batch_.receive(fd);
      if (got == 0) break;  // drained (or an ICMP error, retried on the next wake-up)
      read += got;
      for (int i = 0; i < got && !stopping_; ++i) {
        std::optional<DnsResponder::Exchange> ex = responder_.begin(batch_.query(i), batch_.query_size(i), false);
        if (!ex) continue;
        if (responder_.needs_sync(*ex)) {
          if (pending_ >= responder_.options().max_pending_lookups) {
            batch_.queue_answer(i, responder_.refuse(*ex, batch_.next_answer()));
            continue;
          }
          // The wait (up to lookup_timeout) must not hold up every other query: it runs on its own.
          ++pending_;
          std::vector<uint8_t> copy(batch_.query(i), batch_.query(i) + batch_.query_size(i));
          scope_.spawn("dns lookup", udp_after_sync(std::move(copy), batch_.sender(i)));
          continue;
        }
        // Synced: the lookup that keeps the watch from expiring completes without waiting.
        if (responder_.refresh_due(*ex)) co_await responder_.lookup(*ex);
        batch_.queue_answer(i, responder_.finish(*ex, batch_.next_answer()));
      }
      if (!stopping_) batch_.flush(fd);
      if (got < UdpBatch::kSize) break;
    }
  }
}

asio::awaitable<void> DnsServer::udp_after_sync(std::vector<uint8_t> message, udp::endpoint from) {
  std::optional<DnsResponder::Exchange> ex = responder_.begin(message.data(), message.size(), false);
  if (ex) {
    co_await responder_.lookup(*ex);
    if (!stopping_) {
      std::vector<uint8_t> out(kMaxTcpMessage);
      send_udp(out.data(), responder_.finish(*ex, out.data()), from);
    }
  }
  --pending_;
}

asio::awaitable<void> DnsServer::accept_loop() {
  asio::steady_timer retry(io_);
  while (!stopping_) {
    boost::system::error_code ec;
    tcp::socket socket = co_await acceptor_.async_accept(asio::redirect_error(use_awaitable, ec));
    if (stopping_) break;
    if (ec) {
      // EMFILE and friends: pause so a full fd table does not become a busy loop.
      retry.expires_after(std::chrono::milliseconds(100));
      co_await retry.async_wait(asio::redirect_error(use_awaitable, ec));
      continue;
    }
    if (live_.size() >= responder_.options().max_tcp_connections) {
      ++responder_.stats().tcp_refused;
      socket.close(ec);
      continue;
    }
    scope_.spawn("dns tcp connection", serve(std::move(socket)));
  }
}

// RFC 1035 4.2.2 / RFC 7766: each message is preceded by its length in two bytes; several per connection.
asio::awaitable<void> DnsServer::serve(tcp::socket socket) {
  beast::tcp_stream stream(std::move(socket));
  tcp::socket* registered = &stream.socket();
  live_.insert(registered);
  std::vector<uint8_t> in(kMaxTcpMessage);
  std::vector<uint8_t> out(2 + kMaxTcpMessage);
  const DnsOptions& options = responder_.options();
  for (unsigned served = 0; served < options.max_tcp_messages && !stopping_; ++served) {
    boost::system::error_code ec;
    uint8_t length[2];
    // One deadline for the whole message: a client trickling bytes is dropped all the same.
    stream.expires_after(options.tcp_timeout);
    co_await asio::async_read(stream, asio::buffer(length), asio::redirect_error(use_awaitable, ec));
    if (ec || stopping_) break;
    const size_t n = (size_t{length[0]} << 8) | length[1];
    co_await asio::async_read(stream, asio::buffer(in.data(), n), asio::redirect_error(use_awaitable, ec));
    if (ec || stopping_) break;
    std::optional<DnsResponder::Exchange> ex = responder_.begin(in.data(), n, true);
    if (!ex) break;  // malformed: the stream cannot be trusted any further
    if (responder_.needs_sync(*ex) || responder_.refresh_due(*ex)) co_await responder_.lookup(*ex);
    if (stopping_) break;
    const size_t size = responder_.finish(*ex, out.data() + 2);
    if (size == 0) break;
    out[0] = static_cast<uint8_t>(size >> 8);
    out[1] = static_cast<uint8_t>(size & 0xff);
    stream.expires_after(options.tcp_timeout);
    co_await asio::async_write(stream, asio::buffer(out.data(), size + 2), asio::redirect_error(use_awaitable, ec));
    if (ec) break;
  }
  boost::system::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  stream.socket().close(ignored);
  live_.erase(registered);
}

}  // namespace sidecar::frontend::dns
