// Owns: the gRPC channels to the etcd endpoints (plain or TLS), the in-flight calls, endpoint failover, and
// the etcd auth token (authenticated lazily, sent on every call and stream, renewed when etcd rejects it).
// Thread: io_context thread only. Completions arrive through the CompletionBridge, already on that thread.
#pragma once

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without including it
#include <grpcpp/grpcpp.h>

#include <boost/asio/async_result.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "agent/core/auth_token.hpp"
#include "agent/core/manifest.hpp"
#include "agent/etcd/completion_bridge.hpp"
#include "agent/etcd/credentials.hpp"
#include "agent/etcd/detail/bidi_stream.hpp"
#include "agent/etcd/detail/unary_call.hpp"

namespace sidecar::etcd {

struct ClientOptions {
  std::vector<std::string> endpoints;      // "http://host:port", "https://host:port" or "host:port"
  milliseconds request_timeout{1000};      // deadline of every unary call unless the call gives its own
  milliseconds reconnect_backoff_max{1000};  // gRPC's default is 120 s: far too slow to notice a restart
  // A keepalive request unanswered this long means the member is hung (SIGSTOPped, partitioned): the stream
  // is cancelled and reported as UNAVAILABLE, so the caller moves to another member well within a lease TTL
  // instead of waiting for HTTP/2 pings (5 s + 3 s). Zero: max(request_timeout, 1.5 s).
  milliseconds keepalive_reply_timeout{0};
  AuthOptions auth;                        // username empty: no authentication
  TlsOptions tls;                          // used by https:// endpoints
};

struct EndpointTarget {
  std::string target;  // "host:port", what gRPC dials
  bool tls = false;    // https://
};

// "http://127.0.0.1:2379" -> {"127.0.0.1:2379", false}; "https://..." -> {..., true}; nullopt + error otherwise.
std::optional<EndpointTarget> parse_endpoint(const std::string& endpoint, std::string* error);
// The dial target only (kept for callers that only need host:port).
std::optional<std::string> grpc_target(const std::string& endpoint, std::string* error);

// The client settings the manifest's `etcd:` section asks for.
ClientOptions client_options_from(const core::EtcdSpec& spec);

// True for errors after which another member may answer (transport down, deadline, no leader).
bool is_transient(const grpc::Status& status);

// A watch or keepalive stream; see detail/bidi_stream.hpp.
using WatchStream = BidiStream<pb::WatchRequest, pb::WatchResponse>;
using KeepAliveStream = BidiStream<pb::LeaseKeepAliveRequest, pb::LeaseKeepAliveResponse>;

class Client {
 public:
  // Fails (nullptr + error) on a malformed endpoint or unreadable TLS files; connecting and authenticating
  // are lazy and never fail here.
  static std::unique_ptr<Client> create(asio::io_context& io, ClientOptions options, std::string* error);
  ~Client();

  // Unary calls. Each completes exactly once with RpcResult<Resp>, on the io_context thread; `timeout`
  // of zero means ClientOptions::request_timeout.
  template <class Token>
  auto range(pb::RangeRequest req, Token&& token, milliseconds timeout = {}) {
    return call(&Stubs::kv, &pb::KV::Stub::PrepareAsyncRange, std::move(req), timeout, std::forward<Token>(token));
  }
  template <class Token>
  auto put(pb::PutRequest req, Token&& token, milliseconds timeout = {}) {
    return call(&Stubs::kv, &pb::KV::Stub::PrepareAsyncPut, std::move(req), timeout, std::forward<Token>(token));
  }
  template <class Token>
  auto delete_range(pb::DeleteRangeRequest req, Token&& token, milliseconds timeout = {}) {
    return call(&Stubs::kv, &pb::KV::Stub::PrepareAsyncDeleteRange, std::move(req), timeout,
                std::forward<Token>(token));
  }
  template <class Token>
  auto txn(pb::TxnRequest req, Token&& token, milliseconds timeout = {}) {
    return call(&Stubs::kv, &pb::KV::Stub::PrepareAsyncTxn, std::move(req), timeout, std::forward<Token>(token));
  }
  template <class Token>
  auto lease_grant(pb::LeaseGrantRequest req, Token&& token, milliseconds timeout = {}) {
    return call(&Stubs::lease, &pb::Lease::Stub::PrepareAsyncLeaseGrant, std::move(req), timeout,
                std::forward<Token>(token));
  }
  template <class Token>
  auto lease_revoke(pb::LeaseRevokeRequest req, Token&& token, milliseconds timeout = {}) {
    return call(&Stubs::lease, &pb::Lease::Stub::PrepareAsyncLeaseRevoke, std::move(req), timeout,
                std::forward<Token>(token));
  }
  template <class Token>
  auto lease_time_to_live(pb::LeaseTimeToLiveRequest req, Token&& token, milliseconds timeout = {}) {
    return call(&Stubs::lease, &pb::Lease::Stub::PrepareAsyncLeaseTimeToLive, std::move(req), timeout,
                std::forward<Token>(token));
  }
  template <class Token>
  auto status(Token&& token, milliseconds timeout = {}) {
    return call(&Stubs::maintenance, &pb::Maintenance::Stub::PrepareAsyncStatus, pb::StatusRequest{}, timeout,
                std::forward<Token>(token));
  }

  // Opens a stream on the current endpoint. The caller starts it with async_start.
  std::shared_ptr<WatchStream> new_watch_stream();
  std::shared_ptr<KeepAliveStream> new_keepalive_stream();

  // A call or stream on `endpoint` failed in a way another member might not: move to the next endpoint.
  // Also where TLS failures are explained (once per change) and changed certificate files are picked up.
  void report_failure(const std::string& endpoint, const grpc::Status& status);

  // Re-reads the TLS files now and, if any changed, builds new channels (used by new calls and streams;
  // the ones in flight finish on the old channel). False with `error` if a file cannot be read; the old
  // channels stay then. For a reload (SIGHUP).
  bool reload_tls(std::string* error);
  // True once an Authenticate succeeded (or etcd said auth is off); for status reporting. Never the token.
  bool authenticated() const { return auth_.has_token(); }
  // How many Authenticate calls succeeded; tests and metrics watch this to see tokens being renewed.
  uint64_t authentications() const { return auth_.authentications(); }
  const std::string& current_endpoint() const { return endpoints_[current_].target; }
  size_t endpoint_count() const { return endpoints_.size(); }

  // Cancels every in-flight call and stream; later calls complete at once with CANCELLED. Their handlers
  // still run, so the io_context drains and run() returns.
  void shutdown();
  bool stopping() const { return stopping_; }

  asio::io_context& io() { return io_; }

 private:
  using Stubs = detail::Stubs;
  struct Endpoint {
    std::string target;
    bool tls = false;
    std::shared_ptr<grpc::Channel> channel;
    Stubs stubs;
    bool answered = false;  // some call on it succeeded once; sharpens the TLS failure explanations
  };

  using TokenWaiter = std::function<void(const grpc::Status&)>;

  Client(asio::io_context& io, ClientOptions options);
  void connect(Endpoint& ep);
  void prepare(grpc::ClientContext& ctx, milliseconds timeout) const;
  void track(const std::shared_ptr<StreamBase>& stream);
  void maybe_reload_tls();
  void mark_answered(const std::string& target);

  // Runs `then(OK)` once a call may go out with auth_.token() (at once when auth is off or a token is held), or
  // `then(error)` when authentication failed. Always on the io_context thread; never re-entrant for errors.
  void with_token(TokenWaiter then);
  void authenticate();
  void finish_authentication(const grpc::Status& status, std::string token);
  // etcd rejected `used`: forget it unless a newer token replaced it already.
  void drop_token(const std::string& used);

  // The one way a unary call goes out: each RPC method above names its stub and PrepareAsync method.
  template <class Stub, class Req, class Resp, class Token>
  auto call(std::unique_ptr<Stub> Stubs::*stub, detail::PrepareFn<Stub, Req, Resp> prepare, Req req,
            milliseconds timeout, Token&& token) {
    return asio::async_initiate<Token, void(RpcResult<Resp>)>(
        [this, stub, prepare, timeout, req = std::move(req)](auto handler) mutable {
          run(detail::make_unary_op(stub, prepare, std::move(req), timeout, false, std::move(handler)));
        },
        token);
  }
  // Waits for a token (see with_token), then sends `op`; completes it with CANCELLED after shutdown().
  void run(std::shared_ptr<detail::UnaryOp> op);
  // Sends `op` once on the current endpoint with the current token. A rejected token is dropped and the
  // call run again, once; other failures move to the next endpoint (report_failure).
  void send(std::shared_ptr<detail::UnaryOp> op);

  template <class Stream, class PrepareFn>
  std::shared_ptr<Stream> open_stream(PrepareFn prepare_call, milliseconds reply_timeout);

  asio::io_context& io_;
  ClientOptions options_;
  CompletionBridge bridge_;
  std::vector<Endpoint> endpoints_;
  size_t current_ = 0;
  std::unordered_set<grpc::ClientContext*> inflight_;
  std::list<std::weak_ptr<StreamBase>> streams_;
  bool stopping_ = false;

  // TLS: the material the current channels were built from, and when the files were last looked at.
  std::optional<TlsMaterial> tls_;
  std::chrono::steady_clock::time_point tls_checked_at_{};
  std::string tls_problem_;  // the last TLS explanation logged, so each is said once per change

  // Auth: when to authenticate and which token is current (core::AuthToken decides), and the calls
  // waiting for the Authenticate in flight.
  core::AuthToken auth_;
  std::vector<TokenWaiter> token_waiters_;
};

}  // namespace sidecar::etcd
