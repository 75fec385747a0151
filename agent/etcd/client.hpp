// Owns: the gRPC channels to the etcd endpoints (plain or TLS), the in-flight calls, endpoint failover, and
// the etcd auth token (authenticated lazily, sent on every call and stream, renewed when etcd rejects it).
// Thread: io_context thread only. Completions arrive through the CompletionBridge, already on that thread.
#pragma once

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without including it
#include <grpcpp/grpcpp.h>

#include <boost/asio/async_result.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "agent/core/manifest.hpp"
#include "agent/etcd/completion_bridge.hpp"
#include "agent/etcd/credentials.hpp"
#include "etcd/rpc.grpc.pb.h"

namespace sidecar::etcd {

namespace pb = etcdserverpb;
using std::chrono::milliseconds;

template <class Resp>
struct RpcResult {
  grpc::Status status;
  Resp response;
  bool ok() const { return status.ok(); }
};

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

class StreamBase {
 public:
  virtual ~StreamBase() = default;
  virtual void cancel() = 0;
  virtual const std::string& endpoint() const = 0;
};

// A bidirectional stream (Watch or LeaseKeepAlive). At most one read and one write may be outstanding, as
// gRPC requires; the owning coroutine guarantees that. Every operation's tag holds a reference, so the
// stream outlives its last completion.
//
// The call itself is prepared only in async_start, through the client's opener: that is when the client
// authenticates if it has no token, picks the current endpoint and attaches the current token, so a stream
// that reopens always carries a fresh token and goes to the member the client moved to.
template <class Req, class Resp>
class BidiStream : public StreamBase, public std::enable_shared_from_this<BidiStream<Req, Resp>> {
 public:
  using ReaderWriter = grpc::ClientAsyncReaderWriter<Req, Resp>;
  // Calls `ready(status)` once: OK after it attached the call (attach()), or the reason it could not.
  using Opener = std::function<void(BidiStream& stream, std::function<void(const grpc::Status&)> ready)>;

  BidiStream(asio::io_context& io, Opener opener) : io_(io), opener_(std::move(opener)), reply_timer_(io) {}

  grpc::ClientContext& context() { return ctx_; }
  // The member this stream went to; empty until it was opened.
  const std::string& endpoint() const override { return endpoint_; }
  void attach(std::string endpoint, std::unique_ptr<ReaderWriter> rw) {
    endpoint_ = std::move(endpoint);
    rw_ = std::move(rw);
  }
  void cancel() override {
    cancelled_ = true;
    reply_timer_.cancel();
    ctx_.TryCancel();
  }
  // Every write expects a reply within `timeout` (LeaseKeepAlive); zero disables the check.
  void set_reply_timeout(milliseconds timeout) { reply_timeout_ = timeout; }

  template <class Token>
  auto async_start(Token&& token) {
    return asio::async_initiate<Token, void(bool)>(
        [self = this->shared_from_this()](auto handler) {
          auto shared = std::make_shared<decltype(handler)>(std::move(handler));
          auto work = std::make_shared<asio::executor_work_guard<asio::io_context::executor_type>>(self->io_.get_executor());
          self->opener_(*self, [self, shared, work](const grpc::Status& status) {
            if (!status.ok() || self->cancelled_ || !self->rw_) {
              self->open_status_ = status.ok() ? grpc::Status(grpc::StatusCode::CANCELLED, "stream cancelled") : status;
              asio::post(self->io_, [shared, work] { std::move(*shared)(false); });
              return;
            }
            self->rw_->StartCall(self->bool_tag(std::move(*shared)));
          });
        },
        token);
  }

  template <class Token>
  auto async_write(Req request, Token&& token) {
    return asio::async_initiate<Token, void(bool)>(
        [self = this->shared_from_this(), request = std::move(request)](auto handler) mutable {
          self->write_buf_ = std::move(request);
          // Counted before the write completes: the reply's read completion may be handled before the
          // write's own completion.
          self->expect_reply();
          self->rw_->Write(self->write_buf_, self->bool_tag(std::move(handler)));
        },
        token);
  }

  // Completes with the next message, or nullopt when the stream is over (then call async_finish).
  template <class Token>
  auto async_read(Token&& token) {
    return asio::async_initiate<Token, void(std::optional<Resp>)>(
        [self = this->shared_from_this()](auto handler) {
          self->rw_->Read(&self->read_buf_,
                          make_tag([self, handler = std::move(handler),
                                    work = asio::make_work_guard(self->io_)](bool ok) mutable {
                            std::optional<Resp> out;
                            if (ok) {
                              out = std::move(self->read_buf_);
                              self->got_reply();
                            } else {
                              self->reply_timer_.cancel();
                            }
                            std::move(handler)(std::move(out));
                          }));
        },
        token);
  }

  // The stream's final status. A stream that never opened (auth failed, cancelled first) completes with
  // the reason; one cancelled because a reply was overdue completes with UNAVAILABLE, so the caller's
  // report_failure moves to another member.
  template <class Token>
  auto async_finish(Token&& token) {
    return asio::async_initiate<Token, void(grpc::Status)>(
        [self = this->shared_from_this()](auto handler) {
          if (!self->rw_ || self->open_status_) {
            asio::post(self->io_, [self, handler = std::move(handler)]() mutable {
              std::move(handler)(self->open_status_.value_or(grpc::Status(grpc::StatusCode::CANCELLED, "stream not started")));
            });
            return;
          }
          self->rw_->Finish(&self->status_, make_tag([self, handler = std::move(handler),
                                                      work = asio::make_work_guard(self->io_)](bool) mutable {
                              self->reply_timer_.cancel();
                              if (self->stalled_) {
                                self->status_ = grpc::Status(
                                    grpc::StatusCode::UNAVAILABLE,
                                    "no reply from " + self->endpoint_ + " within " +
                                        std::to_string(self->reply_timeout_.count()) + " ms (member hung?)");
                              }
                              std::move(handler)(self->status_);
                            }));
        },
        token);
  }

 private:
  template <class Handler>
  void* bool_tag(Handler handler) {
    return make_tag([self = this->shared_from_this(), handler = std::move(handler),
                     work = asio::make_work_guard(io_)](bool ok) mutable { std::move(handler)(ok); });
  }

  void expect_reply() {
    if (reply_timeout_.count() == 0 || cancelled_) return;
    if (awaiting_replies_++ == 0) arm_reply_timer();
  }
  void got_reply() {
    if (awaiting_replies_ == 0) return;
    if (--awaiting_replies_ == 0) {
      reply_timer_.cancel();
    } else {
      arm_reply_timer();
    }
  }
  void arm_reply_timer() {
    reply_timer_.expires_after(reply_timeout_);
    reply_timer_.async_wait([weak = this->weak_from_this()](const boost::system::error_code& ec) {
      auto self = weak.lock();
      if (ec || !self || self->awaiting_replies_ == 0 || self->cancelled_) return;
      self->stalled_ = true;
      self->ctx_.TryCancel();
    });
  }

  asio::io_context& io_;
  Opener opener_;
  std::string endpoint_ = "(not opened)";
  grpc::ClientContext ctx_;
  std::unique_ptr<ReaderWriter> rw_;
  Req write_buf_;
  Resp read_buf_;
  grpc::Status status_;
  std::optional<grpc::Status> open_status_;
  bool cancelled_ = false;
  milliseconds reply_timeout_{0};
  asio::steady_timer reply_timer_;
  int awaiting_replies_ = 0;
  bool stalled_ = false;
};

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
    return unary<pb::RangeResponse>(
        [req = std::move(req)](Endpoint& ep, grpc::ClientContext* ctx, grpc::CompletionQueue* cq) {
          return ep.kv->PrepareAsyncRange(ctx, req, cq);
        },
        timeout, std::forward<Token>(token));
  }
  template <class Token>
  auto put(pb::PutRequest req, Token&& token, milliseconds timeout = {}) {
    return unary<pb::PutResponse>(
        [req = std::move(req)](Endpoint& ep, grpc::ClientContext* ctx, grpc::CompletionQueue* cq) {
          return ep.kv->PrepareAsyncPut(ctx, req, cq);
        },
        timeout, std::forward<Token>(token));
  }
  template <class Token>
  auto delete_range(pb::DeleteRangeRequest req, Token&& token, milliseconds timeout = {}) {
    return unary<pb::DeleteRangeResponse>(
        [req = std::move(req)](Endpoint& ep, grpc::ClientContext* ctx, grpc::CompletionQueue* cq) {
          return ep.kv->PrepareAsyncDeleteRange(ctx, req, cq);
        },
        timeout, std::forward<Token>(token));
  }
  template <class Token>
  auto txn(pb::TxnRequest req, Token&& token, milliseconds timeout = {}) {
    return unary<pb::TxnResponse>(
        [req = std::move(req)](Endpoint& ep, grpc::ClientContext* ctx, grpc::CompletionQueue* cq) {
          return ep.kv->PrepareAsyncTxn(ctx, req, cq);
        },
        timeout, std::forward<Token>(token));
  }
  template <class Token>
  auto lease_grant(pb::LeaseGrantRequest req, Token&& token, milliseconds timeout = {}) {
    return unary<pb::LeaseGrantResponse>(
        [req = std::move(req)](Endpoint& ep, grpc::ClientContext* ctx, grpc::CompletionQueue* cq) {
          return ep.lease->PrepareAsyncLeaseGrant(ctx, req, cq);
        },
        timeout, std::forward<Token>(token));
  }
  template <class Token>
  auto lease_revoke(pb::LeaseRevokeRequest req, Token&& token, milliseconds timeout = {}) {
    return unary<pb::LeaseRevokeResponse>(
        [req = std::move(req)](Endpoint& ep, grpc::ClientContext* ctx, grpc::CompletionQueue* cq) {
          return ep.lease->PrepareAsyncLeaseRevoke(ctx, req, cq);
        },
        timeout, std::forward<Token>(token));
  }
  template <class Token>
  auto lease_time_to_live(pb::LeaseTimeToLiveRequest req, Token&& token, milliseconds timeout = {}) {
    return unary<pb::LeaseTimeToLiveResponse>(
        [req = std::move(req)](Endpoint& ep, grpc::ClientContext* ctx, grpc::CompletionQueue* cq) {
          return ep.lease->PrepareAsyncLeaseTimeToLive(ctx, req, cq);
        },
        timeout, std::forward<Token>(token));
  }
  template <class Token>
  auto status(Token&& token, milliseconds timeout = {}) {
    return unary<pb::StatusResponse>(
        [](Endpoint& ep, grpc::ClientContext* ctx, grpc::CompletionQueue* cq) {
          return ep.maintenance->PrepareAsyncStatus(ctx, pb::StatusRequest{}, cq);
        },
        timeout, std::forward<Token>(token));
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
  bool authenticated() const { return auth_state_ == AuthState::kHaveToken; }
  // How many Authenticate calls succeeded; tests and metrics watch this to see tokens being renewed.
  uint64_t authentications() const { return authentications_; }
  const std::string& current_endpoint() const { return endpoints_[current_].target; }
  size_t endpoint_count() const { return endpoints_.size(); }

  // Cancels every in-flight call and stream; later calls complete at once with CANCELLED. Their handlers
  // still run, so the io_context drains and run() returns.
  void shutdown();
  bool stopping() const { return stopping_; }

  asio::io_context& io() { return io_; }

 private:
  struct Endpoint {
    std::string target;
    bool tls = false;
    std::shared_ptr<grpc::Channel> channel;
    std::unique_ptr<pb::KV::Stub> kv;
    std::unique_ptr<pb::Lease::Stub> lease;
    std::unique_ptr<pb::Watch::Stub> watch;
    std::unique_ptr<pb::Maintenance::Stub> maintenance;
    std::unique_ptr<pb::Auth::Stub> auth;
    bool answered = false;  // some call on it succeeded once; sharpens the TLS failure explanations
  };

  // No token yet -> Authenticate in flight -> token (or auth off on the server); a refused password waits
  // out a growing backoff before the next attempt, and calls made meanwhile fail at once with its reason.
  enum class AuthState { kNoToken, kAuthenticating, kHaveToken, kRefused };
  using TokenWaiter = std::function<void(const grpc::Status&)>;

  Client(asio::io_context& io, ClientOptions options);
  void connect(Endpoint& ep);
  void prepare(grpc::ClientContext& ctx, milliseconds timeout) const;
  void track(const std::shared_ptr<StreamBase>& stream);
  void maybe_reload_tls();
  void mark_answered(const std::string& target);

  // Runs `then(OK)` once a call may go out with token_ (at once when auth is off or a token is held), or
  // `then(error)` when authentication failed. Always on the io_context thread; never re-entrant for errors.
  void with_token(TokenWaiter then);
  void authenticate();
  void finish_authentication(const grpc::Status& status, std::string token);
  // etcd rejected `used`: forget it unless a newer token replaced it already.
  void drop_token(const std::string& used);

  template <class Resp, class Start, class Handler>
  struct UnaryOp {
    Start start;
    milliseconds timeout;
    Handler handler;
    bool retried = false;  // one retry after re-authenticating, never more
  };

  template <class Resp, class Start, class Token>
  auto unary(Start start, milliseconds timeout, Token&& token) {
    return asio::async_initiate<Token, void(RpcResult<Resp>)>(
        [this, start = std::move(start), timeout](auto handler) mutable {
          using Op = UnaryOp<Resp, Start, decltype(handler)>;
          auto op = std::make_shared<Op>(Op{std::move(start), timeout, std::move(handler)});
          run_unary<Resp>(std::move(op));
        },
        token);
  }

  template <class Resp, class Op>
  void complete_unary(std::shared_ptr<Op> op, grpc::Status status, Resp response = {}) {
    std::move(op->handler)(RpcResult<Resp>{std::move(status), std::move(response)});
  }

  template <class Resp, class Op>
  void run_unary(std::shared_ptr<Op> op) {
    if (stopping_) {
      asio::post(io_, [this, op]() mutable {
        complete_unary<Resp>(std::move(op), grpc::Status(grpc::StatusCode::CANCELLED, "client shut down"));
      });
      return;
    }
    with_token([this, op](const grpc::Status& auth) mutable {
      if (!auth.ok()) {
        complete_unary<Resp>(std::move(op), auth);
        return;
      }
      issue_unary<Resp>(std::move(op));
    });
  }

  template <class Resp, class Op>
  void issue_unary(std::shared_ptr<Op> op) {
    struct Call {
      grpc::ClientContext ctx;
      Resp response;
      grpc::Status status;
      std::unique_ptr<grpc::ClientAsyncResponseReader<Resp>> reader;
      std::string endpoint;
      std::string token;
    };
    auto call = std::make_unique<Call>();
    Endpoint& ep = endpoints_[current_];
    call->endpoint = ep.target;
    call->token = token_;
    prepare(call->ctx, op->timeout);
    if (!call->token.empty()) call->ctx.AddMetadata("token", call->token);
    call->reader = op->start(ep, &call->ctx, bridge_.cq());
    call->reader->StartCall();
    inflight_.insert(&call->ctx);
    Call* raw = call.get();
    raw->reader->Finish(&raw->response, &raw->status,
                        make_tag([this, call = std::move(call), op = std::move(op),
                                  work = asio::make_work_guard(io_)](bool) mutable {
                          inflight_.erase(&call->ctx);
                          if (!call->status.ok() && options_.auth.enabled() && !op->retried && !stopping_ &&
                              is_auth_token_error(call->status)) {
                            // Expired token (simple tokens live 300 s by default) or the auth store moved
                            // on: authenticate again and send the same request once more.
                            op->retried = true;
                            drop_token(call->token);
                            run_unary<Resp>(std::move(op));
                            return;
                          }
                          if (!call->status.ok()) {
                            report_failure(call->endpoint, call->status);
                          } else {
                            mark_answered(call->endpoint);
                          }
                          complete_unary<Resp>(std::move(op), std::move(call->status), std::move(call->response));
                        }));
  }

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

  // Auth.
  AuthState auth_state_ = AuthState::kNoToken;
  std::string token_;
  std::vector<TokenWaiter> token_waiters_;
  grpc::Status refusal_;                              // what calls get while kRefused
  std::chrono::steady_clock::time_point retry_auth_at_{};
  milliseconds auth_backoff_{0};
  uint64_t authentications_ = 0;
  bool auth_off_warned_ = false;
};

}  // namespace sidecar::etcd
