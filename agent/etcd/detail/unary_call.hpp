// Owns: one unary etcd call, whatever its request and response types: the request (kept for the one retry
// after re-authenticating), the response slot and the gRPC reader, behind a type-erased UnaryOp the client
// sends without knowing the types. Thread: io_context thread only.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <utility>

#include "etcd/rpc.grpc.pb.h"

namespace sidecar::etcd {

namespace pb = etcdserverpb;

template <class Resp>
struct RpcResult {
  grpc::Status status;
  Resp response;
  bool ok() const { return status.ok(); }
};

namespace detail {

// The service stubs of one endpoint's channel.
struct Stubs {
  std::unique_ptr<pb::KV::Stub> kv;
  std::unique_ptr<pb::Lease::Stub> lease;
  std::unique_ptr<pb::Watch::Stub> watch;
  std::unique_ptr<pb::Maintenance::Stub> maintenance;
  std::unique_ptr<pb::Auth::Stub> auth;
};

// A generated PrepareAsync<Method> of `Stub`, e.g. &pb::KV::Stub::PrepareAsyncRange.
template <class Stub, class Req, class Resp>
using PrepareFn = std::unique_ptr<grpc::ClientAsyncResponseReader<Resp>> (Stub::*)(grpc::ClientContext*, const Req&,
                                                                                  grpc::CompletionQueue*);

class UnaryOp {
 public:
  UnaryOp(std::chrono::milliseconds timeout, bool once) : timeout_(timeout), once_(once) {}
  virtual ~UnaryOp() = default;

  // Starts the call on `stubs` with `ctx` (deadline and token already set); gRPC writes the final status
  // into `status` and completes `tag` on the client's queue.
  virtual void start(Stubs& stubs, grpc::ClientContext& ctx, grpc::CompletionQueue* cq, grpc::Status* status,
                     void* tag) = 0;
  // Hands the status and the response of the last attempt to the caller's handler. Exactly once.
  virtual void complete(grpc::Status status) = 0;

  std::chrono::milliseconds timeout() const { return timeout_; }
  // A call is sent again once after etcd rejected its token; a second rejection is the caller's answer.
  bool may_retry() const { return !once_ && !retried_; }
  void mark_retried() { retried_ = true; }

 protected:
  bool once() const { return once_; }

 private:
  std::chrono::milliseconds timeout_;
  bool once_;  // never sent again, so the request is dropped as soon as gRPC serialised it (Authenticate)
  bool retried_ = false;
};

template <class Stub, class Req, class Resp, class Handler>
class TypedUnaryOp final : public UnaryOp {
 public:
  TypedUnaryOp(std::unique_ptr<Stub> Stubs::*stub, PrepareFn<Stub, Req, Resp> prepare, Req request,
               std::chrono::milliseconds timeout, bool once, Handler handler)
      : UnaryOp(timeout, once),
        stub_(stub),
        prepare_(prepare),
        request_(std::move(request)),
        handler_(std::move(handler)) {}

  void start(Stubs& stubs, grpc::ClientContext& ctx, grpc::CompletionQueue* cq, grpc::Status* status,
             void* tag) override {
    reader_ = ((*(stubs.*stub_)).*prepare_)(&ctx, request_, cq);
    reader_->StartCall();
    // The request (Authenticate's holds the password) is kept only as long as gRPC needs it.
    if (once()) request_.Clear();
    reader_->Finish(&response_, status, tag);
  }

  void complete(grpc::Status status) override {
    std::move(handler_)(RpcResult<Resp>{std::move(status), std::move(response_)});
  }

 private:
  std::unique_ptr<Stub> Stubs::*stub_;
  PrepareFn<Stub, Req, Resp> prepare_;
  Req request_;
  Handler handler_;
  Resp response_;
  std::unique_ptr<grpc::ClientAsyncResponseReader<Resp>> reader_;
};

template <class Stub, class Req, class Resp, class Handler>
std::shared_ptr<UnaryOp> make_unary_op(std::unique_ptr<Stub> Stubs::*stub, PrepareFn<Stub, Req, Resp> prepare,
                                       Req request, std::chrono::milliseconds timeout, bool once, Handler handler) {
  return std::make_shared<TypedUnaryOp<Stub, Req, Resp, Handler>>(stub, prepare, std::move(request), timeout, once,
                                                                  std::move(handler));
}

}  // namespace detail
}  // namespace sidecar::etcd
