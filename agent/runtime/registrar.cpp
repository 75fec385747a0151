#include "agent/runtime/registrar.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace sidecar::runtime {

using asio::use_awaitable;
using core::TimePoint;

namespace {

constexpr std::chrono::milliseconds kRevokeStaleTimeout{1000};

bool is_lease_not_found(const grpc::Status& status) {
  return status.error_code() == grpc::StatusCode::NOT_FOUND ||
         status.error_message().find("lease not found") != std::string::npos;
}

}  // namespace

Registrar::Registrar(asio::io_context& io, etcd::Client& client, std::vector<core::DesiredKey> keys,
                     core::RegistrationOptions options, RegistrarHooks hooks)
    : io_(io),
      client_(client),
      machine_(keys, options),
      hooks_(std::move(hooks)),
      ttl_(options.ttl),
      wake_(io),
      keepalive_retry_(io),
      watch_retry_timer_(io),
      adopt_retry_(io),
      settle_(io),
      scope_(io, "registrar") {
  for (size_t i = 0; i < keys.size(); ++i) {
    key_index_.emplace(keys[i].key, i);
    publication_.add(i, keys[i].published);
  }
}

void Registrar::start(std::optional<int64_t> previous_lease) {
  scope_.spawn("tick", tick_loop());
  scope_.spawn("lease keepalive", keepalive_loop());
  scope_.spawn("own-key watch", watch_loop());
  if (previous_lease && *previous_lease != 0) {
    scope_.spawn("lease adoption", adopt_or_grant(*previous_lease));
  } else {
    apply(machine_.start(now()));
  }
}

asio::awaitable<void> Registrar::adopt_or_grant(int64_t lease) {
  const std::string hex = core::lease_to_hex(lease);
  core::Backoff backoff({std::chrono::milliseconds(100), std::chrono::milliseconds(1000), 2.0, 0.2});
  const TimePoint give_up = now() + ttl_;  // past one TTL without an answer, the lease has expired anyway
  bool warned = false;
  while (!stopping_) {
    etcd::pb::LeaseTimeToLiveRequest req;
    req.set_id(lease);
    const TimePoint sent_at = now();
    auto r = co_await client_.lease_time_to_live(std::move(req), use_awaitable);
    if (stopping_) co_return;
    if (r.ok()) {
      if (r.response.ttl() > 0) {
        apply(machine_.adopt_lease(lease, std::chrono::seconds(r.response.grantedttl()),
                                   std::chrono::seconds(r.response.ttl()), sent_at, now()));
      } else {
        spdlog::info("previous lease {} has expired; registering on a new lease", hex);
        machine_.remember_lease(lease);
        apply(machine_.start(now()));
      }
      co_return;
    }
    if (is_lease_not_found(r.status) || now() >= give_up) {
      spdlog::info("previous lease {} is gone ({}); registering on a new lease", hex, r.status.error_message());
      machine_.remember_lease(lease);
      apply(machine_.start(now()));
      co_return;
    }
    if (!warned) {
      spdlog::warn("cannot check previous lease {}: {}; retrying", hex, r.status.error_message());
      warned = true;
    }
    if (!co_await backoff_wait(adopt_retry_, backoff)) co_return;
  }
}

void Registrar::apply(core::Actions actions) {
  for (const auto& note : actions.notes) {
    if (note.level == core::LogNote::Level::kWarn) {
      spdlog::warn("{}", note.text);
    } else {
      spdlog::info("{}", note.text);
    }
  }
  if (stopping_) return;
  if (actions.revoke_stale) revoke_stale(*actions.revoke_stale);
  if (actions.grant_lease) grant_lease();
  if (actions.keepalive) send_keepalive(*actions.keepalive);
  for (const auto& write : actions.writes) write_key(write);
  for (const auto& del : actions.deletes) delete_key(del);
  if (actions.became_ready && hooks_.on_ready) hooks_.on_ready();
  if (machine_.lease() != 0 && machine_.lease() != reported_lease_) {
    reported_lease_ = machine_.lease();
    if (hooks_.on_lease) hooks_.on_lease(reported_lease_);
  }
  wake_.cancel();  // the tick loop re-reads next_wakeup()
  settle_.cancel();
}

void Registrar::update_published(const std::vector<size_t>& changed, const std::string& reason) {
  for (size_t index : changed) apply(machine_.set_published(index, publication_.published(index), now(), reason));
}

void Registrar::set_service_healthy(size_t index, bool healthy, const std::string& reason) {
  // While drained nothing changes; the health is remembered for the undrain.
  update_published(publication_.set_healthy(index, healthy), reason);
}

void Registrar::set_drained(bool drained, const std::string& reason) {
  auto result = publication_.set_drained(drained);
  if (result.outcome == core::Publication::DrainOutcome::kShuttingDown) {
    spdlog::info("{}: ignored, the agent is shutting down", reason);
    return;
  }
  if (result.outcome == core::Publication::DrainOutcome::kAlready) {
    spdlog::info("{}: already {}", reason, drained ? "drained" : "undrained");
    return;
  }
  const size_t published = publication_.healthy_count();
  if (drained) {
    spdlog::info("{}: draining: withdrawing {} key(s), lease {} kept", reason, machine_.live_key_count(),
                 core::lease_to_hex(machine_.lease()));
  } else {
    spdlog::info("{}: undraining: publishing {} healthy key(s) of {}", reason, published, machine_.live_key_count());
  }
  update_published(result.changed, drained ? "drained" : "undrained");
}

asio::awaitable<bool> Registrar::withdraw_for_shutdown(std::chrono::milliseconds budget) {
  update_published(publication_.begin_shutdown(), "shutting down");
  const auto deadline = now() + budget;
  while (machine_.withdrawals_pending() && now() < deadline && !stopping_) {
    settle_.expires_at(deadline);
    boost::system::error_code ec;
    co_await settle_.async_wait(asio::redirect_error(use_awaitable, ec));
  }
  co_return !machine_.withdrawals_pending();
}

size_t Registrar::add_key(core::DesiredKey key) {
  const bool healthy = key.published;
  key.published = healthy && !publication_.drained() && !publication_.shutting_down();
  const std::string name = key.key;
  size_t index = 0;
  apply(machine_.add_key(std::move(key), now(), &index));
  publication_.add(index, healthy);
  key_index_[name] = index;
  // The watch covers the keys it was started with: restart it so the new key is read and watched too.
  rewatch_ = true;
  if (watch_stream_) watch_stream_->cancel();
  return index;
}

void Registrar::remove_key(size_t index) {
  publication_.remove(index);  // an undrain never publishes it again
  apply(machine_.remove_key(index, now()));
}

void Registrar::update_value(size_t index, std::string value) { apply(machine_.update_value(index, std::move(value), now())); }

void Registrar::delete_key(const core::DeleteKey& del) {
  const auto& desired = machine_.desired(del.index);
  // Only while it is on our lease: a key another agent took over in the meantime is left alone.
  etcd::pb::TxnRequest txn;
  auto* cmp = txn.add_compare();
  cmp->set_key(desired.key);
  cmp->set_target(etcd::pb::Compare::LEASE);
  cmp->set_result(etcd::pb::Compare::EQUAL);
  cmp->set_lease(del.lease);
  txn.add_success()->mutable_request_delete_range()->set_key(desired.key);

  client_.txn(std::move(txn), [this, del](etcd::RpcResult<etcd::pb::TxnResponse> r) {
    if (stopping_) return;
    core::DeleteOutcome outcome;
    outcome.attempt = del.attempt;
    if (!r.ok()) {
      outcome.kind = core::DeleteOutcome::Kind::kFailed;
      outcome.error = r.status.error_message();
    } else {
      outcome.kind = r.response.succeeded() ? core::DeleteOutcome::Kind::kDeleted : core::DeleteOutcome::Kind::kNotOurs;
      outcome.revision = r.response.header().revision();
    }
    apply(machine_.on_delete_result(del.index, outcome, now(), random01()));
  });
}

void Registrar::grant_lease() {

  etcd::pb::LeaseGrantRequest req;
  req.set_ttl(ttl_.count());
  const TimePoint sent_at = now();
  client_.lease_grant(std::move(req), [this, sent_at](etcd::RpcResult<etcd::pb::LeaseGrantResponse> r) {
    if (stopping_) return;
    if (!r.ok() || !r.response.error().empty() || r.response.id() == 0) {
      const std::string error = !r.ok() ? r.status.error_message() : r.response.error();
      apply(machine_.on_lease_grant_failed(error.empty() ? "no lease id" : error, now(), random01()));
      return;
    }
    apply(machine_.on_lease_granted(r.response.id(), std::chrono::seconds(r.response.ttl()), sent_at, now()));
  });
}

void Registrar::write_key(const core::WriteKey& write) {
  const auto& desired = machine_.desired(write.index);
  etcd::pb::TxnRequest txn;
  auto* cmp = txn.add_compare();
  cmp->set_key(desired.key);
  cmp->set_target(etcd::pb::Compare::MOD);
  cmp->set_result(etcd::pb::Compare::EQUAL);
  cmp->set_mod_revision(write.expect_mod_revision);
  auto* put = txn.add_success()->mutable_request_put();
  put->set_key(desired.key);
  put->set_value(desired.value);
  put->set_lease(write.lease);
  txn.add_failure()->mutable_request_range()->set_key(desired.key);

  client_.txn(std::move(txn), [this, write](etcd::RpcResult<etcd::pb::TxnResponse> r) {
    if (stopping_) return;
    core::WriteOutcome outcome;
    outcome.attempt = write.attempt;
    if (!r.ok()) {
      outcome.kind = is_lease_not_found(r.status) ? core::WriteOutcome::Kind::kLeaseNotFound
                                                  : core::WriteOutcome::Kind::kFailed;
      outcome.error = r.status.error_message();
    } else if (r.response.succeeded()) {
      outcome.kind = core::WriteOutcome::Kind::kWritten;
      outcome.revision = r.response.header().revision();
    } else {
      outcome.kind = core::WriteOutcome::Kind::kRejected;
      outcome.revision = r.response.header().revision();
      if (r.response.responses_size() > 0 && r.response.responses(0).response_range().kvs_size() > 0) {
        const auto& kv = r.response.responses(0).response_range().kvs(0);
        outcome.current = core::Observed{kv.value(), kv.lease(), kv.mod_revision()};
      }
    }
    apply(machine_.on_write_result(write.index, outcome, now(), random01()));
  });
}

void Registrar::send_keepalive(int64_t lease) {
  // Stacking writes would break gRPC's one-write-at-a-time rule, and dropping the keepalive would leave
  // the lease a whole TTL/3 closer to expiry: the gate owes it instead, and it goes out when the write in
  // flight completes. Without a stream, the reconnect sends one anyway (Registration::on_reconnected).
  if (keepalive_gate_.request(lease)) write_keepalive(lease);
}

void Registrar::write_keepalive(int64_t lease) {
  etcd::pb::LeaseKeepAliveRequest req;
  req.set_id(lease);
  keepalive_sent_.push_back(now());
  auto stream = keepalive_stream_;
  stream->async_write(std::move(req), [this, stream](bool ok) {
    if (stream != keepalive_stream_ || stopping_) return;  // an old stream's write: the gate has moved on
    if (!ok) {
      // The stream is broken; the read side ends and the loop reconnects. Anything asked for meanwhile is
      // owed and superseded by the reconnect's keepalive.
      keepalive_gate_.on_stream_down();
      return;
    }
    if (const auto owed = keepalive_gate_.on_write_done()) write_keepalive(*owed);
  });
}

void Registrar::revoke_stale(int64_t lease) {
  etcd::pb::LeaseRevokeRequest req;
  req.set_id(lease);
  client_.lease_revoke(
      std::move(req),
      [lease](etcd::RpcResult<etcd::pb::LeaseRevokeResponse> r) {
        if (r.ok()) spdlog::debug("revoked stale lease {}", core::lease_to_hex(lease));
      },
      kRevokeStaleTimeout);
}

asio::awaitable<void> Registrar::tick_loop() {
  while (!stopping_) {
    auto at = machine_.next_wakeup();
    // A quiet own-key watch proves itself healthy only by staying up: say it is back when it has.
    const auto recovery = watch_retry_.recovery_due();
    if (recovery && (!at || *recovery < *at)) at = recovery;
    wake_.expires_at(at ? *at : TimePoint::max());
    boost::system::error_code ec;
    co_await wake_.async_wait(asio::redirect_error(use_awaitable, ec));
    if (stopping_) break;
    if (watch_retry_.on_tick(now())) spdlog::info("own-key watch is back");
    if (!ec) apply(machine_.on_tick(now(), random01()));
  }
}

asio::awaitable<bool> Registrar::backoff_wait(asio::steady_timer& timer, core::Backoff& backoff) {
  timer.expires_after(backoff.next(random01()));
  boost::system::error_code ec;
  co_await timer.async_wait(asio::redirect_error(use_awaitable, ec));
  co_return !stopping_;
}

asio::awaitable<void> Registrar::keepalive_loop() {
  core::Backoff backoff;
  bool reported_down = false;
  while (!stopping_) {
    auto stream = client_.new_keepalive_stream();
    // Known to halt_loops() from creation, so a stop while it opens cancels it (see the Finish below).
    keepalive_stream_ = stream;
    const bool started = co_await stream->async_start(use_awaitable);
    if (started && !stopping_) {
      keepalive_sent_.clear();
      keepalive_gate_.on_stream_up();
      // Check the lease now rather than at the next TTL/3: after an etcd restart with wiped data this is
      // what notices, within one round trip, that the lease is gone.
      apply(machine_.on_reconnected(now()));
      while (auto resp = co_await stream->async_read(use_awaitable)) {
        if (reported_down) {
          spdlog::info("lease keepalive stream to {} is back", stream->endpoint());
          reported_down = false;
        }
        backoff.reset();
        if (keepalive_sent_.empty()) continue;  // an answer we did not ask for on this stream
        const TimePoint sent_at = keepalive_sent_.front();
        keepalive_sent_.pop_front();
        keepalive_rtt_.observe(std::chrono::duration<double>(now() - sent_at).count());
        apply(machine_.on_keepalive_ack(resp->id(), resp->ttl(), sent_at, now()));
      }
      keepalive_gate_.on_stream_down();
    }
    keepalive_stream_.reset();
    // A stream the server never ends (we stopped, it is still open) would hold Finish, and join(), forever.
    if (stopping_) stream->cancel();
    const grpc::Status status = co_await stream->async_finish(use_awaitable);
    if (stopping_) break;
    client_.report_failure(stream->endpoint(), status);
    if (!reported_down) {
      spdlog::warn("lease keepalive stream to {} ended: {}; reconnecting", stream->endpoint(),
                   status.ok() ? "closed by server" : status.error_message());
      reported_down = true;
    }
    if (!co_await backoff_wait(keepalive_retry_, backoff)) break;
  }
}

void Registrar::halt_loops() {
  stopping_ = true;
  wake_.cancel();
  adopt_retry_.cancel();
  settle_.cancel();
  keepalive_retry_.cancel();
  watch_retry_timer_.cancel();
  if (keepalive_stream_) keepalive_stream_->cancel();
  if (watch_stream_) watch_stream_->cancel();
}

int64_t Registrar::abandon() {
  halt_loops();
  return machine_.lease();
}

asio::awaitable<void> Registrar::stop(std::chrono::milliseconds budget) {
  halt_loops();
  // Revoking deletes every key attached to a lease in one step; keys we never won are not on ours. Leases
  // we gave up on go too: after an etcd outage the live lease may still be being granted while the old one,
  // restored by etcd's restart, still holds our keys.
  const std::vector<int64_t> leases = machine_.leases_to_revoke();
  if (leases.empty()) co_return;
  for (size_t i = 1; i < leases.size(); ++i) {
    etcd::pb::LeaseRevokeRequest old;
    old.set_id(leases[i]);
    client_.lease_revoke(std::move(old), [](etcd::RpcResult<etcd::pb::LeaseRevokeResponse>) {}, budget);
  }
  const int64_t lease = leases.front();
  etcd::pb::LeaseRevokeRequest req;
  req.set_id(lease);
  const auto started = now();
  auto r = co_await client_.lease_revoke(std::move(req), use_awaitable, budget);
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(now() - started);
  if (r.ok() || is_lease_not_found(r.status)) {
    spdlog::info("deregistered {} key(s): revoked lease {} in {} ms", machine_.live_key_count(), core::lease_to_hex(lease),
                 took.count());
  } else {
    spdlog::warn("could not revoke lease {} ({}); its keys expire with the lease within {} s",
                 core::lease_to_hex(lease), r.status.error_message(), ttl_.count());
  }
}

}  // namespace sidecar::runtime
