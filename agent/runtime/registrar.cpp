#include "agent/runtime/registrar.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace sidecar::runtime {

using asio::use_awaitable;
using core::TimePoint;

namespace {

constexpr std::chrono::milliseconds kRevokeStaleTimeout{1000};

}  // namespace

Registrar::Registrar(asio::io_context& io, EtcdPort& etcd, std::vector<core::DesiredKey> keys,
                     core::RegistrationOptions options, RegistrarHooks hooks)
    : io_(io),
      etcd_(etcd),
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
  if (previous_lease && *previous_lease != 0) {
    scope_.spawn("lease adoption", adopt_then_watch(*previous_lease));
  } else {
    scope_.spawn("own-key watch", watch_loop());
    apply(machine_.start(now()));
  }
}

// The own-key watch starts once the lease is settled: its first read is what finds a key the previous
// process left on the adopted lease for a service that is now withdrawn (critical, drained) and deletes it.
// A read answered before the adoption would see that key on a lease not (yet) ours and leave it alone.
asio::awaitable<void> Registrar::adopt_then_watch(int64_t lease) {
  co_await adopt_or_grant(lease);
  if (!stopping_) co_await watch_loop();
}

asio::awaitable<void> Registrar::adopt_or_grant(int64_t lease) {
  const std::string hex = core::lease_to_hex(lease);
  core::Backoff backoff({std::chrono::milliseconds(100), std::chrono::milliseconds(1000), 2.0, 0.2});
  const TimePoint give_up = now() + ttl_;  // past one TTL without an answer, the lease has expired anyway
  bool warned = false;
  while (!stopping_) {
    const TimePoint sent_at = now();
    const LeaseTimeToLive r = co_await etcd_.lease_time_to_live(lease);
    if (stopping_) co_return;
    if (r.status.ok) {
      if (r.ttl.count() > 0) {
        apply(machine_.adopt_lease(lease, r.granted_ttl, r.ttl, sent_at, now()));
      } else {
        spdlog::info("previous lease {} has expired; registering on a new lease", hex);
        machine_.remember_lease(lease);
        apply(machine_.start(now()));
      }
      co_return;
    }
    if (r.status.lease_not_found() || now() >= give_up) {
      spdlog::info("previous lease {} is gone ({}); registering on a new lease", hex, r.status.message);
      machine_.remember_lease(lease);
      apply(machine_.start(now()));
      co_return;
    }
    if (!warned) {
      spdlog::warn("cannot check previous lease {}: {}; retrying", hex, r.status.message);
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
  if (actions.revoke_stale) scope_.spawn("stale lease revoke", revoke(*actions.revoke_stale, kRevokeStaleTimeout));
  if (actions.grant_lease) scope_.spawn("lease grant", grant_lease());
  if (actions.keepalive) send_keepalive(*actions.keepalive);
  // The key and value are taken now, when the machine decided: the coroutine starts a turn later.
  for (auto& write : actions.writes) {
    const auto& desired = machine_.desired(write.index);
    GuardedPut put{desired.key, desired.value, write.lease, write.expect_mod_revision};
    scope_.spawn("key write", write_key(std::move(write), std::move(put)));
  }
  for (auto& del : actions.deletes) {
    std::string key = machine_.desired(del.index).key;
    scope_.spawn("key delete", delete_key(std::move(del), std::move(key)));
  }
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
  set_service_health(index, healthy ? core::HealthStatus::kPassing : core::HealthStatus::kCritical, reason);
}

void Registrar::set_service_health(size_t index, core::HealthStatus health, const std::string& reason) {
  // While drained nothing is written; the health is remembered for the undrain.
  apply_change(index, publication_.set_health(index, health), reason);
}

void Registrar::set_maintenance(size_t index, bool maintenance, const std::string& reason) {
  apply_change(index, publication_.set_maintenance(index, maintenance), reason);
}

void Registrar::set_value_source(size_t index, ValueOf value_of) {
  if (!value_of) return;
  std::string value = value_of(publication_.state(index));
  value_of_[index] = std::move(value_of);
  update_value(index, std::move(value));
}

void Registrar::apply_change(size_t index, core::Publication::KeyChange change, const std::string& reason) {
  if (change.state) {
    if (const auto it = value_of_.find(index); it != value_of_.end()) {
      const core::InstanceState state = publication_.state(index);
      if (publication_.published(index) && !change.published) {
        spdlog::info("{}: state {} ({}); rewriting it on the same lease", machine_.desired(index).key,
                     core::to_string(state), reason);
      }
      update_value(index, it->second(state));
    }
  }
  if (change.published) update_published({index}, reason);
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

size_t Registrar::add_key(core::DesiredKey key, bool maintenance) {
  const bool healthy = key.published;
  key.published = (healthy || maintenance) && !publication_.drained() && !publication_.shutting_down();
  const std::string name = key.key;
  size_t index = 0;
  apply(machine_.add_key(std::move(key), now(), &index));
  publication_.add(index, healthy, maintenance);
  value_of_.erase(index);  // a revived index: its old service's values are not this one's
  key_index_[name] = index;
  // The watch covers the keys it was started with: restart it so the new key is read and watched too.
  rewatch_ = true;
  if (watch_stream_) watch_stream_->cancel();
  watch_retry_timer_.cancel();  // a watch waiting to retry (or with nothing to watch yet) starts now
  return index;
}

void Registrar::remove_key(size_t index) {
  publication_.remove(index);  // an undrain never publishes it again
  value_of_.erase(index);
  apply(machine_.remove_key(index, now()));
}

void Registrar::update_value(size_t index, std::string value) { apply(machine_.update_value(index, std::move(value), now())); }

asio::awaitable<void> Registrar::delete_key(core::DeleteKey del, std::string key) {
  // Only while it is on our lease: a key another agent took over in the meantime is left alone.
  const GuardedDeleteResult r = co_await etcd_.delete_if_lease(std::move(key), del.lease);
  if (stopping_) co_return;
  core::DeleteOutcome outcome;
  outcome.attempt = del.attempt;
  if (!r.status.ok) {
    outcome.kind = core::DeleteOutcome::Kind::kFailed;
    outcome.error = r.status.message;
  } else {
    outcome.kind = r.succeeded ? core::DeleteOutcome::Kind::kDeleted : core::DeleteOutcome::Kind::kNotOurs;
    outcome.revision = r.revision;
  }
  last_result_at_[del.index] = ++results_applied_;
  apply(machine_.on_delete_result(del.index, outcome, now(), random01()));
}

asio::awaitable<void> Registrar::grant_lease() {
  const TimePoint sent_at = now();
  const LeaseGrant r = co_await etcd_.lease_grant(ttl_);
  if (stopping_) co_return;
  if (!r.status.ok) {
    apply(machine_.on_lease_grant_failed(r.status.message.empty() ? "no lease id" : r.status.message, now(),
                                         random01()));
    co_return;
  }
  apply(machine_.on_lease_granted(r.id, r.ttl, sent_at, now()));
}

asio::awaitable<void> Registrar::write_key(core::WriteKey write, GuardedPut put) {
  GuardedPutResult r = co_await etcd_.put_if_mod_revision(std::move(put));
  if (stopping_) co_return;
  core::WriteOutcome outcome;
  outcome.attempt = write.attempt;
  if (!r.status.ok) {
    outcome.kind = r.status.lease_not_found() ? core::WriteOutcome::Kind::kLeaseNotFound : core::WriteOutcome::Kind::kFailed;
    outcome.error = r.status.message;
  } else {
    outcome.kind = r.succeeded ? core::WriteOutcome::Kind::kWritten : core::WriteOutcome::Kind::kRejected;
    outcome.revision = r.revision;
    if (!r.succeeded) outcome.current = std::move(r.current);
  }
  last_result_at_[write.index] = ++results_applied_;
  apply(machine_.on_write_result(write.index, outcome, now(), random01()));
}

void Registrar::send_keepalive(int64_t lease) {
  // Stacking writes would break gRPC's one-write-at-a-time rule, and dropping the keepalive would leave
  // the lease a whole TTL/3 closer to expiry: the gate owes it instead, and it goes out when the write in
  // flight completes. Without a stream, the reconnect sends one anyway (Registration::on_reconnected).
  if (keepalive_gate_.request(lease)) write_keepalive(lease);
}

void Registrar::write_keepalive(int64_t lease) {
  keepalive_sent_.push_back(now());
  scope_.spawn("lease keepalive write", keepalive_write(keepalive_stream_, lease));
}

asio::awaitable<void> Registrar::keepalive_write(std::shared_ptr<KeepaliveSession> stream, int64_t lease) {
  const bool ok = co_await stream->write(lease);
  if (stream != keepalive_stream_ || stopping_) co_return;  // an old stream's write: the gate has moved on
  if (!ok) {
    // The stream is broken; the read side ends and the loop reconnects. Anything asked for meanwhile is
    // owed and superseded by the reconnect's keepalive.
    keepalive_gate_.on_stream_down();
    co_return;
  }
  if (const auto owed = keepalive_gate_.on_write_done()) write_keepalive(*owed);
}

asio::awaitable<void> Registrar::revoke(int64_t lease, std::chrono::milliseconds timeout) {
  const EtcdStatus status = co_await etcd_.lease_revoke(lease, timeout);
  if (status.ok) spdlog::debug("revoked stale lease {}", core::lease_to_hex(lease));
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

asio::awaitable<bool> Registrar::backoff_wait(Timer& timer, core::Backoff& backoff) {
  timer.expires_after(backoff.next(random01()));
  boost::system::error_code ec;
  co_await timer.async_wait(asio::redirect_error(use_awaitable, ec));
  co_return !stopping_;
}

asio::awaitable<void> Registrar::keepalive_loop() {
  core::Backoff backoff;
  bool reported_down = false;
  while (!stopping_) {
    auto stream = etcd_.new_keepalive();
    // Known to halt_loops() from creation, so a stop while it opens cancels it (see the finish below).
    keepalive_stream_ = stream;
    const bool started = co_await stream->open();
    if (started && !stopping_) {
      keepalive_sent_.clear();
      keepalive_gate_.on_stream_up();
      // Check the lease now rather than at the next TTL/3: after an etcd restart with wiped data this is
      // what notices, within one round trip, that the lease is gone.
      apply(machine_.on_reconnected(now()));
      while (auto ack = co_await stream->read()) {
        if (reported_down) {
          spdlog::info("lease keepalive stream to {} is back", stream->endpoint());
          reported_down = false;
        }
        backoff.reset();
        if (keepalive_sent_.empty()) continue;  // an answer we did not ask for on this stream
        const TimePoint sent_at = keepalive_sent_.front();
        keepalive_sent_.pop_front();
        keepalive_rtt_.observe(std::chrono::duration<double>(now() - sent_at).count());
        apply(machine_.on_keepalive_ack(ack->id, ack->ttl, sent_at, now()));
      }
      keepalive_gate_.on_stream_down();
    }
    keepalive_stream_.reset();
    // A stream the server never ends (we stopped, it is still open) would hold finish, and join(), forever.
    if (stopping_) stream->cancel();
    const EtcdStatus status = co_await stream->finish();
    if (stopping_) break;
    if (!reported_down) {
      spdlog::warn("lease keepalive stream to {} ended: {}; reconnecting", stream->endpoint(),
                   status.ok ? "closed by server" : status.message);
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
  for (size_t i = 1; i < leases.size(); ++i) scope_.spawn("old lease revoke", revoke(leases[i], budget));
  const int64_t lease = leases.front();
  const auto started = now();
  const EtcdStatus status = co_await etcd_.lease_revoke(lease, budget);
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(now() - started);
  if (status.ok || status.lease_not_found()) {
    spdlog::info("deregistered {} key(s): revoked lease {} in {} ms", machine_.live_key_count(), core::lease_to_hex(lease),
                 took.count());
  } else {
    spdlog::warn("could not revoke lease {} ({}); its keys expire with the lease within {} s",
                 core::lease_to_hex(lease), status.message, ttl_.count());
  }
}

}  // namespace sidecar::runtime
