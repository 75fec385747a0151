// Owns: the one gRPC CompletionQueue and the thread that polls it.
// Thread: the poller thread only calls cq.Next() and posts each completion onto the io_context; every tag's
// code runs on the io_context thread, so no agent state is ever touched from the poller.
#pragma once

#include <grpcpp/completion_queue.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <memory>
#include <thread>
#include <type_traits>
#include <utility>

namespace sidecar::etcd {

namespace asio = boost::asio;

// A one-shot completion. Allocated per gRPC operation, deleted after it ran (or with the io_context, if the
// loop is gone by then), so nothing is leaked on shutdown.
class CompletionTag {
 public:
  virtual ~CompletionTag() = default;
  virtual void complete(bool ok) = 0;
};

template <class Fn>
class FnTag final : public CompletionTag {
 public:
  explicit FnTag(Fn fn) : fn_(std::move(fn)) {}
  void complete(bool ok) override { fn_(ok); }

 private:
  Fn fn_;
};

// The returned pointer is what gRPC gets as `void* tag`.
template <class Fn>
void* make_tag(Fn&& fn) {
  return static_cast<CompletionTag*>(new FnTag<std::decay_t<Fn>>(std::forward<Fn>(fn)));
}

class CompletionBridge {
 public:
  explicit CompletionBridge(asio::io_context& io);
  // A queue made elsewhere: a server's (grpc::ServerBuilder::AddCompletionQueue) is polled the same way.
  CompletionBridge(asio::io_context& io, std::unique_ptr<grpc::CompletionQueue> cq);
  ~CompletionBridge();
  CompletionBridge(const CompletionBridge&) = delete;
  CompletionBridge& operator=(const CompletionBridge&) = delete;

  grpc::CompletionQueue* cq() { return cq_.get(); }
  asio::io_context& io() { return io_; }

  // Shuts the queue down and joins the poller. Every RPC must be finished or cancelled first: the queue
  // then drains at once. Idempotent.
  void shutdown();

 private:
  void poll();

  asio::io_context& io_;
  std::unique_ptr<grpc::CompletionQueue> cq_;
  std::thread poller_;  // after cq_: started last
  bool shut_down_ = false;
};

}  // namespace sidecar::etcd
