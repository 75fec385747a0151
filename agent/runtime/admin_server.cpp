#include "agent/runtime/admin_server.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>


namespace sidecar::runtime {

namespace beast = boost::beast;
namespace http = boost::beast::http;
using asio::ip::tcp;
using asio::use_awaitable;

namespace {

std::string describe(const tcp::endpoint& ep) {
  const auto addr = ep.address();
  return (addr.is_v6() ? "[" + addr.to_string() + "]" : addr.to_string()) + ":" + std::to_string(ep.port());
}

http::response<http::string_body> make_response(int status, unsigned version, const std::string& content_type,
                                                std::string body) {
  http::response<http::string_body> res{static_cast<http::status>(status), version};
  res.set(http::field::server, "etcd-sidecar");
  res.set(http::field::content_type, content_type);
  res.set(http::field::cache_control, "no-store");
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
}

}  // namespace

AdminServer::AdminServer(asio::io_context& io, AdminServerOptions options, core::AdminHandlers handlers)
    : io_(io), options_(std::move(options)), handlers_(std::move(handlers)), acceptor_(io), accept_retry_(io), scope_(io, "admin endpoint") {}

std::unique_ptr<AdminServer> AdminServer::bind(asio::io_context& io, AdminServerOptions options,
                                               core::AdminHandlers handlers, std::string* error) {
  std::unique_ptr<AdminServer> server(new AdminServer(io, std::move(options), std::move(handlers)));
  const std::string where = server->options_.host + ":" + std::to_string(server->options_.port);
  boost::system::error_code ec;
  const auto address = asio::ip::make_address(server->options_.host, ec);
  if (ec) {
    *error = where + ": " + ec.message();
    return nullptr;
  }
  const tcp::endpoint endpoint(address, server->options_.port);
  auto& acceptor = server->acceptor_;
  acceptor.open(endpoint.protocol(), ec);
  // SO_REUSEADDR: a restarted agent can bind while the old connections sit in TIME_WAIT. It does not let two
  // live listeners share the port on Linux, so "in use" is still reported.
  if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    *error = where + ": " + ec.message();
    return nullptr;
  }
  server->local_ = acceptor.local_endpoint(ec);
  return server;
}

void AdminServer::start() {
  spdlog::info("admin endpoint listening on http://{} (/livez /readyz /metrics /v1/status)", describe(local_));
  const auto address = local_.address();
  if (!address.is_loopback() && handlers_.token.empty()) {
    spdlog::warn("admin endpoint listens on {}, off loopback, without admin.token_file: anyone who reaches it "
                 "can drain this agent, report its checks and put its services in maintenance",
                 describe(local_));
  }
  scope_.spawn("accept", accept_loop());
}

void AdminServer::stop() {
  if (stopping_) return;
  stopping_ = true;
  boost::system::error_code ec;
  acceptor_.close(ec);
  accept_retry_.cancel();
  for (tcp::socket* socket : live_) {
    socket->shutdown(tcp::socket::shutdown_both, ec);
    socket->close(ec);
  }
}

asio::awaitable<void> AdminServer::accept_loop() {
  bool warned = false;
  while (!stopping_) {
    boost::system::error_code ec;
    tcp::socket socket = co_await acceptor_.async_accept(asio::redirect_error(use_awaitable, ec));
    if (stopping_) break;
    if (ec) {
      // EMFILE and friends: say it once, then pause so a full fd table does not become a busy loop.
      if (!warned) spdlog::warn("admin endpoint: accept failed: {}; retrying", ec.message());
      warned = true;
      accept_retry_.expires_after(std::chrono::milliseconds(100));
      co_await accept_retry_.async_wait(asio::redirect_error(use_awaitable, ec));
      continue;
    }
    warned = false;
    if (live_.size() >= options_.max_connections) {
      // Closing at once costs nothing to hold; the client sees a reset and retries.
      ++refused_;
      socket.close(ec);
      continue;
    }
    scope_.spawn("connection", serve(std::move(socket)));
  }
}

asio::awaitable<void> AdminServer::serve(tcp::socket socket) {
  beast::tcp_stream stream(std::move(socket));
  tcp::socket* registered = &stream.socket();
  live_.insert(registered);
  // The buffer's cap bounds what one connection can make us hold, whatever the parser limits say.
  beast::flat_buffer buffer(options_.header_limit + options_.body_limit);
  for (unsigned served = 0; served < options_.max_requests_per_connection && !stopping_; ++served) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(options_.header_limit));
    parser.body_limit(options_.body_limit);
    // One deadline for the whole request: a client trickling a byte at a time is dropped all the same.
    stream.expires_after(options_.io_timeout);
    boost::system::error_code ec;
    co_await http::async_read(stream, buffer, parser, asio::redirect_error(use_awaitable, ec));
    if (stopping_) break;
    if (ec) {
      int status = 0;
      std::string why;
      if (ec == http::error::header_limit || ec == beast::error_code(http::error::buffer_overflow)) {
        status = 431;
        why = "request header too large";
      } else if (ec == http::error::body_limit) {
        status = 413;
        why = "request body too large";
      } else if (ec != http::error::end_of_stream && ec != beast::error::timeout && ec != asio::error::eof &&
                 ec != asio::error::connection_reset && ec != asio::error::operation_aborted) {
        status = 400;
        why = "malformed request: " + ec.message();
      }
      if (status != 0) {
        auto res = make_response(status, 11, "application/json", nlohmann::json({{"error", why}}).dump() + "\n");
        res.keep_alive(false);
        stream.expires_after(options_.io_timeout);
        co_await http::async_write(stream, res, asio::redirect_error(use_awaitable, ec));
      }
      break;
    }
    const auto& req = parser.get();
    const std::string method(req.method_string());
    const std::string target(req.target());
    const std::string authorization(req[http::field::authorization]);
    core::AdminReply reply =
        core::handle_admin_request(core::AdminRequest{method, target, req.body(), authorization}, handlers_);
    spdlog::debug("admin: {} {} -> {}", method, target, reply.status);
    auto res = make_response(reply.status, req.version(), reply.content_type, std::move(reply.body));
    if (!reply.allow.empty()) res.set(http::field::allow, reply.allow);
    if (!reply.www_authenticate.empty()) res.set(http::field::www_authenticate, reply.www_authenticate);
    res.keep_alive(req.keep_alive() && served + 1 < options_.max_requests_per_connection);
    stream.expires_after(options_.io_timeout);
    co_await http::async_write(stream, res, asio::redirect_error(use_awaitable, ec));
    if (ec || !res.keep_alive() || stopping_) break;
  }
  boost::system::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  stream.socket().close(ignored);
  live_.erase(registered);
}

}  // namespace sidecar::runtime
