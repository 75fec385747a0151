// Owns: the gRPC channels to the etcd endpoints, the in-flight calls, and endpoint failover.
// Thread: io_context thread only. Completions arrive through the CompletionBridge, already on that thread.
#pragma once

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without including it
#include <grpcpp/grpcpp.h>

#include <boost/asio/async_result.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "agent/etcd/completion_bridge.hpp"
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
  std::vector<std::string> endpoints;      // "http://host:port" or "host:port"
  milliseconds request_timeout{1000};      // deadline of every unary call unless the call gives its own
  milliseconds reconnect_backoff_max{1000};  // gRPC's default is 120 s: far too slow to notice a restart
};

// "http://127.0.0.1:2379" -> "127.0.0.1:2379"; https:// is for the TLS issue and rejected here for now.
std::optional<std::string> grpc_target(const std::string& endpoint, std::string* error);

// True for errors after which another member may answer (transport down, deadline, no leader).
bool is_transient(const grpc::Status& status);

class StreamBase {
 public:
  virtual ~StreamBase() = default;
  virtual void cancel() = 0;
};

// A bidirectional stream (Watch or LeaseKeepAlive). At most one read and one write may be outstanding, as
// gRPC requires; the owning coroutine guarantees that. Every operation's tag holds a reference, so the
// stream outlives its last completion.
template <class Req, class Resp>
class BidiStream : public StreamBase, public std::enable_shared_from_this<BidiStream<Req, Resp>> {
 public:
  BidiStream(asio::io_context& io, std::string endpoint) : io_(io), endpoint_(std::move(endpoint)) {}

  grpc::ClientContext& context() { return ctx_; }
  const std::string& endpoint() const { return endpoint_; }
  void attach(std::unique_ptr<grpc::ClientAsyncReaderWriter<Req, Resp>> rw) { rw_ = std::move(rw); }
  void cancel() override { ctx_.TryCancel(); }

  template <class Token>
  auto async_start(Token&& token) {
    return asio::async_initiate<Token, void(bool)>(
        [self = this->shared_from_this()](auto handler) {
          self->rw_->StartCall(self->bool_tag(std::move(handler)));
        },
        token);
  }

  template <class Token>
  auto async_write(Req request, Token&& token) {
    return asio::async_initiate<Token, void(bool)>(
        [self = this->shared_from_this(), request = std::move(request)](auto handler) mutable {
          self->write_buf_ = std::move(request);
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
                            if (ok) out = std::move(self->read_buf_);
                            std::move(handler)(std::move(out));
                          }));
        },
        token);
  }

  template <class Token>
  auto async_finish(Token&& token) {
    return asio::async_initiate<Token, void(grpc::Status)>(
        [self = this->shared_from_this()](auto handler) {
          self->rw_->Finish(&self->status_, make_tag([self, handler = std::move(handler),
                                                      work = asio::make_work_guard(self->io_)](bool) mutable {
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

  asio::io_context& io_;
  std::string endpoint_;
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientAsyncReaderWriter<Req, Resp>> rw_;
  Req write_buf_;
  Resp read_buf_;
  grpc::Status status_;
};

using WatchStream = BidiStream<pb::WatchRequest, pb::WatchResponse>;
using KeepAliveStream = BidiStream<pb::LeaseKeepAliveRequest, pb::LeaseKeepAliveResponse>;

class Client {
 public:
  // Fails (nullptr + error) only on a malformed endpoint; connecting is lazy and never fails here.
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
  void report_failure(const std::string& endpoint, const grpc::Status& status);
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
    std::shared_ptr<grpc::Channel> channel;
    std::unique_ptr<pb::KV::Stub> kv;
    std::unique_ptr<pb::Lease::Stub> lease;
    std::unique_ptr<pb::Watch::Stub> watch;
    std::unique_ptr<pb::Maintenance::Stub> maintenance;
  };

  Client(asio::io_context& io, ClientOptions options);
  void prepare(grpc::ClientContext& ctx, milliseconds timeout) const;
  void track(const std::shared_ptr<StreamBase>& stream);

  template <class Resp, class Start, class Token>
  auto unary(Start start, milliseconds timeout, Token&& token) {
    return asio::async_initiate<Token, void(RpcResult<Resp>)>(
        [this, start = std::move(start), timeout](auto handler) mutable {
          if (stopping_) {
            asio::post(io_, [handler = std::move(handler)]() mutable {
              std::move(handler)(RpcResult<Resp>{grpc::Status(grpc::StatusCode::CANCELLED, "client shut down"), {}});
            });
            return;
          }
          struct Call {
            grpc::ClientContext ctx;
            Resp response;
            grpc::Status status;
            std::unique_ptr<grpc::ClientAsyncResponseReader<Resp>> reader;
            std::string endpoint;
          };
          auto call = std::make_unique<Call>();
          Endpoint& ep = endpoints_[current_];
          call->endpoint = ep.target;
          prepare(call->ctx, timeout);
          call->reader = start(ep, &call->ctx, bridge_.cq());
          call->reader->StartCall();
          inflight_.insert(&call->ctx);
          Call* raw = call.get();
          raw->reader->Finish(&raw->response, &raw->status,
                              make_tag([this, call = std::move(call), handler = std::move(handler),
                                        work = asio::make_work_guard(io_)](bool) mutable {
                                inflight_.erase(&call->ctx);
                                if (!call->status.ok()) report_failure(call->endpoint, call->status);
                                std::move(handler)(RpcResult<Resp>{std::move(call->status), std::move(call->response)});
                              }));
        },
        token);
  }

  asio::io_context& io_;
  ClientOptions options_;
  CompletionBridge bridge_;
  std::vector<Endpoint> endpoints_;
  size_t current_ = 0;
  std::unordered_set<grpc::ClientContext*> inflight_;
  std::list<std::weak_ptr<StreamBase>> streams_;
  bool stopping_ = false;
};

}  // namespace sidecar::etcd
