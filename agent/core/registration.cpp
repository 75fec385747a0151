#include "agent/core/registration.hpp"

#include <algorithm>
#include <cassert>
#include <cstdio>
#include <iterator>

namespace sidecar::core {
namespace {

constexpr size_t kRememberedLeases = 8;

std::string fmt_seconds(std::chrono::seconds s) { return std::to_string(s.count()) + "s"; }

}  // namespace

std::string lease_to_hex(int64_t lease) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%llx", static_cast<unsigned long long>(lease));
  return buf;
}

const char* to_string(Registration::KeyState state) {
  switch (state) {
    case Registration::KeyState::kPending: return "pending";
    case Registration::KeyState::kWriting: return "writing";
    case Registration::KeyState::kRegistered: return "registered";
    case Registration::KeyState::kConflict: return "conflict";
    case Registration::KeyState::kWithdrawn: return "withdrawn";
  }
  return "unknown";
}

void Actions::merge(Actions other) {
  grant_lease = grant_lease || other.grant_lease;
  if (other.keepalive) keepalive = other.keepalive;
  if (other.revoke_stale) revoke_stale = other.revoke_stale;
  writes.insert(writes.end(), other.writes.begin(), other.writes.end());
  deletes.insert(deletes.end(), other.deletes.begin(), other.deletes.end());
  notes.insert(notes.end(), std::make_move_iterator(other.notes.begin()), std::make_move_iterator(other.notes.end()));
  became_ready = became_ready || other.became_ready;
}

Registration::Registration(std::vector<DesiredKey> keys, RegistrationOptions options)
    : options_(options), grant_backoff_(options.grant_backoff) {
  keys_.reserve(keys.size());
  for (auto& k : keys) {
    Key& key = keys_.emplace_back();
    key.desired = std::move(k);
    key.write_backoff = Backoff(options.write_backoff);
    key.conflict_backoff = Backoff(options.conflict_backoff);
    key.published = key.desired.published;
    if (!key.published) key.state = KeyState::kWithdrawn;
  }
}

std::string Registration::lease_hex() const { return lease_to_hex(lease_); }

Actions Registration::start(TimePoint) {
  Actions out;
  lease_state_ = LeaseState::kGranting;
  out.grant_lease = true;
  return out;
}

Actions Registration::on_lease_granted(int64_t lease, std::chrono::seconds granted_ttl, TimePoint sent_at,
                                       TimePoint now) {
  Actions out;
  if (lease_state_ != LeaseState::kGranting) return out;  // a grant we no longer wait for
  hold_lease(lease, granted_ttl, sent_at + granted_ttl);
  next_keepalive_ = sent_at + keepalive_interval();
  ++leases_granted_;
  out.notes.push_back({LogNote::Level::kInfo, "lease " + lease_hex() + " granted, ttl " + fmt_seconds(granted_ttl)});
  // Keys from an older lease of ours may still be there: the first Txn finds them and moves them over.
  write_published_keys(out);  // an agent with nothing to register is ready once it holds its lease
  (void)now;
  return out;
}

Actions Registration::adopt_lease(int64_t lease, std::chrono::seconds granted_ttl, std::chrono::seconds remaining,
                                  TimePoint sent_at, TimePoint now) {
  Actions out;
  if (lease_state_ == LeaseState::kAlive) return out;  // only instead of a first grant
  // A keepalive at once: the lease may have aged for most of its TTL while no process held it.
  hold_lease(lease, granted_ttl.count() > 0 ? granted_ttl : options_.ttl, sent_at + remaining);
  next_keepalive_ = now;
  out.keepalive = lease_;
  out.notes.push_back({LogNote::Level::kInfo, "lease " + lease_hex() + " adopted from the previous process, " +
                                                  fmt_seconds(remaining) + " of " + fmt_seconds(granted_ttl_) +
                                                  " left"});
  // The first Txn (create-if-absent) fails on a key that is still there and reports what it holds: our
  // value on this lease is registered as is; anything else is handled as after any other write.
  // A withdrawn key is not re-asserted; if the previous process left it on this lease, the own-key watch's
  // first read finds it there and deletes it.
  write_published_keys(out);
  return out;
}

void Registration::hold_lease(int64_t lease, std::chrono::seconds granted_ttl, TimePoint deadline) {
  lease_state_ = LeaseState::kAlive;
  lease_ = lease;
  granted_ttl_ = granted_ttl;
  lease_deadline_ = deadline;
  grant_retry_at_.reset();
  grant_backoff_.reset();
}

void Registration::write_published_keys(Actions& out) {
  for (size_t i = 0; i < keys_.size(); ++i) {
    if (keys_[i].published) schedule_write(i, 0, out);
  }
  check_ready(out);
}

std::vector<int64_t> Registration::leases_to_revoke() const {
  std::vector<int64_t> out;
  if (lease_ != 0) out.push_back(lease_);
  for (int64_t old : old_leases_) {
    if (old != 0 && std::find(out.begin(), out.end(), old) == out.end()) out.push_back(old);
  }
  return out;
}

void Registration::remember_lease(int64_t lease) {
  if (lease == 0 || is_own_lease(lease)) return;
  old_leases_.push_front(lease);
  if (old_leases_.size() > kRememberedLeases) old_leases_.pop_back();
}

Actions Registration::on_lease_grant_failed(const std::string& error, TimePoint now, double random01) {
  Actions out;
  if (lease_state_ != LeaseState::kGranting) return out;
  lease_state_ = LeaseState::kNone;
  const bool first_failure = grant_backoff_.attempts() == 0;
  grant_retry_at_ = now + grant_backoff_.next(random01);
  if (first_failure) {
    out.notes.push_back({LogNote::Level::kWarn, "cannot grant lease: " + error + "; retrying with backoff"});
  }
  return out;
}

Actions Registration::on_keepalive_ack(int64_t lease, int64_t ttl_seconds, TimePoint sent_at, TimePoint now) {
  Actions out;
  if (lease_state_ != LeaseState::kAlive || lease != lease_) return out;
  if (ttl_seconds <= 0) {
    lose_lease("keepalive answered TTL " + std::to_string(ttl_seconds) + " (expired or revoked)", now, out);
    return out;
  }
  lease_deadline_ = std::max(lease_deadline_, sent_at + std::chrono::seconds(ttl_seconds));
  return out;
}

void Registration::lose_lease(const std::string& reason, TimePoint, Actions& out) {
  ++leases_lost_;
  out.notes.push_back({LogNote::Level::kWarn, "lease " + lease_hex() + " lost: " + reason + "; granting a new one and rewriting " +
                                                  std::to_string(keys_.size()) + " key(s)"});
  old_leases_.push_front(lease_);
  if (old_leases_.size() > kRememberedLeases) old_leases_.pop_back();
  // If etcd still holds it (we only lost contact), revoking frees its keys rather than leaving them to expire.
  out.revoke_stale = lease_;
  lease_ = 0;
  lease_state_ = LeaseState::kGranting;
  out.grant_lease = true;
  for (auto& key : keys_) {
    if (!key.published) {
      // Whatever is left of it sits on the lost lease, which is revoked or expires: nothing to delete.
      key.state = KeyState::kWithdrawn;
      key.retry_at.reset();
      key.deferred.reset();
      key.delete_wanted = false;
      key.delete_in_flight = false;
      ++key.attempt;
      continue;
    }
    if (key.state == KeyState::kRegistered && key.restore_reason.empty()) key.restore_reason = "lease lost";
    key.state = KeyState::kPending;
    key.retry_at.reset();
    key.deferred.reset();
    ++key.attempt;  // answers to writes on the old lease no longer matter
  }
}

void Registration::schedule_write(size_t index, int64_t expect_mod_revision, Actions& out) {
  Key& key = keys_[index];
  assert(lease_state_ == LeaseState::kAlive);
  assert(key.published);
  key.state = KeyState::kWriting;
  key.retry_at.reset();
  key.deferred.reset();
  ++key.attempt;
  out.writes.push_back({.index = index, .lease = lease_, .expect_mod_revision = expect_mod_revision,
                        .attempt = key.attempt});
}

void Registration::mark_registered(size_t index, Actions& out) {
  Key& key = keys_[index];
  key.state = KeyState::kRegistered;
  key.retry_at.reset();
  key.write_backoff.reset();
  key.conflict_backoff.reset();
  const std::string what = key.desired.key + " lease " + lease_hex();
  if (key.conflict_lease != 0) {
    out.notes.push_back({LogNote::Level::kInfo, "conflict resolved: registered " + what +
                                                    " (lease " + lease_to_hex(key.conflict_lease) + " is gone)"});
    key.conflict_lease = 0;
  } else if (!key.ever_registered) {
    out.notes.push_back({LogNote::Level::kInfo, "registered " + what});
  } else if (!key.restore_reason.empty()) {
    out.notes.push_back({LogNote::Level::kInfo, "restored " + what + " (" + key.restore_reason + ")"});
  }
  key.restore_reason.clear();
  key.ever_registered = true;
  check_ready(out);
}

bool Registration::is_own_lease(int64_t lease) const {
  return lease == lease_ || std::find(old_leases_.begin(), old_leases_.end(), lease) != old_leases_.end();
}

void Registration::request_delete(size_t index, int64_t lease, Actions& out) {
  Key& key = keys_[index];
  key.state = KeyState::kWithdrawn;
  key.retry_at.reset();
  key.deferred.reset();
  key.delete_wanted = true;
  key.delete_in_flight = true;
  key.delete_lease = lease;
  ++key.attempt;
  out.deletes.push_back({.index = index, .lease = lease, .attempt = key.attempt});
}

void Registration::decide_withdrawn(size_t index, const std::optional<Observed>& current, Actions& out) {
  Key& key = keys_[index];
  key.state = KeyState::kWithdrawn;
  // Never restored while withdrawn. Only a value still on one of our leases is ours to take away (a write
  // that landed after all, a failed delete); anything else belongs to someone else and is left alone.
  if (current && current->lease != 0 && is_own_lease(current->lease)) {
    if (!key.delete_in_flight) request_delete(index, current->lease, out);
    return;
  }
  if (!key.delete_in_flight) {
    key.delete_wanted = false;
    key.retry_at.reset();
  }
}

void Registration::decide(size_t index, const std::optional<Observed>& current, TimePoint now, double random01,
                          Actions& out) {
  Key& key = keys_[index];
  if (!key.published) {
    decide_withdrawn(index, current, out);
    return;
  }
  if (lease_state_ != LeaseState::kAlive) {
    key.state = KeyState::kPending;  // rewritten when the next lease is granted
    return;
  }
  if (!current) {
    if (key.state == KeyState::kRegistered) {
      key.restore_reason = "deleted by another client";
      ++keys_restored_;
    }
    schedule_write(index, 0, out);
    return;
  }
  if (current->lease == lease_ && current->value == key.desired.value) {
    key.mod_revision = current->mod_revision;
    mark_registered(index, out);
    return;
  }
  if (current->lease == 0 || is_own_lease(current->lease)) {
    // Ours, or nobody's: put it back. A key without a lease is a leftover or a manual write, never another agent.
    if (key.state == KeyState::kRegistered) {
      key.restore_reason = current->lease == 0 ? "overwritten without a lease by another client"
                                               : "value changed by another client";
      ++keys_restored_;
    }
    schedule_write(index, current->mod_revision, out);
    return;
  }
  // Held by another live lease: another agent with the same id. Never fight over it.
  if (key.conflict_lease != current->lease) {
    out.notes.push_back({LogNote::Level::kWarn, "conflict: " + key.desired.key + " is held by lease " +
                                                    lease_to_hex(current->lease) +
                                                    " of another client; not overwriting, retrying until it is gone"});
    key.conflict_lease = current->lease;
  }
  key.state = KeyState::kConflict;
  key.retry_at = now + key.conflict_backoff.next(random01);
}

Actions Registration::on_write_result(size_t index, const WriteOutcome& outcome, TimePoint now, double random01) {
  Actions out;
  Key& key = keys_[index];
  if (outcome.attempt != key.attempt || key.state != KeyState::kWriting) return out;
  switch (outcome.kind) {
    case WriteOutcome::Kind::kWritten: {
      key.known_revision = outcome.revision;
      key.mod_revision = outcome.revision;
      if (!key.published) {
        request_delete(index, lease_, out);  // withdrawn while the write was in flight: take it back
        break;
      }
      mark_registered(index, out);
      break;
    }
    case WriteOutcome::Kind::kRejected:
      key.known_revision = outcome.revision;
      decide(index, outcome.current, now, random01, out);
      break;
    case WriteOutcome::Kind::kLeaseNotFound:
      lose_lease("put refused: lease not found", now, out);
      return out;
    case WriteOutcome::Kind::kFailed: {
      if (!key.published) {
        // It may have landed anyway (deadline after commit): the own-key watch would show it, and then it
        // is deleted.
        key.state = KeyState::kWithdrawn;
        break;
      }
      const bool first_failure = key.write_backoff.attempts() == 0;
      key.state = KeyState::kPending;
      key.retry_at = now + key.write_backoff.next(random01);
      if (first_failure) {
        out.notes.push_back({LogNote::Level::kWarn, "cannot write " + key.desired.key + ": " + outcome.error +
                                                        "; retrying with backoff"});
      }
      break;
    }
  }
  // An event that raced with our write: apply it if it is newer than what the write told us. A failed write
  // told us nothing, so the event stands as it was when it arrived (a Range then even if revisions went back).
  const bool deferred_is_news =
      outcome.kind == WriteOutcome::Kind::kFailed || key.deferred_revision > key.known_revision;
  if (key.deferred && key.state != KeyState::kWriting && deferred_is_news) {
    auto deferred = std::move(*key.deferred);
    key.deferred.reset();
    key.known_revision = key.deferred_revision;
    decide(index, deferred, now, random01, out);
  }
  key.deferred.reset();
  return out;
}

Actions Registration::on_observed(size_t index, const std::optional<Observed>& current, int64_t revision,
                                  ObservationSource source, TimePoint now, double random01) {
  Actions out;
  Key& key = keys_[index];
  if (source == ObservationSource::kWatch && revision <= key.known_revision) return out;  // already known
  if (key.state == KeyState::kWriting) {
    // Keep the newest: a watch event older than what is already deferred would roll it back.
    if (source == ObservationSource::kWatch && key.deferred && revision <= key.deferred_revision) return out;
    key.deferred = current;
    key.deferred_revision = revision;
    return out;
  }
  key.known_revision = revision;
  decide(index, current, now, random01, out);
  return out;
}

Actions Registration::on_reconnected(TimePoint now) {
  Actions out;
  if (lease_state_ == LeaseState::kAlive) {
    out.keepalive = lease_;
    next_keepalive_ = now + keepalive_interval();
  } else if (lease_state_ == LeaseState::kNone && grant_retry_at_) {
    // etcd is reachable again: grant now instead of sleeping out the rest of the backoff.
    grant_retry_at_.reset();
    lease_state_ = LeaseState::kGranting;
    out.grant_lease = true;
  }
  return out;
}

Actions Registration::on_tick(TimePoint now, double random01) {
  Actions out;
  if (lease_state_ == LeaseState::kAlive && now >= lease_deadline_) {
    lose_lease("no keepalive answered within the TTL", now, out);
  }
  if (lease_state_ == LeaseState::kAlive && now >= next_keepalive_) {
    out.keepalive = lease_;
    next_keepalive_ = now + keepalive_interval();
  }
  if (lease_state_ == LeaseState::kNone && grant_retry_at_ && now >= *grant_retry_at_) {
    grant_retry_at_.reset();
    lease_state_ = LeaseState::kGranting;
    out.grant_lease = true;
  }
  for (size_t i = 0; i < keys_.size(); ++i) {
    Key& key = keys_[i];
    if (key.state == KeyState::kWithdrawn && key.delete_wanted && !key.delete_in_flight && key.retry_at &&
        now >= *key.retry_at) {
      request_delete(i, key.delete_lease, out);
    }
  }
  if (lease_state_ == LeaseState::kAlive) {
    for (size_t i = 0; i < keys_.size(); ++i) {
      Key& key = keys_[i];
      if ((key.state == KeyState::kPending || key.state == KeyState::kConflict) && key.retry_at &&
          now >= *key.retry_at) {
        // Create-only: a conflicting key is never overwritten, and a failed write re-reads before overwriting.
        schedule_write(i, 0, out);
      }
    }
  }
  (void)random01;
  return out;
}

std::optional<TimePoint> Registration::next_wakeup() const {
  std::optional<TimePoint> at;
  auto consider = [&at](TimePoint t) { if (!at || t < *at) at = t; };
  if (lease_state_ == LeaseState::kAlive) {
    consider(lease_deadline_);
    consider(next_keepalive_);
    for (const auto& key : keys_) {
      if (key.retry_at) consider(*key.retry_at);
    }
  }
  if (lease_state_ == LeaseState::kNone && grant_retry_at_) consider(*grant_retry_at_);
  for (const auto& key : keys_) {
    if (key.state == KeyState::kWithdrawn && key.delete_wanted && key.retry_at) consider(*key.retry_at);
  }
  return at;
}

std::chrono::milliseconds Registration::keepalive_interval() const {
  // In milliseconds: whole seconds would make TTL/3 zero for a 2 s lease and spin on keepalives.
  return std::max(std::chrono::milliseconds(1), std::chrono::milliseconds(granted_ttl_) / 3);
}

std::optional<TimePoint> Registration::lease_deadline() const {
  if (lease_state_ != LeaseState::kAlive) return std::nullopt;
  return lease_deadline_;
}

bool Registration::all_registered() const {
  return std::all_of(keys_.begin(), keys_.end(),
                     [](const Key& k) { return k.removed || k.state == KeyState::kRegistered; });
}

size_t Registration::live_key_count() const {
  return static_cast<size_t>(std::count_if(keys_.begin(), keys_.end(), [](const Key& k) { return !k.removed; }));
}

bool Registration::settled() const {
  return std::all_of(keys_.begin(), keys_.end(), [](const Key& k) {
    return k.state == KeyState::kRegistered || (!k.published && k.state == KeyState::kWithdrawn);
  });
}

bool Registration::withdrawals_pending() const {
  return std::any_of(keys_.begin(), keys_.end(), [](const Key& k) {
    return !k.published && (k.delete_wanted || k.state == KeyState::kWriting);
  });
}

void Registration::check_ready(Actions& out) {
  if (!ready_reported_ && settled()) {
    ready_reported_ = true;
    out.became_ready = true;
  }
}

}  // namespace sidecar::core
