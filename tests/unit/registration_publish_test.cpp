// Registration::set_published: a key withdrawn (unhealthy service, drain) is deleted only while it is ours,
// is not restored by the own-key watch, and comes back at once when published; nothing else moves.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "agent/core/registration.hpp"
#include "tests/unit/registration_outcomes.hpp"

namespace {

using namespace std::chrono_literals;
namespace core = sidecar::core;
using core::Actions;
using core::DeleteKey;
using core::DeleteOutcome;
using core::Observed;
using core::ObservationSource;
using core::TimePoint;
using core::WriteKey;
using core::WriteOutcome;
using KeyState = core::Registration::KeyState;
using core::outcomes::rejected;
using core::outcomes::written;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr double kDraw = 0.5;
constexpr int64_t kLease = 0x1a2b;
constexpr int64_t kNewLease = 0x2c3d;
constexpr int64_t kOtherLease = 0x7777;
const TimePoint kT0 = TimePoint{} + 1h;



DeleteOutcome delete_answer(const DeleteKey& d, DeleteOutcome::Kind kind, int64_t revision = 0) {
  DeleteOutcome o;
  o.kind = kind;
  o.revision = revision;
  o.attempt = d.attempt;
  o.error = kind == DeleteOutcome::Kind::kFailed ? "deadline exceeded" : "";
  return o;
}

std::string all_notes(const Actions& a) {
  std::string out;
  for (const auto& n : a.notes) out += n.text + "\n";
  return out;
}

class RegistrationPublish : public ::testing::Test {
 protected:
  RegistrationPublish() : reg_(keys(), core::RegistrationOptions{}) {}

  static std::vector<core::DesiredKey> keys() {
    return {{"/services/api/a", "va"}, {"/services/web/b", "vb"}};
  }

  // Grants kLease and answers every write it asks for: key i at revision 100 + i.
  void register_all() {
    reg_.start(now_);
    const Actions granted = reg_.on_lease_granted(kLease, 10s, now_, now_);
    for (const auto& w : granted.writes) {
      reg_.on_write_result(w.index, written(w, 100 + static_cast<int64_t>(w.index)), now_, kDraw);
    }
    ASSERT_TRUE(reg_.all_registered());
  }

  // Withdraws key `index` and returns its one DeleteKey.
  DeleteKey withdraw(size_t index) {
    const Actions a = reg_.set_published(index, false, now_, "check critical");
    EXPECT_EQ(a.deletes.size(), 1u);
    return a.deletes.empty() ? DeleteKey{} : a.deletes.front();
  }

  Actions watch(size_t index, std::optional<Observed> current, int64_t revision) {
    return reg_.on_observed(index, current, revision, ObservationSource::kWatch, now_, kDraw);
  }

  core::Registration reg_;
  TimePoint now_ = kT0;
};

TEST_F(RegistrationPublish, WithdrawingDeletesOnlyThatKeyGuardedByOurLease) {
  register_all();
  const Actions a = reg_.set_published(1, false, now_, "check 'http' critical");
  ASSERT_EQ(a.deletes.size(), 1u);
  EXPECT_EQ(a.deletes[0].index, 1u);
  EXPECT_EQ(a.deletes[0].lease, kLease);
  EXPECT_THAT(a.writes, IsEmpty());
  EXPECT_FALSE(a.grant_lease);
  EXPECT_FALSE(a.revoke_stale);  // the shared lease stays
  EXPECT_THAT(all_notes(a), HasSubstr("withdrawing /services/web/b (check 'http' critical); lease 1a2b kept"));
  EXPECT_EQ(reg_.key_state(0), KeyState::kRegistered);
  EXPECT_EQ(reg_.key_state(1), KeyState::kWithdrawn);
  EXPECT_EQ(reg_.lease(), kLease);
  EXPECT_FALSE(reg_.published(1));
}

TEST_F(RegistrationPublish, SetPublishedIsIdempotent) {
  register_all();
  withdraw(0);
  EXPECT_TRUE(reg_.set_published(0, false, now_).empty());
  EXPECT_TRUE(reg_.set_published(1, true, now_).empty());
}

TEST_F(RegistrationPublish, OwnKeyWatchDoesNotRestoreAWithdrawnKey) {
  register_all();
  const DeleteKey d = withdraw(0);
  reg_.on_delete_result(0, delete_answer(d, DeleteOutcome::Kind::kDeleted, 110), now_, kDraw);
  const Actions a = watch(0, std::nullopt, 110);
  EXPECT_TRUE(a.writes.empty());
  // Even a later delete event (e.g. after a re-read) leaves it alone.
  const Actions b = reg_.on_observed(0, std::nullopt, 111, ObservationSource::kRange, now_, kDraw);
  EXPECT_TRUE(b.writes.empty());
  EXPECT_EQ(reg_.key_state(0), KeyState::kWithdrawn);
}

TEST_F(RegistrationPublish, PublishingWritesTheKeyAgainAtOnceOnTheSameLease) {
  register_all();
  const DeleteKey d = withdraw(0);
  reg_.on_delete_result(0, delete_answer(d, DeleteOutcome::Kind::kDeleted, 110), now_, kDraw);
  const Actions a = reg_.set_published(0, true, now_, "check 'http' passing");
  ASSERT_EQ(a.writes.size(), 1u);
  EXPECT_EQ(a.writes[0].index, 0u);
  EXPECT_EQ(a.writes[0].lease, kLease);
  EXPECT_EQ(a.writes[0].expect_mod_revision, 0);  // create-only: never overwrite someone who took it meanwhile
  const Actions done = reg_.on_write_result(0, written(a.writes[0], 120), now_, kDraw);
  EXPECT_THAT(all_notes(done), HasSubstr("restored /services/api/a lease 1a2b (check 'http' passing)"));
  EXPECT_EQ(reg_.key_state(0), KeyState::kRegistered);
}

TEST_F(RegistrationPublish, NeverDeletesAKeyAnotherAgentHolds) {
  register_all();
  const DeleteKey d = withdraw(0);
  // The guarded delete found another lease on the key: nothing deleted, nothing retried.
  const Actions a = reg_.on_delete_result(0, delete_answer(d, DeleteOutcome::Kind::kNotOurs, 111), now_, kDraw);
  EXPECT_TRUE(a.deletes.empty());
  EXPECT_FALSE(reg_.withdrawals_pending());
  // And a watch event showing the other agent's value asks for nothing either.
  const Actions b = watch(0, Observed{"theirs", kOtherLease, 112}, 112);
  EXPECT_TRUE(b.deletes.empty());
  EXPECT_TRUE(b.writes.empty());
  EXPECT_FALSE(reg_.next_wakeup() && *reg_.next_wakeup() <= now_ + 1s);
}

TEST_F(RegistrationPublish, FailedDeleteIsRetriedWithBackoffUntilItGoesThrough) {
  register_all();
  const DeleteKey d = withdraw(0);
  const Actions failed = reg_.on_delete_result(0, delete_answer(d, DeleteOutcome::Kind::kFailed), now_, kDraw);
  EXPECT_THAT(all_notes(failed), HasSubstr("cannot delete withdrawn /services/api/a"));
  EXPECT_TRUE(reg_.withdrawals_pending());
  ASSERT_TRUE(reg_.next_wakeup());
  now_ = *reg_.next_wakeup();
  const Actions retry = reg_.on_tick(now_, kDraw);
  ASSERT_EQ(retry.deletes.size(), 1u);
  EXPECT_EQ(retry.deletes[0].lease, kLease);
  reg_.on_delete_result(0, delete_answer(retry.deletes[0], DeleteOutcome::Kind::kDeleted, 115), now_, kDraw);
  EXPECT_FALSE(reg_.withdrawals_pending());
}

TEST_F(RegistrationPublish, WithdrawnWhileWritingDeletesWhatTheWriteCreated) {
  reg_.start(now_);
  const Actions granted = reg_.on_lease_granted(kLease, 10s, now_, now_);
  ASSERT_EQ(granted.writes.size(), 2u);
  const Actions w = reg_.set_published(0, false, now_, "drained");
  EXPECT_TRUE(w.deletes.empty());  // nothing to delete until the write answers
  EXPECT_TRUE(reg_.withdrawals_pending());
  const Actions a = reg_.on_write_result(0, written(granted.writes[0], 100), now_, kDraw);
  ASSERT_EQ(a.deletes.size(), 1u);
  EXPECT_EQ(a.deletes[0].lease, kLease);
  EXPECT_THAT(all_notes(a), ::testing::Not(HasSubstr("registered")));
  EXPECT_EQ(reg_.key_state(0), KeyState::kWithdrawn);
}

TEST_F(RegistrationPublish, AValueOfOursThatReappearsWhileWithdrawnIsDeleted) {
  register_all();
  const DeleteKey d = withdraw(0);
  reg_.on_delete_result(0, delete_answer(d, DeleteOutcome::Kind::kFailed), now_, kDraw);
  // A re-read after reconnecting shows our value still there: delete it now rather than at the retry.
  const Actions a = reg_.on_observed(0, Observed{"va", kLease, 100}, 120, ObservationSource::kRange, now_, kDraw);
  ASSERT_EQ(a.deletes.size(), 1u);
  EXPECT_EQ(a.deletes[0].lease, kLease);
}

TEST_F(RegistrationPublish, PublishedAgainBeforeTheDeleteAnsweredEndsRegistered) {
  register_all();
  const DeleteKey d = withdraw(0);
  const Actions a = reg_.set_published(0, true, now_, "undrained");
  ASSERT_EQ(a.writes.size(), 1u);
  // The stale delete answer is ignored...
  EXPECT_TRUE(reg_.on_delete_result(0, delete_answer(d, DeleteOutcome::Kind::kDeleted, 110), now_, kDraw).empty());
  // ...the create-only write finds the key gone and writes it...
  reg_.on_write_result(0, written(a.writes[0], 111), now_, kDraw);
  EXPECT_EQ(reg_.key_state(0), KeyState::kRegistered);
  // ...and had the delete landed after the write, the own-key watch restores it as usual.
  const Actions b = watch(0, std::nullopt, 112);
  EXPECT_EQ(b.writes.size(), 1u);
}

TEST_F(RegistrationPublish, PublishWhileOurOldValueIsStillThereAdoptsIt) {
  register_all();
  withdraw(0);  // delete still in flight
  const Actions a = reg_.set_published(0, true, now_, "undrained");
  ASSERT_EQ(a.writes.size(), 1u);
  reg_.on_write_result(0, rejected(a.writes[0], Observed{"va", kLease, 100}, 105), now_, kDraw);
  EXPECT_EQ(reg_.key_state(0), KeyState::kRegistered);
}

TEST_F(RegistrationPublish, KeysThatStartUnpublishedAreNotWrittenWithTheLease) {
  core::Registration reg({{"/services/api/a", "va", false}, {"/services/web/b", "vb", true}}, {});
  EXPECT_EQ(reg.key_state(0), KeyState::kWithdrawn);
  reg.start(now_);
  const Actions granted = reg.on_lease_granted(kLease, 10s, now_, now_);
  ASSERT_EQ(granted.writes.size(), 1u);
  EXPECT_EQ(granted.writes[0].index, 1u);
  // Ready once every published key is registered: a critical service does not hold up READY=1.
  const Actions done = reg.on_write_result(1, written(granted.writes[0], 100), now_, kDraw);
  EXPECT_TRUE(done.became_ready);
  const Actions later = reg.set_published(0, true, now_, "check passing");
  ASSERT_EQ(later.writes.size(), 1u);
  EXPECT_EQ(later.writes[0].lease, kLease);
}

TEST_F(RegistrationPublish, WithdrawnKeysStayWithdrawnAcrossALostLease) {
  register_all();
  const DeleteKey d = withdraw(0);
  reg_.on_delete_result(0, delete_answer(d, DeleteOutcome::Kind::kDeleted, 110), now_, kDraw);
  now_ = *reg_.lease_deadline();
  const Actions lost = reg_.on_tick(now_, kDraw);
  ASSERT_TRUE(lost.grant_lease);
  const Actions granted = reg_.on_lease_granted(kNewLease, 10s, now_, now_);
  ASSERT_EQ(granted.writes.size(), 1u);
  EXPECT_EQ(granted.writes[0].index, 1u);
  EXPECT_EQ(reg_.key_state(0), KeyState::kWithdrawn);
  // Published after the new grant: written on the new lease.
  const Actions a = reg_.set_published(0, true, now_);
  ASSERT_EQ(a.writes.size(), 1u);
  EXPECT_EQ(a.writes[0].lease, kNewLease);
}

TEST_F(RegistrationPublish, PublishedWithoutALeaseWaitsForTheGrant) {
  core::Registration reg({{"/services/api/a", "va", false}}, {});
  reg.start(now_);
  const Actions a = reg.set_published(0, true, now_);
  EXPECT_TRUE(a.writes.empty());
  EXPECT_EQ(reg.key_state(0), KeyState::kPending);
  const Actions granted = reg.on_lease_granted(kLease, 10s, now_, now_);
  EXPECT_EQ(granted.writes.size(), 1u);
}

TEST_F(RegistrationPublish, WithdrawingAConflictingKeyStopsRetrying) {
  register_all();
  // Another agent took key 0 over: we wait for it in kConflict...
  const Actions c = watch(0, Observed{"theirs", kOtherLease, 130}, 130);
  ASSERT_EQ(reg_.key_state(0), KeyState::kConflict);
  // ...withdrawn now: no delete (it is not ours) and no more create attempts.
  const Actions a = reg_.set_published(0, false, now_, "drained");
  EXPECT_TRUE(a.deletes.empty());
  now_ += 1h;
  const Actions t = reg_.on_tick(now_, kDraw);
  for (const auto& w : t.writes) EXPECT_NE(w.index, 0u);
}

TEST_F(RegistrationPublish, AdoptedLeaseDoesNotReassertAWithdrawnKeyAndDeletesWhatThePreviousProcessLeft) {
  core::Registration reg({{"/services/api/a", "va", false}, {"/services/web/b", "vb", true}}, {});
  reg.start(now_);
  const Actions adopted = reg.adopt_lease(kLease, 10s, 7s, now_, now_);
  ASSERT_EQ(adopted.writes.size(), 1u);
  EXPECT_EQ(adopted.writes[0].index, 1u);
  // The previous process was healthy: its value is still on the adopted lease. Withdrawn now: deleted.
  const Actions a = reg.on_observed(0, Observed{"va", kLease, 90}, 95, ObservationSource::kRange, now_, kDraw);
  ASSERT_EQ(a.deletes.size(), 1u);
  EXPECT_EQ(a.deletes[0].lease, kLease);
  EXPECT_TRUE(a.writes.empty());
}

}  // namespace
