// Owns: the registration state machine — one lease per agent, the keys written on it, and what to do next.
// Thread: pure; events in (with the time they happened), actions out. The runtime executes the actions.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "agent/core/backoff.hpp"

namespace sidecar::core {

using SteadyClock = std::chrono::steady_clock;
using TimePoint = SteadyClock::time_point;

// One key the agent holds: "/services/<name>/<id>" -> value.
struct DesiredKey {
  std::string key;
  std::string value;
  // False: held back (service not healthy yet, or drained) until set_published(index, true).
  bool published = true;
};

// What etcd holds under one of our keys, as seen by a Txn failure branch, a Range or a watch event.
struct Observed {
  std::string value;
  int64_t lease = 0;
  int64_t mod_revision = 0;
};

// ---- results of the runtime's RPCs, fed back in
struct WriteOutcome {
  enum class Kind {
    kWritten,        // the Txn's compare held and our put went through at `revision`
    kRejected,       // the compare failed; `current` is what the key holds now (nullopt: absent)
    kLeaseNotFound,  // etcd says our lease does not exist: it expired or was revoked
    kFailed,         // transport error or deadline; retried with backoff
  };
  Kind kind = Kind::kFailed;
  int64_t revision = 0;                 // kWritten: revision of our put; kRejected: header revision
  std::optional<Observed> current;      // kRejected only
  std::string error;                    // kFailed: for the log line
  uint64_t attempt = 0;                 // WriteKey::attempt this answers; older attempts are ignored
};

// The answer to a DeleteKey: a Txn "if lease(key) == ours then delete".
struct DeleteOutcome {
  enum class Kind {
    kDeleted,  // it was ours and is gone at `revision`
    kNotOurs,  // the compare failed: the key is absent or held by another lease; nothing was deleted
    kFailed,   // transport error or deadline; retried with backoff while the key stays withdrawn
  };
  Kind kind = Kind::kFailed;
  int64_t revision = 0;
  std::string error;
  uint64_t attempt = 0;  // DeleteKey::attempt this answers
};

enum class ObservationSource {
  kWatch,  // an event on our key: may be older than what we already know, so it is ordered by revision
  kRange,  // a fresh read after (re)connecting: authoritative, even if revisions went back (etcd wiped)
};

// ---- actions, for the runtime to execute
struct WriteKey {
  size_t index = 0;                 // into the desired keys
  int64_t lease = 0;
  int64_t expect_mod_revision = 0;  // Txn compare: mod_revision(key) == this (0: the key is absent)
  uint64_t attempt = 0;             // echoed back in WriteOutcome
};

// Withdraw a key: delete it only if it is still on `lease` (ours), so another agent's key is never touched.
// The lease itself stays alive: the agent's other keys keep their registration.
struct DeleteKey {
  size_t index = 0;
  int64_t lease = 0;
  uint64_t attempt = 0;  // echoed back in DeleteOutcome
};

struct LogNote {
  enum class Level { kInfo, kWarn };
  Level level = Level::kInfo;
  std::string text;  // one line per state change: key, lease, reason
};

struct Actions {
  bool grant_lease = false;
  std::optional<int64_t> keepalive;     // send one keepalive for this lease now
  std::optional<int64_t> revoke_stale;  // a lease of ours we gave up on; revoke it, best effort
  std::vector<WriteKey> writes;
  std::vector<DeleteKey> deletes;
  std::vector<LogNote> notes;
  bool became_ready = false;            // every published key registered for the first time
  // Appends `other` (its actions come after ours): every field, so combining two results never drops one.
  // A keepalive or stale revoke set in both is the same lease in practice; `other`'s is kept.
  void merge(Actions other);
  bool empty() const {
    return !grant_lease && !keepalive && !revoke_stale && writes.empty() && deletes.empty() && notes.empty() &&
           !became_ready;
  }
};

struct RegistrationOptions {
  std::chrono::seconds ttl{10};
  BackoffPolicy grant_backoff{};     // between failed LeaseGrant attempts
  BackoffPolicy write_backoff{};     // between failed Txn attempts on one key
  BackoffPolicy conflict_backoff{std::chrono::milliseconds(500), std::chrono::milliseconds(5000), 2.0, 0.2};
};

class Registration {
 public:
  // kWithdrawn: not published (unhealthy or drained); not in etcd on our behalf once its delete is through.
  enum class KeyState { kPending, kWriting, kRegistered, kConflict, kWithdrawn };
  enum class LeaseState { kNone, kGranting, kAlive };

  Registration(std::vector<DesiredKey> keys, RegistrationOptions options);

  // `random01` is a uniform draw from [0,1) for backoff jitter, injected for determinism.
  Actions start(TimePoint now);
  Actions on_lease_granted(int64_t lease, std::chrono::seconds granted_ttl, TimePoint sent_at, TimePoint now);
  // Restart without a gap: a lease a previous process of this agent left behind (crash, kill -9, SIGQUIT
  // handover) that etcd still holds, `remaining` seconds of it left at `sent_at` (LeaseTimeToLive's answer).
  // It is kept alive from here on, and the keys on it are re-asserted, not re-created: a key that already
  // holds our value on this lease counts as registered without a write, so watchers see no event at all.
  Actions adopt_lease(int64_t lease, std::chrono::seconds granted_ttl, std::chrono::seconds remaining,
                      TimePoint sent_at, TimePoint now);
  // A lease of a previous process that is not adopted (etcd could not confirm it): keys still on it are
  // treated as ours and moved to the new lease instead of being taken for another agent's.
  void remember_lease(int64_t lease);
  Actions on_lease_grant_failed(const std::string& error, TimePoint now, double random01);
  // An answer on the keepalive stream. `sent_at` is when the matching request was sent: the lease is
  // counted alive until sent_at + TTL, never receive time + TTL (the server may have aged it meanwhile).
  Actions on_keepalive_ack(int64_t lease, int64_t ttl_seconds, TimePoint sent_at, TimePoint now);
  Actions on_write_result(size_t index, const WriteOutcome& outcome, TimePoint now, double random01);
  Actions on_observed(size_t index, const std::optional<Observed>& current, int64_t revision,
                      ObservationSource source, TimePoint now, double random01);
  // The connection to etcd came back (or moved to another member): check the lease at once rather than
  // at the next keepalive, so a wiped etcd is noticed within a round trip.
  Actions on_reconnected(TimePoint now);
  Actions on_tick(TimePoint now, double random01);

  // The earliest time on_tick has something to do.
  std::optional<TimePoint> next_wakeup() const;

  // Replaces the values (same keys, same order) — a re-rendered value after e.g. a reload; rewrites changed ones.
  Actions update_values(const std::vector<std::string>& values, TimePoint now);
  // One key's new value (live reload): a registered key is rewritten in place, on the same lease, with
  // one compare-and-put; anything else is written with the new value when its turn comes.
  Actions update_value(size_t index, std::string value, TimePoint now);

  // Live reload grows and shrinks the key set; indices stay stable. A key added while the lease is alive
  // is written at once (if published), otherwise with the next lease. A key that was removed earlier and
  // comes back revives its old index, so a delete still in flight for it is overtaken, never raced.
  // `*index` receives the key's index.
  Actions add_key(DesiredKey key, TimePoint now, size_t* index);
  // Removes a key: withdrawn like set_published(false) (deleted only while on our lease; the lease and
  // every other key stay), then left as a tombstone: never published again, not counted for readiness.
  Actions remove_key(size_t index, TimePoint now);
  bool removed(size_t index) const { return keys_[index].removed; }
  // Keys not removed.
  size_t live_key_count() const;

  // Publishes or withdraws one key; the lease and every other key are untouched. Withdrawing deletes the
  // key only while it is on our lease, and the own-key watch no longer restores it; publishing writes it
  // again at once (or with the next lease). Idempotent. `reason` goes into the log line.
  Actions set_published(size_t index, bool published, TimePoint now, const std::string& reason = {});
  Actions on_delete_result(size_t index, const DeleteOutcome& outcome, TimePoint now, double random01);
  bool published(size_t index) const { return keys_[index].published; }
  // A withdrawn key may still be in etcd: its delete is in flight, waiting for a retry, or its write has
  // not answered yet. Shutdown waits for this to clear before the drain delay starts.
  bool withdrawals_pending() const;

  int64_t lease() const { return lease_state_ == LeaseState::kAlive ? lease_ : 0; }
  // Every lease our keys may still sit on, newest first: the live one, then those we gave up on (lost
  // while etcd was unreachable, so their revoke may never have gone through). Deregistration revokes all.
  std::vector<int64_t> leases_to_revoke() const;
  LeaseState lease_state() const { return lease_state_; }
  std::optional<TimePoint> lease_deadline() const;
  KeyState key_state(size_t index) const { return keys_[index].state; }
  size_t key_count() const { return keys_.size(); }
  const DesiredKey& desired(size_t index) const { return keys_[index].desired; }
  bool all_registered() const;
  int64_t conflict_lease(size_t index) const { return keys_[index].conflict_lease; }
  uint64_t leases_granted() const { return leases_granted_; }
  uint64_t leases_lost() const { return leases_lost_; }
  uint64_t keys_restored() const { return keys_restored_; }

 private:
  struct Key {
    DesiredKey desired;
    KeyState state = KeyState::kPending;
    int64_t known_revision = 0;           // newest revision we know of for this key
    int64_t mod_revision = 0;             // mod_revision of our value while registered: update_values' compare
    std::optional<TimePoint> retry_at;    // kPending after a failure, kConflict
    Backoff write_backoff;
    Backoff conflict_backoff;
    int64_t conflict_lease = 0;           // the other agent's lease while in conflict, else 0
    uint64_t attempt = 0;                 // bumped per write; stale answers are dropped
    std::string restore_reason;           // set when a registered key was lost, logged when it is back
    bool ever_registered = false;
    // An observation that arrived while our write was in flight; applied once the write answers.
    std::optional<std::optional<Observed>> deferred;
    int64_t deferred_revision = 0;
    bool published = true;
    bool delete_wanted = false;     // withdrawn while etcd may still hold it on `delete_lease`
    bool delete_in_flight = false;
    int64_t delete_lease = 0;
    bool removed = false;           // removed from the manifest by a reload: a tombstone
  };

  // A lease is ours from now on (granted, or adopted from a previous process); the caller sets the next
  // keepalive, which differs between the two.
  void hold_lease(int64_t lease, std::chrono::seconds granted_ttl, TimePoint deadline);
  // A write for every published key, then whether that makes us ready (nothing to write: at once).
  void write_published_keys(Actions& out);
  void lose_lease(const std::string& reason, TimePoint now, Actions& out);
  void schedule_write(size_t index, int64_t expect_mod_revision, Actions& out);
  void decide(size_t index, const std::optional<Observed>& current, TimePoint now, double random01, Actions& out);
  void mark_registered(size_t index, Actions& out);
  void request_delete(size_t index, int64_t lease, Actions& out);
  void decide_withdrawn(size_t index, const std::optional<Observed>& current, Actions& out);
  bool settled() const;
  bool is_own_lease(int64_t lease) const;
  void check_ready(Actions& out);
  std::chrono::milliseconds keepalive_interval() const;
  std::string lease_hex() const;

  std::vector<Key> keys_;
  RegistrationOptions options_;
  LeaseState lease_state_ = LeaseState::kNone;
  int64_t lease_ = 0;
  std::chrono::seconds granted_ttl_{0};
  TimePoint lease_deadline_{};
  TimePoint next_keepalive_{};
  std::optional<TimePoint> grant_retry_at_;
  Backoff grant_backoff_;
  std::deque<int64_t> old_leases_;  // leases we held before; keys still on them are ours to overwrite
  bool ready_reported_ = false;
  uint64_t leases_granted_ = 0;
  uint64_t leases_lost_ = 0;
  uint64_t keys_restored_ = 0;
};

const char* to_string(Registration::KeyState state);
std::string lease_to_hex(int64_t lease);

}  // namespace sidecar::core
