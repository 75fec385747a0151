#include "agent/runtime/admin_server.hpp"

#include <sys/socket.h>

#include <cerrno>

#include <spdlog/spdlog.h>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
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

// Bytes already serialized, whole, under one deadline; whether they all went out.
asio::awaitable<bool> write_bytes_within(beast::tcp_stream& stream, std::string_view bytes,
                                         std::chrono::milliseconds timeout) {
  boost::system::error_code ec;
  stream.expires_after(timeout);
  co_await asio::async_write(stream, asio::buffer(bytes.data(), bytes.size()), asio::redirect_error(use_awaitable, ec));
  co_return !ec;
}

std::string describe(const tcp::endpoint& ep) {
  const auto addr = ep.address();
  return (addr.is_v6() ? "[" + addr.to_string() + "]" : addr.to_string()) + ":" + std::to_string(ep.port());
}

}  // namespace

http::response<http::string_body> make_admin_response(int status, unsigned version, std::string_view content_type,
                                                      std::string body) {
  http::response<http::string_body> res{static_cast<http::status>(status), version};
  res.set(http::field::server, "etcd-sidecar");
  res.set(http::field::content_type, beast::string_view(content_type.data(), content_type.size()));
  res.set(http::field::cache_control, "no-store");
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
}

bool AdminConnection::park() {
  if (parked_) return true;
  if (server_.parked_ + server_.detached_ >= server_.options_.max_parked) {
    ++server_.parked_refused_;
    return false;
  }
  parked_ = true;
  ++server_.parked_;
  server_.wake_accept();  // a slot of max_connections is free again
  return true;
}

void AdminConnection::unpark() {
  if (!parked_) return;
  parked_ = false;
  --server_.parked_;
}

bool AdminConnection::stopping() const { return server_.stopping_; }

ParkedSocket AdminConnection::detach() {
  // The parked slot moves with the socket: counted in detached_ from here, not in parked_.
  unpark();
  detached_ = true;
  return ParkedSocket(server_, stream_.release_socket());
}

ParkedSocket::ParkedSocket(AdminServer& server, tcp::socket socket) : server_(&server), socket_(std::move(socket)) {
  ++server_->detached_;
}

ParkedSocket::ParkedSocket(ParkedSocket&& other) noexcept
    : server_(std::exchange(other.server_, nullptr)), socket_(std::move(other.socket_)) {}

ParkedSocket::~ParkedSocket() {
  if (server_ == nullptr) return;
  --server_->detached_;
  boost::system::error_code ignored;
  socket_.close(ignored);
}

void ParkedSocket::resume(std::shared_ptr<const std::string> answer, bool keep_alive) && {
  if (server_ == nullptr) return;
  AdminServer& server = *std::exchange(server_, nullptr);
  --server.detached_;
  boost::system::error_code ec;
  if (server.stopping_) {
    socket_.close(ec);
    return;
  }
  // One change answers thousands of these at once, so the usual case takes no coroutine: the answer fits in
  // the socket's send buffer and goes out now, and a client that asked once is closed right after (nothing
  // is left unread, so close() sends a FIN, as shutdown would). A partial write or a keep-alive client goes
  // back to a connection coroutine.
  // send(2) with MSG_DONTWAIT rather than Asio's non_blocking() toggling: two ioctls fewer per answer.
  const ssize_t sent = ::send(socket_.native_handle(), answer->data(), answer->size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  if (sent < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
    socket_.close(ec);  // the client is gone
    return;
  }
  const size_t written = sent > 0 ? static_cast<size_t>(sent) : 0;
  if (written == answer->size()) {
    if (!keep_alive) {
      socket_.close(ec);
      return;
    }
    answer.reset();
  } else if (written > 0) {
    answer = std::make_shared<const std::string>(answer->substr(written));
  }
  server.scope_.spawn("connection", server.serve(std::move(socket_), std::move(answer), keep_alive));
}

asio::awaitable<bool> AdminConnection::write(http::response<http::string_body>& response) {
  boost::system::error_code ec;
  stream_.expires_after(server_.options_.io_timeout);
  co_await http::async_write(stream_, response, asio::redirect_error(use_awaitable, ec));
  const bool ok = !ec && !server_.stopping_;
  co_return ok;
}

asio::awaitable<bool> AdminConnection::write_bytes(std::string_view bytes) {
  const bool written = co_await write_bytes_within(stream_, bytes, server_.options_.io_timeout);
  co_return written && !server_.stopping_;
}

AdminServer::AdminServer(asio::io_context& io, AdminServerOptions options, core::AdminHandlers handlers)
    : io_(io), options_(std::move(options)), handlers_(std::move(handlers)), acceptor_(io), accept_retry_(io), accept_gate_(io), scope_(io, "admin endpoint") {}

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
  accept_gate_.cancel();
  for (tcp::socket* socket : live_) {
    socket->shutdown(tcp::socket::shutdown_both, ec);
    socket->close(ec);
  }
}

asio::awaitable<void> AdminServer::accept_loop() {
  bool warned = false;
  while (!stopping_) {
    boost::system::error_code ec;
    if (short_connections() >= options_.max_connections) {
      // Full: leave the next clients in the listen backlog until a connection ends or parks.
      accept_gate_.expires_at(asio::steady_timer::time_point::max());
      co_await accept_gate_.async_wait(asio::redirect_error(use_awaitable, ec));
      continue;
    }
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
    scope_.spawn("connection", serve(std::move(socket)));
  }
}

namespace {

// One request read off a connection, copied out of the parser: a connection that then waits in a
// long-lived route keeps this, not the parser's buffers (10,000 waiters must stay small).
struct ReadRequest {
  bool closed = false;  // the client went away or timed out: nothing to answer
  int error_status = 0;  // a malformed or oversized request: answer this and close
  std::string error;
  std::string method;
  std::string target;
  std::string body;
  std::string authorization;
  std::string accept;
  std::string last_event_id;
  unsigned version = 11;
  bool keep_alive = true;
};

asio::awaitable<ReadRequest> read_request(beast::tcp_stream& stream, beast::flat_buffer& buffer,
                                          const AdminServerOptions& options) {
  ReadRequest out;
  http::request_parser<http::string_body> parser;
  parser.header_limit(static_cast<std::uint32_t>(options.header_limit));
  parser.body_limit(options.body_limit);
  // One deadline for the whole request: a client trickling a byte at a time is dropped all the same.
  stream.expires_after(options.io_timeout);
  boost::system::error_code ec;
  co_await http::async_read(stream, buffer, parser, asio::redirect_error(use_awaitable, ec));
  if (ec) {
    if (ec == http::error::header_limit || ec == beast::error_code(http::error::buffer_overflow)) {
      out.error_status = 431;
      out.error = "request header too large";
    } else if (ec == http::error::body_limit) {
      out.error_status = 413;
      out.error = "request body too large";
    } else if (ec != http::error::end_of_stream && ec != beast::error::timeout && ec != asio::error::eof &&
               ec != asio::error::connection_reset && ec != asio::error::operation_aborted) {
      out.error_status = 400;
      out.error = "malformed request: " + ec.message();
    } else {
      out.closed = true;
    }
    co_return out;
  }
  auto& req = parser.get();
  out.method = std::string(req.method_string());
  out.target = std::string(req.target());
  out.body = std::move(req.body());
  out.authorization = std::string(req[http::field::authorization]);
  out.accept = std::string(req[http::field::accept]);
  out.last_event_id = std::string(req["Last-Event-ID"]);
  out.version = req.version();
  out.keep_alive = req.keep_alive();
  co_return out;
}

std::string_view path_of(std::string_view target) { return target.substr(0, target.find('?')); }

}  // namespace

// The loop a connection lives in. Its frame stays small on purpose: a blocking query suspends it for minutes,
// and 10,000 of them must cost little, so each request is read and answered in serve_one's frame, which is
// gone before a long-lived route starts.
asio::awaitable<void> AdminServer::serve(tcp::socket socket, std::shared_ptr<const std::string> first,
                                         bool keep_alive) {
  beast::tcp_stream stream(std::move(socket));
  tcp::socket* registered = &stream.socket();
  live_.insert(registered);
  bool open = true;
  if (first) {
    open = co_await write_bytes_within(stream, *first, options_.io_timeout) && keep_alive;
    first.reset();
  }
  // The buffer's cap bounds what one connection can make us hold, whatever the parser limits say.
  beast::flat_buffer buffer(options_.header_limit + options_.body_limit);
  for (unsigned served = 0; open && served < options_.max_requests_per_connection && !stopping_; ++served) {
    const bool last = served + 1 >= options_.max_requests_per_connection;
    std::optional<AdminHttpRequest> long_lived;
    if (!co_await serve_one(stream, buffer, last, long_lived) || stopping_) break;
    if (!long_lived) continue;
    if (buffer.size() == 0) buffer.shrink_to_fit();  // nothing pipelined: hold no buffer while waiting
    AdminConnection connection(*this, stream);
    connection.set_buffered(buffer.size() != 0);
    const bool again = co_await async_routes_->serve(connection, std::move(*long_lived));
    if (connection.detached()) {
      // The route holds the socket now (a parked blocking query); it comes back through ParkedSocket::resume.
      live_.erase(registered);
      wake_accept();
      co_return;
    }
    if (!again || stopping_) break;
  }
  boost::system::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  stream.socket().close(ignored);
  live_.erase(registered);
  wake_accept();
}

asio::awaitable<bool> AdminServer::serve_one(beast::tcp_stream& stream, beast::flat_buffer& buffer, bool last,
                                             std::optional<AdminHttpRequest>& long_lived) {
  ReadRequest req = co_await read_request(stream, buffer, options_);
  if (stopping_ || req.closed) co_return false;
  boost::system::error_code ec;
  if (req.error_status != 0) {
    auto res = make_admin_response(req.error_status, 11, "application/json",
                                   nlohmann::json({{"error", req.error}}).dump() + "\n");
    res.keep_alive(false);
    stream.expires_after(options_.io_timeout);
    co_await http::async_write(stream, res, asio::redirect_error(use_awaitable, ec));
    co_return false;
  }
  if (async_routes_ != nullptr && req.method == "GET" && async_routes_->handles(path_of(req.target))) {
    long_lived.emplace(AdminHttpRequest{std::move(req.method), std::move(req.target), std::move(req.accept),
                                        std::move(req.last_event_id), req.version, req.keep_alive && !last});
    co_return true;
  }
  core::AdminReply reply = core::handle_admin_request(
      core::AdminRequest{req.method, req.target, req.body, req.authorization}, handlers_);
  spdlog::debug("admin: {} {} -> {}", req.method, req.target, reply.status);
  auto res = make_admin_response(reply.status, req.version, reply.content_type, std::move(reply.body));
  if (!reply.allow.empty()) res.set(http::field::allow, reply.allow);
  if (!reply.www_authenticate.empty()) res.set(http::field::www_authenticate, reply.www_authenticate);
  res.keep_alive(req.keep_alive && !last);
  stream.expires_after(options_.io_timeout);
  co_await http::async_write(stream, res, asio::redirect_error(use_awaitable, ec));
  co_return !ec && res.keep_alive();
}

}  // namespace sidecar::runtime
