// Owns: the probe of one health check (HTTP GET, TCP connect, exec, gRPC Health/Check) and the sockets,
//       child process or RPC of the run in flight.
// Thread: io_context thread only. A gRPC probe's completion arrives through a CompletionBridge, already on it.
#pragma once

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without including it
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "agent/core/manifest.hpp"
#include "agent/runtime/command.hpp"

namespace grpc {
class Channel;
class ClientContext;
}  // namespace grpc

namespace sidecar::etcd {
class CompletionBridge;
}

namespace sidecar::runtime {

namespace asio = boost::asio;

struct ProbeResult {
  bool passed = false;
  std::string output;  // what the check said: "HTTP 200: UP", "exit 3: db down", "timed out after 1000 ms"
  std::chrono::milliseconds took{0};
};

// A check never runs twice at once: the owner awaits run() before starting the next one, so a slow check
// delays its own next run instead of piling up. Every run ends by spec.timeout (a timeout is a failure).
class CheckRunner {
 public:
  // `bridge` is required for grpc checks (their completions), unused otherwise.
  CheckRunner(asio::io_context& io, core::CheckSpec spec, etcd::CompletionBridge* bridge);
  ~CheckRunner();
  CheckRunner(const CheckRunner&) = delete;
  CheckRunner& operator=(const CheckRunner&) = delete;

  asio::awaitable<ProbeResult> run();
  // Shutdown: ends the run in flight at once (sockets closed, process group killed, RPC cancelled).
  void abort();

  const core::CheckSpec& spec() const { return spec_; }

 private:
  asio::awaitable<ProbeResult> probe_http();
  asio::awaitable<ProbeResult> probe_tcp();
  asio::awaitable<ProbeResult> probe_exec();
  asio::awaitable<ProbeResult> probe_grpc();
  // Resolves and connects socket_; an error text on failure.
  asio::awaitable<std::string> connect();
  void arm_deadline();
  void cancel_io();
  std::string failure(const std::string& what) const;

  asio::io_context& io_;
  core::CheckSpec spec_;
  etcd::CompletionBridge* bridge_;
  asio::ip::tcp::resolver resolver_;
  asio::ip::tcp::socket socket_;
  asio::steady_timer deadline_;
  uint64_t generation_ = 0;  // a deadline handler of an earlier run must not close this run's socket
  bool timed_out_ = false;
  bool running_ = false;
  CommandControl command_;
  std::shared_ptr<grpc::Channel> channel_;
  struct GrpcStub;
  std::unique_ptr<GrpcStub> stub_;
  grpc::ClientContext* grpc_call_ = nullptr;  // the RPC in flight, for abort()
};

}  // namespace sidecar::runtime
