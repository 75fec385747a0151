#include "agent/etcd/completion_bridge.hpp"

#include <boost/asio/post.hpp>

namespace sidecar::etcd {

CompletionBridge::CompletionBridge(asio::io_context& io)
    : CompletionBridge(io, std::make_unique<grpc::CompletionQueue>()) {}

CompletionBridge::CompletionBridge(asio::io_context& io, std::unique_ptr<grpc::CompletionQueue> cq)
    : io_(io), cq_(std::move(cq)), poller_([this] { poll(); }) {}

CompletionBridge::~CompletionBridge() { shutdown(); }

void CompletionBridge::poll() {
  void* raw = nullptr;
  bool ok = false;
  while (cq_->Next(&raw, &ok)) {
    // Ownership of the tag moves into the posted handler: it is deleted after it ran, or by the io_context's
    // destructor if the loop never gets to it.
    asio::post(io_, [tag = std::unique_ptr<CompletionTag>(static_cast<CompletionTag*>(raw)), ok]() mutable {
      tag->complete(ok);
    });
  }
}

void CompletionBridge::shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  cq_->Shutdown();
  if (poller_.joinable()) poller_.join();
}

}  // namespace sidecar::etcd
