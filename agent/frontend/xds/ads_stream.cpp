#include "agent/frontend/xds/ads_stream.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/async_result.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "agent/etcd/completion_bridge.hpp"

namespace sidecar::frontend::xds {

using core::xds::ResourceType;

AdsStream::AdsStream(asio::io_context& io, StreamHost host, uint64_t id)
    : io_(io), host_(std::move(host)), id_(id), wake_(io, asio::steady_timer::time_point::max()), protocol_(id) {}

AdsStream::~AdsStream() { release_all(); }

void AdsStream::wake() {
  woken_ = true;
  wake_.cancel();
}

void AdsStream::cancel() {
  ctx_.TryCancel();
  wake();
}

// One read is outstanding at a time; each completion queues the request and issues the next read.
void AdsStream::start_read() {
  rw_.Read(&read_buf_, etcd::make_tag([self = shared_from_this()](bool ok) {
    if (!ok) {
      self->read_done_ = true;  // the client closed its side, or the call was cancelled
    } else {
      self->inbox_.push_back(std::move(self->read_buf_));
      self->read_buf_.Clear();
      self->start_read();
    }
    self->wake();
  }));
}

asio::awaitable<void> AdsStream::run() {
  ++host_.stats.streams_open;
  ++host_.stats.streams_total;
  start_read();
  bool writable = true;
  while (true) {
    while (!inbox_.empty()) {
      const discovery::DiscoveryRequest request = std::move(inbox_.front());
      inbox_.pop_front();
      handle(request);
    }
    if (read_done_) break;
    if (writable) writable = co_await send_due();
    if (!inbox_.empty() || read_done_) continue;
    if (woken_) {
      woken_ = false;
      continue;
    }
    boost::system::error_code ec;
    wake_.expires_at(asio::steady_timer::time_point::max());
    co_await wake_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    woken_ = false;
  }
  release_all();
  co_await finish();
  --host_.stats.streams_open;
}

void AdsStream::handle(const discovery::DiscoveryRequest& request) {
  if (request.has_node() && node_.empty()) node_ = request.node().id();
  const auto type = core::xds::resource_type_of(request.type_url());
  if (!type) {
    spdlog::debug("xds stream {} ({}): ignoring a request for {} (not served)", id_, node_, request.type_url());
    return;
  }
  core::xds::Request in;
  in.type = *type;
  in.version_info = request.version_info();
  in.response_nonce = request.response_nonce();
  in.names.assign(request.resource_names().begin(), request.resource_names().end());
  in.nack = request.has_error_detail();
  if (in.nack) in.error = request.error_detail().message();
  const core::xds::RequestResult result = protocol_.on_request(in);
  const auto t = static_cast<size_t>(*type);
  if (result.kind == core::xds::RequestResult::Kind::kAck) ++host_.stats.acks[t];
  if (result.kind == core::xds::RequestResult::Kind::kNack) {
    ++host_.stats.nacks[t];
    if (result.first_nack && host_.on_nack) host_.on_nack(*type, node_, in.error);
  }
  if (result.subscribed.empty() && result.unsubscribed.empty()) return;
  // The cache counts names, not (type, name) pairs: hold each name once, whatever types want it.
  const std::set<std::string> now = protocol_.all_names();
  for (const auto& name : now) {
    if (held_.insert(name).second) host_.cache.want(name, this);
  }
  for (auto it = held_.begin(); it != held_.end();) {
    if (now.count(*it) == 0) {
      host_.cache.release(*it, this);
      it = held_.erase(it);
    } else {
      ++it;
    }
  }
}

asio::awaitable<bool> AdsStream::send_due() {
  const auto lookup = [this](ResourceType type) {
    return [this, type](const std::string& name) { return host_.cache.state(type, name); };
  };
  for (ResourceType type : core::xds::kAllResourceTypes) {
    const auto response = protocol_.next_response(type, lookup(type));
    if (!response) continue;
    discovery::DiscoveryResponse out;
    out.set_version_info(response->version_info);
    out.set_type_url(std::string(core::xds::type_url(type)));
    out.set_nonce(response->nonce);
    // Built once per change by the cache: each stream copies the bytes, nothing is re-encoded per stream.
    for (const auto& name : response->names) {
      if (const auto any = host_.cache.resource(type, name)) *out.add_resources() = *any;
    }
    const bool ok = co_await write(out);
    if (!ok) co_return false;
    ++host_.stats.responses[static_cast<size_t>(type)];
  }
  co_return true;
}

asio::awaitable<bool> AdsStream::write(const discovery::DiscoveryResponse& response) {
  auto self = shared_from_this();
  // A named awaitable: GCC 12 mishandles temporaries built inside a co_await expression.
  auto op = asio::async_initiate<decltype(asio::use_awaitable), void(bool)>(
      [self, &response](auto handler) {
        self->rw_.Write(response, etcd::make_tag([handler = std::move(handler),
                                                  work = asio::make_work_guard(self->io_)](bool ok) mutable {
                          std::move(handler)(ok);
                        }));
      },
      asio::use_awaitable);
  const bool ok = co_await std::move(op);
  co_return ok;
}

asio::awaitable<void> AdsStream::finish() {
  auto self = shared_from_this();
  auto op = asio::async_initiate<decltype(asio::use_awaitable), void(bool)>(
      [self](auto handler) {
        self->rw_.Finish(grpc::Status::OK, etcd::make_tag([handler = std::move(handler),
                                                            work = asio::make_work_guard(self->io_)](bool ok) mutable {
                           std::move(handler)(ok);
                         }));
      },
      asio::use_awaitable);
  co_await std::move(op);
}

void AdsStream::release_all() {
  for (const auto& name : held_) host_.cache.release(name, this);
  held_.clear();
}

}  // namespace sidecar::frontend::xds
