// FakeEtcd's leases, keepalive streams and the registrar's guarded writes (the keys and watches are in
// fake_etcd.cpp). Semantics follow etcd's: a put on an unknown lease fails with "lease not found", a lease
// that goes takes its keys with it, a keepalive for an unknown lease is answered with TTL 0.
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "tests/runtime/fake_etcd.hpp"

namespace sidecar::runtime::testing {

namespace {

constexpr int kCancelled = 1;          // grpc::StatusCode::CANCELLED
constexpr int kDeadlineExceeded = 4;   // grpc::StatusCode::DEADLINE_EXCEEDED

EtcdStatus lease_not_found() {
  return EtcdStatus::failure(EtcdStatus::kNotFound, "etcdserver: requested lease not found");
}

}  // namespace

asio::awaitable<bool> FakeEtcd::answer(EtcdStatus& status, std::chrono::milliseconds timeout) {
  co_await asio::post(io_, asio::use_awaitable);
  if (!silent_) co_return true;
  // A silent member: the call waits out its deadline, as a real one to a SIGSTOPped etcd does.
  asio::steady_timer deadline(io_, timeout.count() > 0 ? timeout : silent_timeout_);
  boost::system::error_code ec;
  co_await deadline.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  status = EtcdStatus::failure(kDeadlineExceeded, "fake etcd: deadline exceeded");
  co_return false;
}

void FakeEtcd::set_silent(bool silent, std::chrono::milliseconds silent_timeout) {
  silent_ = silent;
  silent_timeout_ = silent_timeout;
  for (auto& w : watches_) w->wake();
  for (auto& k : keepalives_) k->signal_.wake();
}

int64_t FakeEtcd::grant_lease(std::chrono::seconds ttl) {
  const int64_t id = next_lease_++;
  leases_[id] = ttl;
  return id;
}

void FakeEtcd::erase_on_lease(int64_t lease) {
  std::vector<std::string> keys;
  for (const auto& [key, kv] : kvs_) {
    if (kv.lease == lease) keys.push_back(key);
  }
  for (const auto& key : keys) erase(key);
}

void FakeEtcd::expire_lease(int64_t lease) {
  if (leases_.erase(lease) == 0) return;
  erase_on_lease(lease);
}

void FakeEtcd::wipe() {
  std::vector<std::string> keys;
  for (const auto& [key, kv] : kvs_) keys.push_back(key);
  for (const auto& key : keys) erase(key);
  leases_.clear();
}

asio::awaitable<LeaseGrant> FakeEtcd::lease_grant(std::chrono::seconds ttl) {
  ++grants_;
  LeaseGrant out;
  if (!co_await answer(out.status)) co_return out;
  out.id = grant_lease(ttl);
  out.ttl = ttl;
  co_return out;
}

asio::awaitable<EtcdStatus> FakeEtcd::lease_revoke(int64_t lease, std::chrono::milliseconds timeout) {
  ++revokes_;
  EtcdStatus failed;
  if (!co_await answer(failed, timeout)) co_return failed;
  if (!has_lease(lease)) co_return lease_not_found();
  expire_lease(lease);
  // A named value, not `co_return EtcdStatus{}`: GCC 12 miscompiles this coroutine with the braced temporary
  // (its frame's parameters read back as garbage on the first resume).
  const EtcdStatus ok;
  co_return ok;
}

asio::awaitable<LeaseTimeToLive> FakeEtcd::lease_time_to_live(int64_t lease) {
  ++ttl_calls_;
  LeaseTimeToLive out;
  if (!co_await answer(out.status)) co_return out;
  // etcd answers an unknown lease with TTL -1, not an error.
  auto it = leases_.find(lease);
  out.ttl = it == leases_.end() ? std::chrono::seconds(-1) : it->second;
  out.granted_ttl = it == leases_.end() ? std::chrono::seconds(0) : it->second;
  co_return out;
}

std::shared_ptr<KeepaliveSession> FakeEtcd::new_keepalive() {
  keepalives_.push_back(std::make_shared<FakeKeepalive>(*this, io_));
  return keepalives_.back();
}

void FakeEtcd::hold_keepalive_writes(bool hold) {
  hold_keepalive_writes_ = hold;
  keepalive_release_.wake();
}

void FakeEtcd::end_keepalives(EtcdStatus status) {
  for (auto& k : keepalives_) {
    if (k->opened_ && !k->ended()) k->end(status);
  }
}

asio::awaitable<GuardedPutResult> FakeEtcd::put_if_mod_revision(GuardedPut put) {
  ++guarded_puts_;
  GuardedPutResult out;
  if (!co_await answer(out.status)) co_return out;
  const auto current = get(put.key);
  if ((current ? current->mod_revision : 0) != put.expect_mod_revision) {
    out.revision = revision_;
    if (current) out.current = core::Observed{current->value, current->lease, current->mod_revision};
    co_return out;
  }
  if (put.lease != 0 && !has_lease(put.lease)) {
    out.status = lease_not_found();
    co_return out;
  }
  out.succeeded = true;
  out.revision = this->put(put.key, put.value, put.lease);
  co_return out;
}

asio::awaitable<GuardedDeleteResult> FakeEtcd::delete_if_lease(std::string key, int64_t lease) {
  GuardedDeleteResult out;
  if (!co_await answer(out.status)) co_return out;
  const auto current = get(key);
  // etcd compares an absent key's lease as 0.
  out.succeeded = (current ? current->lease : 0) == lease;
  out.revision = out.succeeded && current ? erase(key) : revision_;
  co_return out;
}

// ---- FakeKeepalive

FakeKeepalive::FakeKeepalive(FakeEtcd& etcd, asio::io_context& io) : etcd_(etcd), signal_(io) {}

asio::awaitable<bool> FakeKeepalive::open() {
  co_await asio::post(etcd_.io_, asio::use_awaitable);
  while (etcd_.silent_ && !cancelled_) co_await signal_.wait();
  if (cancelled_) co_return false;
  opened_ = true;
  co_return true;
}

asio::awaitable<bool> FakeKeepalive::write(int64_t lease) {
  ++writes_;
  max_in_flight_ = std::max(max_in_flight_, ++in_flight_);
  co_await asio::post(etcd_.io_, asio::use_awaitable);
  while (etcd_.hold_keepalive_writes_ && !ended()) co_await etcd_.keepalive_release_.wait();
  --in_flight_;
  if (ended()) co_return false;
  if (!etcd_.silent_) {  // a silent member takes the write and never answers
    auto it = etcd_.leases_.find(lease);
    queue_.push_back({lease, it == etcd_.leases_.end() ? 0 : it->second.count()});
    signal_.wake();
  }
  co_return true;
}

asio::awaitable<std::optional<KeepaliveAck>> FakeKeepalive::read() {
  co_await asio::post(etcd_.io_, asio::use_awaitable);
  while (queue_.empty() && !ended()) co_await signal_.wait();
  if (cancelled_ || queue_.empty()) co_return std::nullopt;
  KeepaliveAck ack = queue_.front();
  queue_.pop_front();
  co_return ack;
}

void FakeKeepalive::cancel() {
  cancelled_ = true;
  signal_.wake();
  etcd_.keepalive_release_.wake();
}

void FakeKeepalive::end(EtcdStatus status) {
  end_ = std::move(status);
  signal_.wake();
  etcd_.keepalive_release_.wake();
}

asio::awaitable<EtcdStatus> FakeKeepalive::finish() {
  co_await asio::post(etcd_.io_, asio::use_awaitable);
  while (!ended()) co_await signal_.wait();
  if (end_) co_return *end_;
  co_return EtcdStatus::failure(kCancelled, "cancelled");
}

}  // namespace sidecar::runtime::testing
