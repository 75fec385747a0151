// Owns: the admin HTTP listener (Boost.Beast) and its connections: /livez, /readyz, /metrics, /v1/status,
// /v1/drain, /v1/undrain, /v1/checks/.., /v1/maintenance (routing in core::handle_admin_request).
// Thread: io_context thread; handlers run on it, so they read agent state without locks. A stuck loop stops
// answering /livez, which is the point.
#pragma once

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without including it
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
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
  size_t max_connections = 16;
  size_t header_limit = 8 * 1024;
  size_t body_limit = 4096;  // a check report's note, bounded like a probe's output (core::kMaxCheckOutput)
  std::chrono::milliseconds io_timeout{5000};
  unsigned max_requests_per_connection = 100;
};

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
  uint64_t connections_refused() const { return refused_; }

 private:
  AdminServer(asio::io_context& io, AdminServerOptions options, core::AdminHandlers handlers);
  asio::awaitable<void> accept_loop();
  asio::awaitable<void> serve(asio::ip::tcp::socket socket);

  asio::io_context& io_;
  AdminServerOptions options_;
  core::AdminHandlers handlers_;
  asio::ip::tcp::acceptor acceptor_;
  asio::ip::tcp::endpoint local_;
  asio::steady_timer accept_retry_;
  std::set<asio::ip::tcp::socket*> live_;  // open connections, closed by stop()
  uint64_t refused_ = 0;
  bool stopping_ = false;
  TaskScope scope_;  // last: the accept loop and connections use the members above
};

}  // namespace sidecar::runtime
