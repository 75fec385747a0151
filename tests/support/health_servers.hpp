// Owns: small real servers that health-check tests point the agent at: an HTTP server whose answer the
//       test flips, a TCP listener that can close and reopen on its port, a gRPC grpc.health.v1 server.
// Thread: each server runs on its own thread(s); every public method is thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace grpc {
class Server;
}

namespace sidecar::test {

using Clock = std::chrono::steady_clock;

// HTTP/1.1 on 127.0.0.1 (port 0, so never a clash). One request per connection, answered with the current
// status and body; every answer is recorded with its time, so a test can count what the agent saw.
class FlipHttpServer {
 public:
  struct Served {
    int status = 0;
    Clock::time_point at;
    std::string request;  // request line and headers as received
  };

  FlipHttpServer();
  ~FlipHttpServer();
  FlipHttpServer(const FlipHttpServer&) = delete;
  FlipHttpServer& operator=(const FlipHttpServer&) = delete;

  bool ok() const { return listen_fd_ >= 0; }
  std::uint16_t port() const { return port_; }
  std::string url(const std::string& path = "/healthz") const;

  void set_answer(int status, std::string body = "");
  // The next `n` requests get 503 "flap", then the current answer again.
  void fail_next(int n);
  // Read requests but never answer them (until the client gives up and closes).
  void set_hang(bool hang);

  std::vector<Served> served() const;
  size_t served_count() const;
  // Waits until at least `n` requests have been answered.
  bool wait_for_served(size_t n, std::chrono::milliseconds timeout) const;

 private:
  void run();
  void handle(int fd);

  int listen_fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  mutable std::mutex mu_;
  int status_ = 200;
  std::string body_;
  int fail_next_ = 0;
  bool hang_ = false;
  std::vector<Served> served_;
  std::thread thread_;
};

// A TCP listener on a fixed loopback port that accepts and closes every connection; close() makes the
// port refuse connections, open() takes it again.
class TcpListener {
 public:
  TcpListener();  // picks a free port and opens it
  ~TcpListener();
  TcpListener(const TcpListener&) = delete;
  TcpListener& operator=(const TcpListener&) = delete;

  bool open();
  void close();
  bool is_open() const;
  std::uint16_t port() const { return port_; }
  size_t accepted() const { return accepted_.load(); }

 private:
  void run(int fd);

  std::uint16_t port_ = 0;
  mutable std::mutex mu_;
  int listen_fd_ = -1;
  std::thread thread_;
  std::atomic<size_t> accepted_{0};
};

// A synchronous gRPC server implementing grpc.health.v1.Health/Check with statuses the test sets.
class GrpcHealthServer {
 public:
  enum class Status { kServing, kNotServing };

  // `listen`: "127.0.0.1:0" (a free port), or e.g. "127.0.0.2:<port>" for backends that share one port on
  // several loopback addresses (what a DNS name with several A records gives a gRPC client).
  explicit GrpcHealthServer(const std::string& listen = "127.0.0.1:0");
  ~GrpcHealthServer();
  GrpcHealthServer(const GrpcHealthServer&) = delete;
  GrpcHealthServer& operator=(const GrpcHealthServer&) = delete;

  bool ok() const { return port_ != 0; }
  std::uint16_t port() const { return static_cast<std::uint16_t>(port_); }
  // "" is the server as a whole. A service never set answers NOT_FOUND, as the standard says.
  void set_status(const std::string& service, Status status);
  size_t checks() const;
  // When the first Check reached this server (taken in the handler, before it answers); nullopt until then.
  // A latency bench's "the client's first request to a new backend".
  std::optional<Clock::time_point> first_check_at() const;

 private:
  class Service;
  std::unique_ptr<Service> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

}  // namespace sidecar::test
