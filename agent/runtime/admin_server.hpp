// Owns: the admin HTTP listener (Boost.Beast) and its connections: /livez, /readyz, /metrics, /v1/status,
// /v1/drain, /v1/undrain, /v1/checks/.., /v1/maintenance (routing in core::handle_admin_request), and the
// hand-over of long-lived routes (blocking queries, event streams) to AdminAsyncRoutes with their own bound.
// Thread: io_context thread; handlers run on it, so they read agent state without locks. A stuck loop stops
// answering /livez, which is the point.
#pragma once

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without including it
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "agent/core/admin_routes.hpp"
#include "agent/runtime/task_scope.hpp"

namespace sidecar::runtime {

namespace asio = boost::asio;

struct AdminServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 9464;
  // Bounds that keep a slow or hostile client from pinning memory or connections: each connection holds at
  // most one request of header_limit + body_limit bytes, and is dropped after io_timeout without progress
  // on a whole request or response.
  // Connections reading a request or being answered by a short route. At the bound the listener stops
  // accepting (the kernel's backlog holds the next ones) until one ends, so a burst of clients waits a
  // moment instead of being reset; connections parked in a long-lived route do not count.
  size_t max_connections = 16;
  // Connections parked in a long-lived route (AdminConnection::park); the next one is answered 429.
  size_t max_parked = 10000;
  size_t header_limit = 8 * 1024;
  size_t body_limit = 4096;  // a check report's note, bounded like a probe's output (core::kMaxCheckOutput)
  std::chrono::milliseconds io_timeout{5000};
  unsigned max_requests_per_connection = 100;
};

class AdminServer;

// One request, as a long-lived route needs it (the parser and its buffers are gone by then).
struct AdminHttpRequest {
  std::string method;
  std::string target;
  std::string accept;         // the Accept header
  std::string last_event_id;  // the Last-Event-ID header (an event stream resumed by the browser API)
  unsigned version = 11;
  bool keep_alive = true;
};

class AdminServer;

// A parked connection a route took out of its coroutine: the socket and its place among the parked ones
// (http.max_waiters). A blocking query waits as one of these, a socket and a small record, instead of a
// suspended chain of coroutine frames: 10,000 waiters must cost little. Destroyed without resume(): closed.
class ParkedSocket {
 public:
  ParkedSocket(AdminServer& server, asio::ip::tcp::socket socket);
  ~ParkedSocket();
  ParkedSocket(ParkedSocket&& other) noexcept;
  ParkedSocket& operator=(ParkedSocket&&) = delete;
  ParkedSocket(const ParkedSocket&) = delete;
  // Gives the connection back to the server: it writes `answer` (kept alive by the pointer) and, with
  // `keep_alive`, serves the client's next requests. A stopping server closes it instead.
  void resume(std::shared_ptr<const std::string> answer, bool keep_alive) &&;

 private:
  AdminServer* server_;  // null once resumed or moved from
  asio::ip::tcp::socket socket_;
};

// A connection handed to a long-lived route: its stream, and the pool it is counted in.
class AdminConnection {
 public:
  AdminConnection(AdminServer& server, boost::beast::tcp_stream& stream) : server_(server), stream_(stream) {}
  AdminConnection(const AdminConnection&) = delete;
  AdminConnection& operator=(const AdminConnection&) = delete;
  ~AdminConnection() { unpark(); }
  boost::beast::tcp_stream& stream() { return stream_; }
  // Moves the connection out of max_connections into max_parked, for an answer that waits or streams.
  // False when max_parked connections are parked already (answer 429).
  bool park();
  void unpark();
  bool stopping() const;
  // Only parked and with nothing read past the request (pipelined): then the route may take the socket.
  bool can_detach() const { return parked_ && !buffered_ && !detached_; }
  // Takes the socket out of the connection's coroutine, which then ends without closing it.
  ParkedSocket detach();
  bool detached() const { return detached_; }
  void set_buffered(bool buffered) { buffered_ = buffered; }
  // Writes a whole response under the server's io_timeout; false when the client is gone.
  asio::awaitable<bool> write(boost::beast::http::response<boost::beast::http::string_body>& response);
  // Writes bytes already serialized (one answer shared by every waiter of a change); the caller keeps them alive.
  asio::awaitable<bool> write_bytes(std::string_view bytes);

 private:
  AdminServer& server_;
  boost::beast::tcp_stream& stream_;
  bool parked_ = false;
  bool buffered_ = false;
  bool detached_ = false;
};

// Routes that answer from a coroutine of their own: lookups that may wait for a change or stream changes.
class AdminAsyncRoutes {
 public:
  virtual ~AdminAsyncRoutes() = default;
  // Whether this GET path (without the query) is served here; then handle_admin_request never sees it.
  virtual bool handles(std::string_view path) const = 0;
  // Answers one request on the connection. Returns whether the connection may serve another request.
  virtual asio::awaitable<bool> serve(AdminConnection& connection, AdminHttpRequest request) = 0;
};

// A response with the admin endpoint's common headers (server, content type, no-store).
boost::beast::http::response<boost::beast::http::string_body> make_admin_response(int status, unsigned version,
                                                                                  std::string_view content_type,
                                                                                  std::string body);

class AdminServer {
 public:
  // Opens, binds and listens at once, so a taken port is an error at start, not a log line later.
  // nullptr with `error` set ("127.0.0.1:9464: Address already in use") when that fails.
  static std::unique_ptr<AdminServer> bind(asio::io_context& io, AdminServerOptions options,
                                           core::AdminHandlers handlers, std::string* error);
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  void start();
  // Closes the listener and every open connection; their coroutines end on the next turn of the loop.
  void stop();
  // Completes once the accept loop and every connection have ended (after stop()).
  asio::awaitable<void> join() { return scope_.join(); }

  asio::ip::tcp::endpoint local_endpoint() const { return local_; }
  // Hooks may be installed after bind() (e.g. drain, extra metric collectors), before or after start().
  core::AdminHandlers& handlers() { return handlers_; }
  // Long-lived routes (GET only); set before start(). Not owned: it must outlive join().
  void set_async_routes(AdminAsyncRoutes* routes) { async_routes_ = routes; }
  // The bound of parked connections (http.max_waiters); a lower one refuses new parks, parked ones stay.
  void set_max_parked(size_t max_parked) { options_.max_parked = max_parked; }
  uint64_t parked() const { return parked_ + detached_; }
  uint64_t parked_refused() const { return parked_refused_; }
  const AdminServerOptions& options() const { return options_; }

 private:
  friend class AdminConnection;
  friend class ParkedSocket;
  AdminServer(asio::io_context& io, AdminServerOptions options, core::AdminHandlers handlers);
  asio::awaitable<void> accept_loop();
  // `first`: an answer to write before reading requests (a parked connection given back), then go on only
  // with `keep_alive`.
  asio::awaitable<void> serve(asio::ip::tcp::socket socket, std::shared_ptr<const std::string> first = nullptr,
                              bool keep_alive = true);
  // Reads one request and answers it, unless a long-lived route serves it: then it is moved to
  // `long_lived` for the caller. False: the connection is done.
  asio::awaitable<bool> serve_one(boost::beast::tcp_stream& stream, boost::beast::flat_buffer& buffer, bool last,
                                  std::optional<AdminHttpRequest>& long_lived);
  // Connections counted against max_connections; the accept loop waits while it is at the bound.
  size_t short_connections() const { return live_.size() - parked_; }
  void wake_accept() { accept_gate_.cancel(); }

  asio::io_context& io_;
  AdminServerOptions options_;
  core::AdminHandlers handlers_;
  asio::ip::tcp::acceptor acceptor_;
  asio::ip::tcp::endpoint local_;
  asio::steady_timer accept_retry_;
  asio::steady_timer accept_gate_;  // the accept loop waits on it at max_connections; cancel() wakes it
  std::set<asio::ip::tcp::socket*> live_;  // open connections, closed by stop()
  AdminAsyncRoutes* async_routes_ = nullptr;
  size_t parked_ = 0;    // parked connections still in their coroutine (event streams, pipelined requests)
  size_t detached_ = 0;  // parked connections held by a route as ParkedSocket
  uint64_t parked_refused_ = 0;
  bool stopping_ = false;
  TaskScope scope_;  // last: the accept loop and connections use the members above
};

}  // namespace sidecar::runtime
