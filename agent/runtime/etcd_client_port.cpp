#include "agent/runtime/etcd_client_port.hpp"

#include <boost/asio/use_awaitable.hpp>

namespace sidecar::runtime {

using asio::use_awaitable;

namespace {

core::KvInput to_kv(mvccpb::KeyValue& kv) {
  return {std::move(*kv.mutable_key()), std::move(*kv.mutable_value()), kv.mod_revision(), kv.create_revision(),
          kv.lease()};
}

// What a watch and a keepalive session share: ending the stream, and reporting a failed one to the client
// (endpoint failover).
template <class Session, class Stream>
class ClientStreamSession : public Session {
 public:
  ClientStreamSession(etcd::Client& client, std::shared_ptr<Stream> stream)
      : client_(client), stream_(std::move(stream)) {}

  void cancel() override { stream_->cancel(); }

  asio::awaitable<EtcdStatus> finish() override {
    const grpc::Status status = co_await stream_->async_finish(use_awaitable);
    if (!status.ok()) client_.report_failure(stream_->endpoint(), status);
    co_return to_etcd_status(status);
  }

  std::string endpoint() const override { return stream_->endpoint(); }

 protected:
  etcd::Client& client_;
  std::shared_ptr<Stream> stream_;
};

class ClientWatchSession final : public ClientStreamSession<WatchSession, etcd::WatchStream> {
 public:
  using ClientStreamSession::ClientStreamSession;

  asio::awaitable<bool> open(WatchCreate create) override {
    if (!co_await stream_->async_start(use_awaitable)) co_return false;
    // Named results rather than `co_return co_await` / `co_return T{}`: GCC 12 can lay out such a
    // coroutine's frame wrongly (its parameters, `this` included, read back as garbage once resumed).
    const bool sent = co_await watch(std::move(create));
    co_return sent;
  }

  asio::awaitable<bool> watch(WatchCreate create) override {
    etcd::pb::WatchRequest req;
    auto* c = req.mutable_create_request();
    c->set_key(std::move(create.key));
    c->set_range_end(std::move(create.range_end));
    c->set_start_revision(create.start_revision);
    c->set_progress_notify(create.progress_notify);
    const bool sent = co_await stream_->async_write(std::move(req), use_awaitable);
    co_return sent;
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
};

class ClientKeepaliveSession final : public ClientStreamSession<KeepaliveSession, etcd::KeepAliveStream> {
 public:
  using ClientStreamSession::ClientStreamSession;

  asio::awaitable<bool> open() override {
    const bool started = co_await stream_->async_start(use_awaitable);
    co_return started;
  }

  asio::awaitable<bool> write(int64_t lease) override {
    etcd::pb::LeaseKeepAliveRequest req;
    req.set_id(lease);
    const bool sent = co_await stream_->async_write(std::move(req), use_awaitable);
    co_return sent;
  }

  asio::awaitable<std::optional<KeepaliveAck>> read() override {
    auto resp = co_await stream_->async_read(use_awaitable);
    if (!resp) co_return std::nullopt;
    const KeepaliveAck ack{resp->id(), resp->ttl()};  // named: GCC 12 and braced temporaries in coroutines
    co_return ack;
  }
};

std::optional<core::Observed> observed(const mvccpb::KeyValue& kv) {
  return core::Observed{kv.value(), kv.lease(), kv.mod_revision()};
}

// Sends a guarded Txn and fills what every guarded result has (status, succeeded, revision); the response
// for the rest (empty on failure).
template <class Result>
asio::awaitable<etcd::pb::TxnResponse> guarded_txn(etcd::Client& client, etcd::pb::TxnRequest txn, Result& out) {
  auto r = co_await client.txn(std::move(txn), use_awaitable);
  out.status = to_etcd_status(r.status);
  if (r.ok()) {
    out.succeeded = r.response.succeeded();
    out.revision = r.response.header().revision();
  }
  co_return std::move(r.response);
}

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
  out.more = r.response.more();
  co_return out;
}

std::shared_ptr<WatchSession> EtcdClientPort::new_watch() {
  return std::make_shared<ClientWatchSession>(client_, client_.new_watch_stream());
}

asio::awaitable<LeaseGrant> EtcdClientPort::lease_grant(std::chrono::seconds ttl) {
  etcd::pb::LeaseGrantRequest req;
  req.set_ttl(ttl.count());
  auto r = co_await client_.lease_grant(std::move(req), use_awaitable);
  LeaseGrant out;
  out.status = to_etcd_status(r.status);
  if (!r.ok()) co_return out;
  // etcd reports some refusals in the body rather than the status.
  if (!r.response.error().empty() || r.response.id() == 0) {
    out.status = EtcdStatus::failure(2 /* UNKNOWN */, r.response.error().empty() ? "no lease id" : r.response.error());
    co_return out;
  }
  out.id = r.response.id();
  out.ttl = std::chrono::seconds(r.response.ttl());
  co_return out;
}

asio::awaitable<EtcdStatus> EtcdClientPort::lease_revoke(int64_t lease, std::chrono::milliseconds timeout) {
  etcd::pb::LeaseRevokeRequest req;
  req.set_id(lease);
  auto r = co_await client_.lease_revoke(std::move(req), use_awaitable, timeout);
  co_return to_etcd_status(r.status);
}

asio::awaitable<LeaseTimeToLive> EtcdClientPort::lease_time_to_live(int64_t lease) {
  etcd::pb::LeaseTimeToLiveRequest req;
  req.set_id(lease);
  auto r = co_await client_.lease_time_to_live(std::move(req), use_awaitable);
  LeaseTimeToLive out;
  out.status = to_etcd_status(r.status);
  if (!r.ok()) co_return out;
  out.ttl = std::chrono::seconds(r.response.ttl());
  out.granted_ttl = std::chrono::seconds(r.response.grantedttl());
  co_return out;
}

std::shared_ptr<KeepaliveSession> EtcdClientPort::new_keepalive() {
  return std::make_shared<ClientKeepaliveSession>(client_, client_.new_keepalive_stream());
}

asio::awaitable<GuardedPutResult> EtcdClientPort::put_if_mod_revision(GuardedPut put) {
  etcd::pb::TxnRequest txn;
  auto* cmp = txn.add_compare();
  cmp->set_key(put.key);
  cmp->set_target(etcd::pb::Compare::MOD);
  cmp->set_result(etcd::pb::Compare::EQUAL);
  cmp->set_mod_revision(put.expect_mod_revision);
  txn.add_failure()->mutable_request_range()->set_key(put.key);
  auto* req = txn.add_success()->mutable_request_put();
  req->set_key(std::move(put.key));
  req->set_value(std::move(put.value));
  req->set_lease(put.lease);
  GuardedPutResult out;
  const etcd::pb::TxnResponse resp = co_await guarded_txn(client_, std::move(txn), out);
  // Refused: the failure branch read what the key holds now.
  if (out.status.ok && !out.succeeded && resp.responses_size() > 0 && resp.responses(0).response_range().kvs_size() > 0) {
    out.current = observed(resp.responses(0).response_range().kvs(0));
  }
  co_return out;
}

asio::awaitable<GuardedDeleteResult> EtcdClientPort::delete_if_lease(std::string key, int64_t lease) {
  etcd::pb::TxnRequest txn;
  auto* cmp = txn.add_compare();
  cmp->set_key(key);
  cmp->set_target(etcd::pb::Compare::LEASE);
  cmp->set_result(etcd::pb::Compare::EQUAL);
  cmp->set_lease(lease);
  txn.add_success()->mutable_request_delete_range()->set_key(std::move(key));
  GuardedDeleteResult out;
  co_await guarded_txn(client_, std::move(txn), out);
  co_return out;
}

asio::awaitable<KeysRead> EtcdClientPort::read_keys(std::vector<std::string> keys) {
  etcd::pb::TxnRequest txn;
  for (auto& key : keys) txn.add_success()->mutable_request_range()->set_key(std::move(key));
  auto r = co_await client_.txn(std::move(txn), use_awaitable);
  KeysRead out;
  out.status = to_etcd_status(r.status);
  if (!r.ok()) co_return out;
  out.revision = r.response.header().revision();
  out.values.resize(keys.size());
  for (int i = 0; i < r.response.responses_size() && static_cast<size_t>(i) < keys.size(); ++i) {
    const auto& range = r.response.responses(i).response_range();
    if (range.kvs_size() > 0) out.values[static_cast<size_t>(i)] = observed(range.kvs(0));
  }
  co_return out;
}

}  // namespace sidecar::runtime
