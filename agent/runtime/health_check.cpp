#include "agent/runtime/health_check.hpp"

#include <grpcpp/grpcpp.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <cassert>

#include "agent/core/health.hpp"
#include "agent/etcd/completion_bridge.hpp"
#include "grpc/health.grpc.pb.h"

namespace sidecar::runtime {

namespace http = boost::beast::http;
using asio::use_awaitable;
using Clock = std::chrono::steady_clock;

namespace {

// Enough for any health page; a larger body is read no further and fails the check rather than use memory.
constexpr size_t kMaxHttpBody = 64 * 1024;

std::chrono::milliseconds since(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
}

std::string bracketed(const std::string& host) {
  return host.find(':') != std::string::npos ? "[" + host + "]" : host;
}

struct GrpcAnswer {
  grpc::Status status;
  grpc::health::v1::HealthCheckResponse response;
};

const char* serving_name(grpc::health::v1::HealthCheckResponse::ServingStatus s) {
  switch (s) {
    case grpc::health::v1::HealthCheckResponse::SERVING: return "SERVING";
    case grpc::health::v1::HealthCheckResponse::NOT_SERVING: return "NOT_SERVING";
    case grpc::health::v1::HealthCheckResponse::SERVICE_UNKNOWN: return "SERVICE_UNKNOWN";
    default: return "UNKNOWN";
  }
}

}  // namespace

struct CheckRunner::GrpcStub {
  std::unique_ptr<grpc::health::v1::Health::Stub> stub;
};

CheckRunner::CheckRunner(asio::io_context& io, core::CheckSpec spec, etcd::CompletionBridge* bridge)
    : io_(io), spec_(std::move(spec)), bridge_(bridge), resolver_(io), socket_(io), deadline_(io) {
  assert(spec_.type != core::CheckType::kGrpc || bridge_ != nullptr);
}

CheckRunner::~CheckRunner() = default;

std::string CheckRunner::failure(const std::string& what) const {
  if (timed_out_) return "timed out after " + std::to_string(spec_.timeout.count()) + " ms";
  return what;
}

void CheckRunner::arm_deadline() {
  timed_out_ = false;
  const uint64_t generation = ++generation_;
  deadline_.expires_after(spec_.timeout);
  deadline_.async_wait([this, generation](const boost::system::error_code& ec) {
    if (ec || generation != generation_ || !running_) return;
    timed_out_ = true;
    cancel_io();
  });
}

void CheckRunner::cancel_io() {
  resolver_.cancel();
  boost::system::error_code ignored;
  socket_.close(ignored);
  command_.kill_group();
  if (grpc_call_ != nullptr) grpc_call_->TryCancel();
}

void CheckRunner::abort() {
  if (!running_) return;
  ++generation_;
  deadline_.cancel();
  cancel_io();
}

asio::awaitable<ProbeResult> CheckRunner::run() {
  assert(!running_);
  running_ = true;
  const auto started = Clock::now();
  ProbeResult result;
  switch (spec_.type) {
    case core::CheckType::kHttp: result = co_await probe_http(); break;
    case core::CheckType::kTcp: result = co_await probe_tcp(); break;
    case core::CheckType::kExec: result = co_await probe_exec(); break;
    case core::CheckType::kGrpc: result = co_await probe_grpc(); break;
  }
  ++generation_;
  deadline_.cancel();
  running_ = false;
  result.took = since(started);
  result.output = core::bound_output(std::move(result.output));
  co_return result;
}

asio::awaitable<std::string> CheckRunner::connect() {
  boost::system::error_code ec;
  const std::string port = std::to_string(spec_.port);
  auto endpoints = co_await resolver_.async_resolve(spec_.host, port, asio::redirect_error(use_awaitable, ec));
  if (ec) co_return failure("cannot resolve " + spec_.host + ": " + ec.message());
  co_await asio::async_connect(socket_, endpoints, asio::redirect_error(use_awaitable, ec));
  if (ec) co_return failure("cannot connect to " + bracketed(spec_.host) + ":" + port + ": " + ec.message());
  co_return std::string();
}

asio::awaitable<ProbeResult> CheckRunner::probe_tcp() {
  arm_deadline();
  ProbeResult result;
  std::string error = co_await connect();
  boost::system::error_code ignored;
  socket_.close(ignored);
  if (!error.empty()) {
    result.output = std::move(error);
    co_return result;
  }
  result.passed = true;
  result.output = "connected to " + bracketed(spec_.host) + ":" + std::to_string(spec_.port);
  co_return result;
}

asio::awaitable<ProbeResult> CheckRunner::probe_http() {
  arm_deadline();
  ProbeResult result;
  std::string error = co_await connect();
  if (!error.empty()) {
    boost::system::error_code ignored;
    socket_.close(ignored);
    result.output = std::move(error);
    co_return result;
  }
  http::request<http::empty_body> request{http::verb::get, spec_.path, 11};
  request.set(http::field::host, bracketed(spec_.host) + (spec_.port == 80 ? "" : ":" + std::to_string(spec_.port)));
  request.set(http::field::user_agent, "etcd-sidecar health check");
  request.set(http::field::connection, "close");
  for (const auto& [name, value] : spec_.headers) request.set(name, value);

  boost::system::error_code ec;
  co_await http::async_write(socket_, request, asio::redirect_error(use_awaitable, ec));
  if (!ec) {
    boost::beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(kMaxHttpBody);
    co_await http::async_read(socket_, buffer, parser, asio::redirect_error(use_awaitable, ec));
    if (!ec) {
      const auto& response = parser.get();
      const unsigned code = response.result_int();
      const std::string& body = response.body();
      result.output = "HTTP " + std::to_string(code) + (body.empty() ? "" : ": " + body);
      if (code < 200 || code > 299) {
        result.passed = false;
      } else if (!spec_.expect_body.empty() && body.find(spec_.expect_body) == std::string::npos) {
        result.passed = false;
        result.output = "HTTP " + std::to_string(code) + ", body does not contain '" + spec_.expect_body +
                        "': " + body;
      } else {
        result.passed = true;
      }
    } else if (ec == http::error::body_limit) {
      result.output = failure("response body larger than " + std::to_string(kMaxHttpBody) + " bytes");
    } else {
      result.output = failure("cannot read response: " + ec.message());
    }
  } else {
    result.output = failure("cannot send request: " + ec.message());
  }
  boost::system::error_code ignored;
  socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
  co_return result;
}

asio::awaitable<ProbeResult> CheckRunner::probe_exec() {
  // run_command enforces the timeout itself (killing the process group) and reaps through a pidfd.
  std::vector<std::string> argv = spec_.argv;
  const CommandResult r = co_await run_command(std::move(argv), spec_.timeout, core::kMaxCheckOutput, &command_);
  ProbeResult result;
  result.passed = r.ok();
  result.output = r.describe();
  std::string output = r.output;
  while (!output.empty() && (output.back() == '\n' || output.back() == '\r')) output.pop_back();
  if (!output.empty()) result.output += ": " + output;
  co_return result;
}

asio::awaitable<ProbeResult> CheckRunner::probe_grpc() {
  if (!stub_) {
    // One channel per check, kept across runs. Reconnect quickly after the server comes back, instead of
    // gRPC's default backoff of up to 120 s which would delay the rise by minutes.
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
    channel_ = grpc::CreateCustomChannel(bracketed(spec_.host) + ":" + std::to_string(spec_.port),
                                         grpc::InsecureChannelCredentials(), args);
    stub_ = std::make_unique<GrpcStub>();
    stub_->stub = grpc::health::v1::Health::NewStub(channel_);
  }
  auto initiate = [this](auto handler) {
    struct Call {
      grpc::ClientContext ctx;
      grpc::health::v1::HealthCheckRequest request;
      GrpcAnswer answer;
      std::unique_ptr<grpc::ClientAsyncResponseReader<grpc::health::v1::HealthCheckResponse>> reader;
    };
    auto call = std::make_unique<Call>();
    call->ctx.set_deadline(std::chrono::system_clock::now() + spec_.timeout);
    call->request.set_service(spec_.grpc_service);
    call->reader = stub_->stub->PrepareAsyncCheck(&call->ctx, call->request, bridge_->cq());
    call->reader->StartCall();
    grpc_call_ = &call->ctx;
    Call* raw = call.get();
    raw->reader->Finish(&raw->answer.response, &raw->answer.status,
                        etcd::make_tag([this, call = std::move(call), handler = std::move(handler),
                                        work = asio::make_work_guard(io_)](bool) mutable {
                          if (grpc_call_ == &call->ctx) grpc_call_ = nullptr;
                          std::move(handler)(std::move(call->answer));
                        }));
  };
  GrpcAnswer answer = co_await asio::async_initiate<const asio::use_awaitable_t<>&, void(GrpcAnswer)>(
      std::move(initiate), use_awaitable);
  ProbeResult result;
  if (!answer.status.ok()) {
    if (answer.status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
      result.output = "timed out after " + std::to_string(spec_.timeout.count()) + " ms";
    } else {
      result.output = "Health/Check failed: " + answer.status.error_message() + " (code " +
                      std::to_string(static_cast<int>(answer.status.error_code())) + ")";
    }
    co_return result;
  }
  result.passed = answer.response.status() == grpc::health::v1::HealthCheckResponse::SERVING;
  result.output = serving_name(answer.response.status());
  if (!spec_.grpc_service.empty()) result.output = spec_.grpc_service + ": " + result.output;
  co_return result;
}

}  // namespace sidecar::runtime
