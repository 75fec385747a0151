#include "agent/runtime/etcd_client_port.hpp"

#include <boost/asio/use_awaitable.hpp>

namespace sidecar::runtime {

using asio::use_awaitable;

namespace {

core::KvInput to_kv(mvccpb::KeyValue& kv) {
  return {std::move(*kv.mutable_key()), std::move(*kv.mutable_value()), kv.mod_revision(), kv.create_revision(),
          kv.lease()};
}

class ClientWatchSession final : public WatchSession {
 public:
  ClientWatchSession(etcd::Client& client, std::shared_ptr<etcd::WatchStream> stream)
      : client_(client), stream_(std::move(stream)) {}

  asio::awaitable<bool> open(WatchCreate create) override {
    if (!co_await stream_->async_start(use_awaitable)) co_return false;
    etcd::pb::WatchRequest req;
    auto* c = req.mutable_create_request();
    c->set_key(std::move(create.key));
    c->set_range_end(std::move(create.range_end));
    c->set_start_revision(create.start_revision);
    c->set_progress_notify(create.progress_notify);
    co_return co_await stream_->async_write(std::move(req), use_awaitable);
  }

  asio::awaitable<std::optional<WatchMessage>> read() override {
    auto resp = co_await stream_->async_read(use_awaitable);
    if (!resp) co_return std::nullopt;
    WatchMessage m;
    m.revision = resp->header().revision();
    m.cluster_id = resp->header().cluster_id();
    m.created = resp->created();
    m.canceled = resp->canceled();
    m.compact_revision = resp->compact_revision();
    m.cancel_reason = std::move(*resp->mutable_cancel_reason());
    m.events.reserve(static_cast<size_t>(resp->events_size()));
    for (auto& ev : *resp->mutable_events()) {
      m.events.push_back({ev.type() == mvccpb::Event::DELETE ? core::EventInput::Type::kDelete
                                                              : core::EventInput::Type::kPut,
                          to_kv(*ev.mutable_kv())});
    }
    co_return m;
  }

  void cancel() override { stream_->cancel(); }

  asio::awaitable<EtcdStatus> finish() override {
    const grpc::Status status = co_await stream_->async_finish(use_awaitable);
    if (!status.ok()) client_.report_failure(stream_->endpoint(), status);
    co_return to_etcd_status(status);
  }

 private:
  etcd::Client& client_;
  std::shared_ptr<etcd::WatchStream> stream_;
};

}  // namespace

EtcdStatus to_etcd_status(const grpc::Status& status) {
  if (status.ok()) return {};
  return EtcdStatus::failure(static_cast<int>(status.error_code()), status.error_message());
}

asio::awaitable<RangeResult> EtcdClientPort::range(RangeQuery query) {
  etcd::pb::RangeRequest req;
  req.set_key(std::move(query.key));
  req.set_range_end(std::move(query.range_end));
  req.set_revision(query.revision);
  req.set_limit(query.limit);
  auto r = co_await client_.range(std::move(req), use_awaitable, query.timeout);
  RangeResult out;
  out.status = to_etcd_status(r.status);
  if (!r.ok()) co_return out;
  out.kvs.reserve(static_cast<size_t>(r.response.kvs_size()));
  for (auto& kv : *r.response.mutable_kvs()) out.kvs.push_back(to_kv(kv));
  out.revision = r.response.header().revision();
  out.cluster_id = r.response.header().cluster_id();
  co_return out;
}

std::shared_ptr<WatchSession> EtcdClientPort::new_watch() {
  return std::make_shared<ClientWatchSession>(client_, client_.new_watch_stream());
}

}  // namespace sidecar::runtime
