#include "agent/core/registration.hpp"
#include "tests/unit/registration_outcomes.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
namespace core = sidecar::core;
using core::Actions;
using core::LogNote;
using core::Observed;
using core::ObservationSource;
using core::TimePoint;
using core::WriteKey;
using core::WriteOutcome;
using KeyState = core::Registration::KeyState;
using core::outcomes::rejected;
using core::outcomes::written;
using LeaseState = core::Registration::LeaseState;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr double kDraw = 0.5;  // jitter factor exactly 1.0: delays are the policy's nominal values
constexpr int64_t kLease = 0x1a2b;
constexpr int64_t kNewLease = 0x2c3d;
constexpr int64_t kOtherLease = 0x7777;
constexpr auto kTtl = 10s;
const TimePoint kT0 = TimePoint{} + 1h;  // the injected clock starts here; tests advance it by hand

std::vector<core::DesiredKey> two_keys() {
  return {{"/services/api/a", "va"}, {"/services/web/b", "vb"}};
}

std::vector<std::string> texts(const Actions& actions) {
  std::vector<std::string> out;
  for (const auto& note : actions.notes) out.push_back(note.text);
  return out;
}

std::vector<WriteKey> writes_for(const Actions& actions, size_t index) {
  std::vector<WriteKey> out;
  for (const auto& w : actions.writes) {
    if (w.index == index) out.push_back(w);
  }
  return out;
}



WriteOutcome failed(const WriteKey& w, std::string error = "deadline exceeded") {
  WriteOutcome o;
  o.kind = WriteOutcome::Kind::kFailed;
  o.error = std::move(error);
  o.attempt = w.attempt;
  return o;
}

WriteOutcome lease_not_found(const WriteKey& w) {
  WriteOutcome o;
  o.kind = WriteOutcome::Kind::kLeaseNotFound;
  o.attempt = w.attempt;
  return o;
}

// Suite named "Registration" so test names read as behaviour of the state machine.
class Registration : public ::testing::Test {
 protected:
  // start() + a grant sent and answered at `now`.
  Actions grant(int64_t lease = kLease, std::chrono::seconds ttl = kTtl) {
    reg_.start(now_);
    return reg_.on_lease_granted(lease, ttl, now_, now_);
  }

  // Grants `lease` and answers every write: key i is written at revision first_revision + i.
  void register_all(int64_t lease = kLease, int64_t first_revision = 100) {
    const Actions granted = grant(lease);
    ASSERT_EQ(granted.writes.size(), reg_.key_count());
    for (const auto& w : granted.writes) {
      reg_.on_write_result(w.index, written(w, first_revision + static_cast<int64_t>(w.index)), now_, kDraw);
    }
    ASSERT_TRUE(reg_.all_registered());
  }

  // The single write for key `index` in `actions`, or a test failure.
  WriteKey only_write(const Actions& actions, size_t index) {
    const auto ws = writes_for(actions, index);
    EXPECT_EQ(ws.size(), 1u) << "writes for key " << index;
    return ws.empty() ? WriteKey{} : ws.front();
  }

  Actions tick() { return reg_.on_tick(now_, kDraw); }
  Actions answer(const WriteKey& w, const WriteOutcome& o) { return reg_.on_write_result(w.index, o, now_, kDraw); }
  Actions watch(size_t index, std::optional<Observed> current, int64_t revision) {
    return reg_.on_observed(index, current, revision, ObservationSource::kWatch, now_, kDraw);
  }
  Actions range(size_t index, std::optional<Observed> current, int64_t revision) {
    return reg_.on_observed(index, current, revision, ObservationSource::kRange, now_, kDraw);
  }

  // Drives a lease loss through the local deadline, then grants `lease` and returns that grant's actions.
  Actions lose_and_regrant(int64_t lease) {
    now_ = *reg_.lease_deadline();
    const Actions lost = tick();
    EXPECT_TRUE(lost.grant_lease);
    return reg_.on_lease_granted(lease, kTtl, now_, now_);
  }

  core::Registration reg_{two_keys(), core::RegistrationOptions{}};
  TimePoint now_ = kT0;
};

// ---------------------------------------------------------------- lease

TEST_F(Registration, StartAsksForOneLeaseAndWritesNothing) {
  const Actions a = reg_.start(now_);
  EXPECT_TRUE(a.grant_lease);
  EXPECT_THAT(a.writes, IsEmpty());
  EXPECT_FALSE(a.keepalive);
  EXPECT_EQ(reg_.lease_state(), LeaseState::kGranting);
  EXPECT_EQ(reg_.lease(), 0);
  EXPECT_FALSE(reg_.next_wakeup());  // nothing to do until the grant answers
}

TEST_F(Registration, GrantsOneLeaseAndWritesEveryKeyCreateOnly) {
  const Actions a = grant();
  ASSERT_EQ(a.writes.size(), 2u);
  EXPECT_EQ(a.writes[0].index, 0u);
  EXPECT_EQ(a.writes[1].index, 1u);
  for (const auto& w : a.writes) {
    EXPECT_EQ(w.lease, kLease);
    EXPECT_EQ(w.expect_mod_revision, 0);
  }
  EXPECT_FALSE(a.grant_lease);
  EXPECT_THAT(texts(a), ElementsAre(AllOf(HasSubstr("1a2b"), HasSubstr("granted"))));
  EXPECT_EQ(reg_.lease(), kLease);
  EXPECT_EQ(reg_.leases_granted(), 1u);
  EXPECT_EQ(reg_.key_state(0), KeyState::kWriting);
  EXPECT_EQ(reg_.key_state(1), KeyState::kWriting);
}

TEST_F(Registration, KeepsLeaseAliveUntilGrantSendTimePlusTtl) {
  reg_.start(kT0);
  // The grant took 2 s to come back: the server started the TTL when it got the request, not when we got the answer.
  reg_.on_lease_granted(kLease, kTtl, kT0, kT0 + 2s);
  EXPECT_EQ(reg_.lease_deadline(), kT0 + kTtl);

  now_ = kT0 + kTtl - 1ms;
  EXPECT_FALSE(tick().grant_lease);
  EXPECT_EQ(reg_.lease_state(), LeaseState::kAlive);

  now_ = kT0 + kTtl;
  EXPECT_TRUE(tick().grant_lease);
}

TEST_F(Registration, KeepsLeaseAliveUntilKeepaliveSendTimePlusTtl) {
  grant();
  now_ = kT0 + 3334ms;
  ASSERT_EQ(tick().keepalive, kLease);
  const TimePoint sent = now_;

  // Acked 4 s later; the lease lives until send time + TTL, not receive time + TTL.
  now_ = sent + 4s;
  EXPECT_TRUE(reg_.on_keepalive_ack(kLease, 10, sent, now_).empty());
  EXPECT_EQ(reg_.lease_deadline(), sent + kTtl);

  now_ = sent + kTtl - 1ms;
  EXPECT_FALSE(tick().grant_lease);
  now_ = sent + kTtl;
  const Actions lost = tick();
  EXPECT_TRUE(lost.grant_lease);
  EXPECT_EQ(lost.revoke_stale, kLease);
}

TEST_F(Registration, LateAckForAnOlderKeepaliveDoesNotShortenTheDeadline) {
  grant();
  now_ = kT0 + 7s;
  reg_.on_keepalive_ack(kLease, 10, kT0 + 6s, now_);
  ASSERT_EQ(reg_.lease_deadline(), kT0 + 16s);
  reg_.on_keepalive_ack(kLease, 10, kT0 + 3s, now_);  // overtaken on the stream
  EXPECT_EQ(reg_.lease_deadline(), kT0 + 16s);
}

TEST_F(Registration, SendsKeepaliveEveryThirdOfTtl) {
  grant(kLease, 9s);
  EXPECT_EQ(reg_.next_wakeup(), kT0 + 3s);

  now_ = kT0 + 3s - 1ms;
  EXPECT_FALSE(tick().keepalive);
  now_ = kT0 + 3s;
  EXPECT_EQ(tick().keepalive, kLease);
  reg_.on_keepalive_ack(kLease, 9, now_, now_ + 5ms);
  EXPECT_EQ(reg_.next_wakeup(), kT0 + 6s);

  now_ = kT0 + 6s - 1ms;
  EXPECT_FALSE(tick().keepalive);
  now_ = kT0 + 6s;
  EXPECT_EQ(tick().keepalive, kLease);
}

// etcd grants at least 2 s; a third of that in whole seconds would be 0 and the agent would spin on keepalives.
TEST_F(Registration, KeepaliveIntervalKeepsSubSecondPrecisionForShortTtl) {
  grant(kLease, 2s);
  EXPECT_EQ(reg_.next_wakeup(), kT0 + 666ms);
  now_ = kT0 + 665ms;
  EXPECT_FALSE(tick().keepalive);
  now_ = kT0 + 666ms;
  EXPECT_EQ(tick().keepalive, kLease);
  EXPECT_EQ(reg_.next_wakeup(), kT0 + 1332ms);
}

TEST_F(Registration, LosesLeaseWhenDeadlinePassesWithoutAck) {
  register_all();
  now_ = kT0 + kTtl;
  const Actions a = tick();
  EXPECT_TRUE(a.grant_lease);
  EXPECT_EQ(a.revoke_stale, kLease);  // best effort: frees the keys if etcd still holds the lease
  EXPECT_FALSE(a.keepalive);
  EXPECT_THAT(a.writes, IsEmpty());  // nothing to write on until the new lease is granted
  ASSERT_THAT(texts(a), ElementsAre(AllOf(HasSubstr("lease 1a2b lost"), HasSubstr("no keepalive"))));
  EXPECT_EQ(a.notes[0].level, LogNote::Level::kWarn);
  EXPECT_EQ(reg_.lease(), 0);
  EXPECT_EQ(reg_.lease_state(), LeaseState::kGranting);
  EXPECT_EQ(reg_.leases_lost(), 1u);
  EXPECT_EQ(reg_.key_state(0), KeyState::kPending);
  EXPECT_EQ(reg_.key_state(1), KeyState::kPending);
  EXPECT_FALSE(reg_.all_registered());
}

TEST_F(Registration, LosesLeaseWhenKeepaliveAnswersZeroTtl) {
  register_all();
  now_ = kT0 + 4s;
  const Actions a = reg_.on_keepalive_ack(kLease, 0, kT0 + 3334ms, now_);
  EXPECT_TRUE(a.grant_lease);
  EXPECT_EQ(a.revoke_stale, kLease);
  EXPECT_THAT(texts(a), ElementsAre(AllOf(HasSubstr("lost"), HasSubstr("TTL 0"))));
  EXPECT_EQ(reg_.leases_lost(), 1u);
}

TEST_F(Registration, LosesLeaseWhenPutSaysLeaseNotFound) {
  const Actions granted = grant();
  const Actions a = answer(granted.writes[0], lease_not_found(granted.writes[0]));
  EXPECT_TRUE(a.grant_lease);
  EXPECT_EQ(a.revoke_stale, kLease);
  EXPECT_THAT(texts(a), ElementsAre(HasSubstr("lease not found")));
  EXPECT_EQ(reg_.lease_state(), LeaseState::kGranting);
  // The other key's write was on the same dead lease: its answer no longer matters.
  EXPECT_TRUE(answer(granted.writes[1], lease_not_found(granted.writes[1])).empty());
  EXPECT_EQ(reg_.leases_lost(), 1u);
}

TEST_F(Registration, IgnoresKeepaliveAckForAnotherLease) {
  grant();
  EXPECT_TRUE(reg_.on_keepalive_ack(kOtherLease, 0, kT0, kT0 + 1s).empty());
  EXPECT_EQ(reg_.lease_state(), LeaseState::kAlive);
  EXPECT_EQ(reg_.lease_deadline(), kT0 + kTtl);
}

TEST_F(Registration, RewritesEveryKeyOnNewLease) {
  register_all();
  const Actions a = lose_and_regrant(kNewLease);
  ASSERT_EQ(a.writes.size(), 2u);
  for (const auto& w : a.writes) {
    EXPECT_EQ(w.lease, kNewLease);
    EXPECT_EQ(w.expect_mod_revision, 0);
  }
  EXPECT_EQ(reg_.lease(), kNewLease);
  EXPECT_EQ(reg_.leases_granted(), 2u);

  const Actions done = answer(a.writes[0], written(a.writes[0], 300));
  EXPECT_THAT(texts(done), ElementsAre(AllOf(HasSubstr("restored /services/api/a lease 2c3d"),
                                             HasSubstr("(lease lost)"))));
  EXPECT_FALSE(done.became_ready);  // readiness is reported once, on the first registration only
}

TEST_F(Registration, MovesKeyFromOldLeaseOfOurs) {
  register_all();
  const Actions a = lose_and_regrant(kNewLease);
  const WriteKey first = only_write(a, 0);
  // The old lease's key is still there (the revoke has not happened yet): ours to take over.
  const Actions moved = answer(first, rejected(first, Observed{"va", kLease, 100}, 250));
  const WriteKey overwrite = only_write(moved, 0);
  EXPECT_EQ(overwrite.lease, kNewLease);
  EXPECT_EQ(overwrite.expect_mod_revision, 100);
  EXPECT_THAT(texts(moved), IsEmpty());
  EXPECT_EQ(reg_.conflict_lease(0), 0);

  answer(overwrite, written(overwrite, 251));
  EXPECT_EQ(reg_.key_state(0), KeyState::kRegistered);
}

TEST_F(Registration, IgnoresAnswersToWritesOnALostLease) {
  const Actions granted = grant();
  now_ = kT0 + kTtl;
  ASSERT_TRUE(tick().grant_lease);
  EXPECT_TRUE(answer(granted.writes[0], written(granted.writes[0], 100)).empty());
  EXPECT_EQ(reg_.key_state(0), KeyState::kPending);
}

TEST_F(Registration, IgnoresGrantAnswersItNoLongerWaitsFor) {
  grant();
  EXPECT_TRUE(reg_.on_lease_granted(0x9999, kTtl, now_, now_).empty());
  EXPECT_TRUE(reg_.on_lease_grant_failed("late", now_, kDraw).empty());
  EXPECT_EQ(reg_.lease(), kLease);
  EXPECT_EQ(reg_.lease_state(), LeaseState::kAlive);
}

TEST_F(Registration, GrantFailureBacksOffAndLogsOnce) {
  reg_.start(now_);
  Actions a = reg_.on_lease_grant_failed("connection refused", now_, kDraw);
  EXPECT_FALSE(a.grant_lease);
  EXPECT_THAT(texts(a), ElementsAre(HasSubstr("cannot grant lease: connection refused")));
  EXPECT_EQ(reg_.lease_state(), LeaseState::kNone);
  EXPECT_EQ(reg_.next_wakeup(), kT0 + 50ms);

  now_ = kT0 + 49ms;
  EXPECT_TRUE(tick().empty());
  now_ = kT0 + 50ms;
  EXPECT_TRUE(tick().grant_lease);

  now_ = kT0 + 60ms;
  a = reg_.on_lease_grant_failed("connection refused", now_, kDraw);
  EXPECT_THAT(texts(a), IsEmpty());                     // same outage: no second line
  EXPECT_EQ(reg_.next_wakeup(), kT0 + 60ms + 100ms);  // and the delay grew
  now_ = kT0 + 160ms;
  ASSERT_TRUE(tick().grant_lease);
  reg_.on_lease_granted(kLease, kTtl, now_, now_);

  // A new outage after a success is a new state change: logged again, from the initial delay.
  now_ = *reg_.lease_deadline();
  ASSERT_TRUE(tick().grant_lease);
  a = reg_.on_lease_grant_failed("connection refused", now_, kDraw);
  EXPECT_THAT(texts(a), ElementsAre(HasSubstr("cannot grant lease")));
  EXPECT_EQ(reg_.next_wakeup(), now_ + 50ms);
}

TEST_F(Registration, ReconnectSendsKeepaliveImmediately) {
  reg_.start(now_);
  EXPECT_TRUE(reg_.on_reconnected(now_).empty());  // no lease yet: nothing to check

  reg_.on_lease_granted(kLease, kTtl, now_, now_);
  now_ = kT0 + 1s;
  const Actions a = reg_.on_reconnected(now_);
  EXPECT_EQ(a.keepalive, kLease);
  EXPECT_EQ(reg_.next_wakeup(), now_ + 3333ms);  // the regular cadence restarts from here
}

TEST_F(Registration, ReconnectGrantsAtOnceInsteadOfWaitingOutTheBackoff) {
  reg_.start(now_);
  reg_.on_lease_grant_failed("connection refused", now_, kDraw);
  ASSERT_EQ(reg_.next_wakeup(), kT0 + 50ms);

  now_ = kT0 + 10ms;  // etcd answers again before the retry is due
  const Actions a = reg_.on_reconnected(now_);
  EXPECT_TRUE(a.grant_lease);
  EXPECT_EQ(reg_.lease_state(), LeaseState::kGranting);
  EXPECT_FALSE(reg_.next_wakeup());  // the pending retry is gone: one grant in flight, not two
  EXPECT_TRUE(reg_.on_reconnected(now_).empty());  // and a second reconnect does not grant again
}

TEST_F(Registration, NextWakeupIsEarliestDeadline) {
  EXPECT_FALSE(reg_.next_wakeup());
  const Actions granted = grant();
  EXPECT_EQ(reg_.next_wakeup(), kT0 + 3333ms);  // keepalive

  now_ = kT0 + 1s;
  answer(granted.writes[0], failed(granted.writes[0]));
  EXPECT_EQ(reg_.next_wakeup(), kT0 + 1s + 50ms);  // key retry comes first

  now_ = kT0 + 1050ms;
  tick();  // the retry goes out
  now_ = kT0 + 9999ms;
  tick();  // a keepalive goes out, never answered
  EXPECT_EQ(reg_.next_wakeup(), kT0 + kTtl);  // now the lease deadline is the nearest
}

// ---------------------------------------------------------------- keys

TEST_F(Registration, ReportsReadyOnceWhenEveryKeyIsRegistered) {
  const Actions granted = grant();
  Actions a = answer(granted.writes[0], written(granted.writes[0], 100));
  EXPECT_FALSE(a.became_ready);
  EXPECT_THAT(texts(a), ElementsAre(HasSubstr("registered /services/api/a lease 1a2b")));
  a = answer(granted.writes[1], written(granted.writes[1], 101));
  EXPECT_TRUE(a.became_ready);
  EXPECT_TRUE(reg_.all_registered());

  // A restore makes every key registered again; that is not a second "ready".
  const Actions restore = watch(0, std::nullopt, 200);
  const WriteKey w = only_write(restore, 0);
  EXPECT_FALSE(answer(w, written(w, 201)).became_ready);
}

TEST_F(Registration, ReportsReadyOnLeaseGrantWhenThereAreNoKeys) {
  core::Registration reg({}, core::RegistrationOptions{});
  reg.start(kT0);
  EXPECT_TRUE(reg.on_lease_granted(kLease, kTtl, kT0, kT0).became_ready);
}

TEST_F(Registration, RegistersOwnKeyFoundByRejectedCreateWithoutRewriting) {
  const Actions granted = grant();
  answer(granted.writes[1], written(granted.writes[1], 101));
  // A retried create whose first attempt did go through: the key already holds our lease and value.
  const Actions a = answer(granted.writes[0], rejected(granted.writes[0], Observed{"va", kLease, 100}, 120));
  EXPECT_THAT(a.writes, IsEmpty());
  EXPECT_TRUE(a.became_ready);
  EXPECT_EQ(reg_.key_state(0), KeyState::kRegistered);
}

TEST_F(Registration, RestoresKeyDeletedByAnotherClient) {
  register_all();
  const Actions a = watch(0, std::nullopt, 200);
  const WriteKey w = only_write(a, 0);  // in the same Actions: no waiting for a tick
  EXPECT_EQ(w.lease, kLease);
  EXPECT_EQ(w.expect_mod_revision, 0);
  EXPECT_EQ(reg_.keys_restored(), 1u);

  const Actions done = answer(w, written(w, 201));
  EXPECT_THAT(texts(done), ElementsAre(AllOf(HasSubstr("restored /services/api/a"),
                                             HasSubstr("(deleted by another client)"))));
  EXPECT_EQ(reg_.key_state(0), KeyState::kRegistered);
}

TEST_F(Registration, RestoresKeyOverwrittenWithoutLease) {
  register_all();
  const Actions a = watch(0, Observed{"manual", 0, 200}, 200);
  const WriteKey w = only_write(a, 0);
  EXPECT_EQ(w.expect_mod_revision, 200);  // overwrite exactly what we saw, nothing newer
  const Actions done = answer(w, written(w, 201));
  EXPECT_THAT(texts(done), ElementsAre(HasSubstr("(overwritten without a lease by another client)")));
  EXPECT_EQ(reg_.keys_restored(), 1u);
}

TEST_F(Registration, RestoresValueChangedUnderOurLease) {
  register_all();
  const Actions a = watch(1, Observed{"tampered", kLease, 200}, 200);
  const WriteKey w = only_write(a, 1);
  EXPECT_EQ(w.expect_mod_revision, 200);
  const Actions done = answer(w, written(w, 201));
  EXPECT_THAT(texts(done), ElementsAre(AllOf(HasSubstr("restored /services/web/b"), HasSubstr("value changed"))));
}

TEST_F(Registration, DoesNotOverwriteKeyHeldByAnotherLease) {
  const Actions granted = grant();
  const Actions a = answer(granted.writes[0], rejected(granted.writes[0], Observed{"theirs", kOtherLease, 50}, 90));
  EXPECT_THAT(a.writes, IsEmpty());
  ASSERT_THAT(texts(a), ElementsAre(AllOf(HasSubstr("conflict"), HasSubstr("/services/api/a"), HasSubstr("7777"))));
  EXPECT_EQ(a.notes[0].level, LogNote::Level::kWarn);
  EXPECT_EQ(reg_.key_state(0), KeyState::kConflict);
  EXPECT_EQ(reg_.conflict_lease(0), kOtherLease);
  EXPECT_FALSE(answer(granted.writes[1], written(granted.writes[1], 101)).became_ready);
}

TEST_F(Registration, LogsConflictOnceAndRetriesWithBackoff) {
  const Actions granted = grant();
  const Observed theirs{"theirs", kOtherLease, 50};
  answer(granted.writes[0], rejected(granted.writes[0], theirs, 90));
  EXPECT_EQ(reg_.next_wakeup(), kT0 + 500ms);

  now_ = kT0 + 499ms;
  EXPECT_THAT(tick().writes, IsEmpty());
  now_ = kT0 + 500ms;
  WriteKey retry = only_write(tick(), 0);
  EXPECT_EQ(retry.expect_mod_revision, 0);  // create-only: never overwrites the other agent
  Actions a = answer(retry, rejected(retry, theirs, 95));
  EXPECT_THAT(texts(a), IsEmpty());
  EXPECT_EQ(reg_.next_wakeup(), kT0 + 1500ms);  // 500 ms, then 1 s

  now_ = kT0 + 1499ms;
  EXPECT_THAT(tick().writes, IsEmpty());
  now_ = kT0 + 1500ms;
  retry = only_write(tick(), 0);
  EXPECT_EQ(retry.expect_mod_revision, 0);
  a = answer(retry, rejected(retry, theirs, 99));
  EXPECT_THAT(texts(a), IsEmpty());
  EXPECT_EQ(reg_.key_state(0), KeyState::kConflict);
}

TEST_F(Registration, LogsAgainWhenADifferentLeaseHoldsTheKey) {
  const Actions granted = grant();
  answer(granted.writes[0], rejected(granted.writes[0], Observed{"theirs", kOtherLease, 50}, 90));
  now_ = kT0 + 500ms;
  const WriteKey retry = only_write(tick(), 0);
  const Actions a = answer(retry, rejected(retry, Observed{"third", 0x8888, 96}, 96));
  EXPECT_THAT(texts(a), ElementsAre(HasSubstr("8888")));
  EXPECT_EQ(reg_.conflict_lease(0), 0x8888);
}

TEST_F(Registration, TakesKeyWhenConflictingLeaseGoesAway) {
  const Actions granted = grant();
  answer(granted.writes[0], rejected(granted.writes[0], Observed{"theirs", kOtherLease, 50}, 90));
  // The other agent's lease expired: etcd deletes its key and the watch says so. Take it now, not at the retry.
  const Actions a = watch(0, std::nullopt, 120);
  const WriteKey w = only_write(a, 0);
  EXPECT_EQ(w.expect_mod_revision, 0);
  const Actions done = answer(w, written(w, 121));
  EXPECT_THAT(texts(done), ElementsAre(AllOf(HasSubstr("conflict resolved"), HasSubstr("7777"))));
  EXPECT_EQ(reg_.conflict_lease(0), 0);
  EXPECT_EQ(reg_.key_state(0), KeyState::kRegistered);
  EXPECT_EQ(reg_.keys_restored(), 0u);  // never ours, so not a restore
}

TEST_F(Registration, NeverOverwritesAKeyAnotherLeaseTookOver) {
  register_all();
  const Actions a = watch(0, Observed{"theirs", kOtherLease, 200}, 200);
  EXPECT_THAT(a.writes, IsEmpty());
  EXPECT_THAT(texts(a), ElementsAre(HasSubstr("conflict")));
  EXPECT_EQ(reg_.key_state(0), KeyState::kConflict);
  EXPECT_EQ(reg_.keys_restored(), 0u);
}

TEST_F(Registration, IgnoresStaleWatchEvents) {
  register_all();  // key 0 at revision 100
  EXPECT_TRUE(watch(0, std::nullopt, 100).empty());
  EXPECT_TRUE(watch(0, std::nullopt, 99).empty());
  EXPECT_EQ(reg_.key_state(0), KeyState::kRegistered);
  EXPECT_EQ(writes_for(watch(0, std::nullopt, 101), 0).size(), 1u);  // and a newer one is not ignored
}

TEST_F(Registration, AcceptsRangeAfterRevisionsWentBack) {
  register_all();  // key 0 at revision 100
  // etcd was wiped and restarted: revisions start again from 1.
  const WriteKey w = only_write(range(0, std::nullopt, 5), 0);
  EXPECT_EQ(w.expect_mod_revision, 0);
  answer(w, written(w, 6));
  // The new history is the one watch events are ordered by now.
  EXPECT_EQ(writes_for(watch(0, std::nullopt, 7), 0).size(), 1u);
}

TEST_F(Registration, ConfirmsRegisteredKeyFromRangeQuietly) {
  register_all();
  const Actions a = range(0, Observed{"va", kLease, 100}, 150);
  EXPECT_TRUE(a.empty());
  EXPECT_EQ(reg_.key_state(0), KeyState::kRegistered);
}

TEST_F(Registration, DefersObservationDuringWriteAndAppliesItIfNewer) {
  const Actions granted = grant();
  const WriteKey w = granted.writes[0];
  // Someone deletes the key right after our create landed; the event beats our Txn's answer.
  EXPECT_TRUE(watch(0, std::nullopt, 111).empty());
  EXPECT_EQ(reg_.key_state(0), KeyState::kWriting);

  const Actions a = answer(w, written(w, 110));
  const WriteKey restore = only_write(a, 0);
  EXPECT_EQ(restore.expect_mod_revision, 0);
  EXPECT_EQ(reg_.keys_restored(), 1u);
}

TEST_F(Registration, DropsDeferredObservationNotNewerThanTheWrite) {
  const Actions granted = grant();
  const WriteKey w0 = granted.writes[0];
  const WriteKey w1 = granted.writes[1];
  watch(0, Observed{"va", kLease, 110}, 110);  // the echo of our own put
  watch(1, std::nullopt, 105);                 // a delete from before our create
  EXPECT_THAT(answer(w0, written(w0, 110)).writes, IsEmpty());
  EXPECT_THAT(answer(w1, written(w1, 111)).writes, IsEmpty());
  EXPECT_TRUE(reg_.all_registered());
  EXPECT_EQ(reg_.keys_restored(), 0u);
}

// A failed write tells nothing about the key, so an authoritative Range that came in meanwhile must still count,
// even though its revision is below what we knew before etcd was wiped.
TEST_F(Registration, AppliesDeferredRangeWhenTheWriteFails) {
  register_all();  // key 0 at revision 100
  const WriteKey update = only_write(reg_.update_values({"va2", "vb"}, now_), 0);
  EXPECT_TRUE(range(0, std::nullopt, 5).empty());  // deferred
  const Actions a = answer(update, failed(update));
  const WriteKey w = only_write(a, 0);
  EXPECT_EQ(w.expect_mod_revision, 0);
}

TEST_F(Registration, KeepsTheNewestDeferredObservation) {
  register_all();
  const WriteKey update = only_write(reg_.update_values({"va2", "vb"}, now_), 0);
  range(0, std::nullopt, 130);                  // the key is gone as of 130
  watch(0, Observed{"va2", kLease, 125}, 125);  // an older event still draining from the watch
  const Actions a = answer(update, failed(update));
  EXPECT_EQ(only_write(a, 0).expect_mod_revision, 0);  // the key is recreated, not taken as registered
  EXPECT_NE(reg_.key_state(0), KeyState::kRegistered);
}

TEST_F(Registration, IgnoresAnswersToSupersededWrites) {
  const Actions granted = grant();
  const WriteKey first = granted.writes[0];
  const WriteKey second = only_write(reg_.update_values({"va2", "vb"}, now_), 0);
  EXPECT_NE(second.attempt, first.attempt);
  EXPECT_TRUE(answer(first, written(first, 100)).empty());
  EXPECT_EQ(reg_.key_state(0), KeyState::kWriting);
  answer(second, rejected(second, Observed{"va", kLease, 100}, 100));  // converges through the compare
  EXPECT_EQ(reg_.key_state(0), KeyState::kWriting);
  EXPECT_TRUE(answer(first, rejected(first, std::nullopt, 100)).empty());
}

TEST_F(Registration, WriteFailureRetriesWithBackoffAndLogsOnce) {
  const Actions granted = grant();
  Actions a = answer(granted.writes[0], failed(granted.writes[0], "deadline exceeded"));
  EXPECT_THAT(texts(a), ElementsAre(HasSubstr("cannot write /services/api/a: deadline exceeded")));
  EXPECT_EQ(reg_.key_state(0), KeyState::kPending);
  EXPECT_EQ(reg_.next_wakeup(), kT0 + 50ms);

  now_ = kT0 + 49ms;
  EXPECT_THAT(tick().writes, IsEmpty());
  now_ = kT0 + 50ms;
  WriteKey retry = only_write(tick(), 0);
  EXPECT_EQ(retry.expect_mod_revision, 0);  // re-reads through a create-only Txn before overwriting anything
  a = answer(retry, failed(retry));
  EXPECT_THAT(texts(a), IsEmpty());
  EXPECT_EQ(reg_.next_wakeup(), kT0 + 150ms);

  now_ = kT0 + 150ms;
  retry = only_write(tick(), 0);
  a = answer(retry, written(retry, 100));
  EXPECT_THAT(texts(a), ElementsAre(HasSubstr("registered /services/api/a")));
}

TEST_F(Registration, UpdateValuesRewritesOnlyChangedKeys) {
  register_all();  // key 0 at mod_revision 100
  range(0, Observed{"va", kLease, 100}, 150);  // a later read: header revision 150, key unchanged
  const Actions a = reg_.update_values({"va-new", "vb"}, now_);
  ASSERT_EQ(a.writes.size(), 1u);
  EXPECT_EQ(a.writes[0].index, 0u);
  EXPECT_EQ(a.writes[0].lease, kLease);
  EXPECT_EQ(a.writes[0].expect_mod_revision, 100);  // the key's mod_revision, not the newest header revision
  EXPECT_EQ(reg_.desired(0).value, "va-new");
  EXPECT_EQ(reg_.desired(1).value, "vb");
  EXPECT_TRUE(reg_.update_values({"va-new", "vb"}, now_).empty());
}

TEST_F(Registration, UpdateValuesWhileLeaseIsDownWaitsForNextLease) {
  reg_.start(now_);
  EXPECT_TRUE(reg_.update_values({"va2", "vb2"}, now_).empty());
  EXPECT_EQ(reg_.on_lease_granted(kLease, kTtl, now_, now_).writes.size(), 2u);
  EXPECT_EQ(reg_.desired(0).value, "va2");
  EXPECT_EQ(reg_.desired(1).value, "vb2");
}

}  // namespace

// ---------------------------------------------------------------- restart without a gap

namespace sidecar::core {
namespace {

using namespace std::chrono_literals;

constexpr int64_t kPrevious = 0x77aa;

TEST(RegistrationAdoption, AdoptedLeaseKeepsKeysThatHoldOurValueWithoutAnyWrite) {
  core::Registration reg(std::vector<DesiredKey>{{"/services/a/1", "va"}, {"/services/b/1", "vb"}}, {});
  const TimePoint t0{std::chrono::seconds(1000)};
  const Actions a = reg.adopt_lease(kPrevious, 10s, 7s, t0, t0);
  EXPECT_FALSE(a.grant_lease);
  ASSERT_TRUE(a.keepalive);  // refreshed at once: the lease aged while no process held it
  EXPECT_EQ(*a.keepalive, kPrevious);
  EXPECT_EQ(reg.lease(), kPrevious);
  EXPECT_EQ(reg.lease_deadline(), t0 + 7s);  // what etcd said is left, not a full TTL
  EXPECT_EQ(reg.leases_granted(), 0u);
  ASSERT_EQ(a.writes.size(), 2u);
  bool ready = false;
  for (const auto& w : a.writes) {
    EXPECT_EQ(w.lease, kPrevious);
    EXPECT_EQ(w.expect_mod_revision, 0);  // create-only: a key still there is reported, not overwritten
    WriteOutcome o;
    o.kind = WriteOutcome::Kind::kRejected;
    o.attempt = w.attempt;
    o.revision = 300;
    o.current = Observed{w.index == 0 ? "va" : "vb", kPrevious, 50 + static_cast<int64_t>(w.index)};
    const Actions after = reg.on_write_result(w.index, o, t0, 0.5);
    EXPECT_TRUE(after.writes.empty()) << "key " << w.index << " rewritten: a watcher would see an event";
    ready = ready || after.became_ready;
  }
  EXPECT_TRUE(ready);
  EXPECT_TRUE(reg.all_registered());
}

TEST(RegistrationAdoption, AdoptedLeaseRewritesAChangedValueAndRecreatesAMissingKey) {
  core::Registration reg(std::vector<DesiredKey>{{"/services/a/1", "va-new"}, {"/services/b/1", "vb"}}, {});
  const TimePoint t0{std::chrono::seconds(1000)};
  const Actions a = reg.adopt_lease(kPrevious, 10s, 9s, t0, t0);
  ASSERT_EQ(a.writes.size(), 2u);
  WriteOutcome changed;
  changed.kind = WriteOutcome::Kind::kRejected;
  changed.attempt = a.writes[0].attempt;
  changed.current = Observed{"va-old", kPrevious, 60};
  const Actions rewrite = reg.on_write_result(0, changed, t0, 0.5);
  ASSERT_EQ(rewrite.writes.size(), 1u);
  EXPECT_EQ(rewrite.writes[0].expect_mod_revision, 60);
  EXPECT_EQ(rewrite.writes[0].lease, kPrevious);
  WriteOutcome created;
  created.kind = WriteOutcome::Kind::kWritten;
  created.attempt = a.writes[1].attempt;
  created.revision = 61;
  reg.on_write_result(1, created, t0, 0.5);
  EXPECT_EQ(reg.key_state(1), Registration::KeyState::kRegistered);
}

TEST(RegistrationAdoption, KeysOfARememberedLeaseAreMovedNotTakenForAConflict) {
  core::Registration reg(std::vector<DesiredKey>{{"/services/a/1", "va"}}, {});
  const TimePoint t0{std::chrono::seconds(1000)};
  reg.remember_lease(kPrevious);  // etcd could not confirm it at start: a fresh lease is granted instead
  reg.start(t0);
  const Actions granted = reg.on_lease_granted(0x99, 10s, t0, t0);
  ASSERT_EQ(granted.writes.size(), 1u);
  WriteOutcome o;
  o.kind = WriteOutcome::Kind::kRejected;
  o.attempt = granted.writes[0].attempt;
  o.current = Observed{"va", kPrevious, 40};
  const Actions moved = reg.on_write_result(0, o, t0, 0.5);
  ASSERT_EQ(moved.writes.size(), 1u);
  EXPECT_EQ(moved.writes[0].lease, 0x99);
  EXPECT_EQ(moved.writes[0].expect_mod_revision, 40);
  EXPECT_EQ(reg.key_state(0), Registration::KeyState::kWriting);
  EXPECT_EQ(reg.conflict_lease(0), 0);
}

TEST(RegistrationAdoption, AdoptionIsIgnoredOnceALeaseIsAlive) {
  core::Registration reg(std::vector<DesiredKey>{{"/services/a/1", "va"}}, {});
  const TimePoint t0{std::chrono::seconds(1000)};
  reg.start(t0);
  reg.on_lease_granted(0x99, 10s, t0, t0);
  const Actions a = reg.adopt_lease(kPrevious, 10s, 9s, t0, t0);
  EXPECT_TRUE(a.empty());
  EXPECT_EQ(reg.lease(), 0x99);
}

}  // namespace
}  // namespace sidecar::core

namespace sidecar::core {
namespace {

using namespace std::chrono_literals;

// After an etcd outage the lease is lost locally while etcd (restarted with its data) may still hold it
// with our keys; a shutdown before the next grant answers must still revoke it.
TEST(RegistrationShutdown, LeasesToRevokeIncludeLeasesGivenUpOnNewestFirst) {
  core::Registration reg(std::vector<DesiredKey>{{"/services/a/1", "va"}}, {});
  const TimePoint t0{std::chrono::seconds(1000)};
  EXPECT_TRUE(reg.leases_to_revoke().empty());
  reg.start(t0);
  reg.on_lease_granted(0x11, 10s, t0, t0);
  EXPECT_EQ(reg.leases_to_revoke(), (std::vector<int64_t>{0x11}));
  // No keepalive answered within the TTL: lost, a new grant is pending.
  const Actions lost = reg.on_tick(t0 + 11s, 0.5);
  ASSERT_TRUE(lost.grant_lease);
  EXPECT_EQ(reg.lease(), 0);
  EXPECT_EQ(reg.leases_to_revoke(), (std::vector<int64_t>{0x11}));
  reg.on_lease_granted(0x22, 10s, t0 + 12s, t0 + 12s);
  EXPECT_EQ(reg.leases_to_revoke(), (std::vector<int64_t>{0x22, 0x11}));
}

}  // namespace
}  // namespace sidecar::core
