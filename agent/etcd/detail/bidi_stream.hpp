// Owns: one bidirectional etcd stream (Watch or LeaseKeepAlive): its gRPC call, the one outstanding read and
// write, and the reply deadline that finds a hung member. Thread: io_context thread only; gRPC completions
// arrive through the CompletionBridge, already on that thread.
#pragma once

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp uses std::exchange without including it
#include <grpcpp/grpcpp.h>

#include <boost/asio/async_result.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "agent/etcd/completion_bridge.hpp"

namespace sidecar::etcd {

using std::chrono::milliseconds;

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

}  // namespace sidecar::etcd
