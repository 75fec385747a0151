// Registration::add_key / remove_key / update_value (live reload): the key set grows and shrinks on the
// running lease, indices stay stable, and only the keys that changed see a write or a delete.
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

constexpr double kDraw = 0.5;
constexpr int64_t kLease = 0x1a2b;
const TimePoint kT0 = TimePoint{} + 1h;



DeleteOutcome deleted(const DeleteKey& d, int64_t revision) {
  DeleteOutcome o;
  o.kind = DeleteOutcome::Kind::kDeleted;
  o.revision = revision;
  o.attempt = d.attempt;
  return o;
}

class RegistrationKeySet : public ::testing::Test {
 protected:
  RegistrationKeySet() : reg_({{"/services/api/a", "va"}, {"/services/web/b", "vb"}}, core::RegistrationOptions{}) {}

  void register_all() {
    reg_.start(now_);
    const Actions granted = reg_.on_lease_granted(kLease, 10s, now_, now_);
    for (const auto& w : granted.writes) {
      reg_.on_write_result(w.index, written(w, 100 + static_cast<int64_t>(w.index)), now_, kDraw);
    }
    ASSERT_TRUE(reg_.all_registered());
  }

  core::Registration reg_;
  TimePoint now_ = kT0;
};

TEST_F(RegistrationKeySet, AddedKeyIsWrittenAtOnceOnTheRunningLeaseAndNothingElseMoves) {
  register_all();
  size_t index = 99;
  const Actions a = reg_.add_key({"/services/db/c", "vc"}, now_, &index);
  EXPECT_EQ(index, 2u);
  ASSERT_EQ(a.writes.size(), 1u);
  EXPECT_EQ(a.writes[0].index, 2u);
  EXPECT_EQ(a.writes[0].lease, kLease);
  EXPECT_EQ(a.writes[0].expect_mod_revision, 0);  // create-only
  EXPECT_TRUE(a.deletes.empty());
  EXPECT_FALSE(a.grant_lease);
  EXPECT_FALSE(reg_.all_registered());
  reg_.on_write_result(2, written(a.writes[0], 200), now_, kDraw);
  EXPECT_EQ(reg_.key_state(2), KeyState::kRegistered);
  EXPECT_TRUE(reg_.all_registered());
  EXPECT_EQ(reg_.key_count(), 3u);
  EXPECT_EQ(reg_.live_key_count(), 3u);
}

TEST_F(RegistrationKeySet, KeyAddedBeforeTheLeaseIsWrittenWithTheGrant) {
  reg_.start(now_);
  size_t index = 0;
  EXPECT_TRUE(reg_.add_key({"/services/db/c", "vc"}, now_, &index).writes.empty());
  EXPECT_EQ(reg_.key_state(index), KeyState::kPending);
  const Actions granted = reg_.on_lease_granted(kLease, 10s, now_, now_);
  EXPECT_EQ(granted.writes.size(), 3u);
}

TEST_F(RegistrationKeySet, UnhealthyAddedKeyIsHeldBackUntilPublished) {
  register_all();
  size_t index = 0;
  EXPECT_TRUE(reg_.add_key({"/services/db/c", "vc", false}, now_, &index).writes.empty());
  EXPECT_EQ(reg_.key_state(index), KeyState::kWithdrawn);
  EXPECT_EQ(reg_.set_published(index, true, now_, "check passing").writes.size(), 1u);
}

TEST_F(RegistrationKeySet, RemovedKeyIsDeletedGuardedByOurLeaseAndTheLeaseStays) {
  register_all();
  const Actions a = reg_.remove_key(0, now_);
  ASSERT_EQ(a.deletes.size(), 1u);
  EXPECT_EQ(a.deletes[0].index, 0u);
  EXPECT_EQ(a.deletes[0].lease, kLease);
  EXPECT_TRUE(a.writes.empty());
  EXPECT_FALSE(a.revoke_stale.has_value());
  reg_.on_delete_result(0, deleted(a.deletes[0], 300), now_, kDraw);
  EXPECT_TRUE(reg_.removed(0));
  EXPECT_EQ(reg_.lease(), kLease);
  EXPECT_EQ(reg_.key_state(1), KeyState::kRegistered);
  EXPECT_EQ(reg_.live_key_count(), 1u);
  EXPECT_TRUE(reg_.all_registered());  // a tombstone does not count
  EXPECT_FALSE(reg_.withdrawals_pending());
  // Index 1 is still the same key: the registrar's index map and the health layer stay valid.
  EXPECT_EQ(reg_.desired(1).key, "/services/web/b");
}

TEST_F(RegistrationKeySet, TombstoneIsNeverPublishedAgainNorRestoredByTheWatch) {
  register_all();
  const Actions a = reg_.remove_key(0, now_);
  reg_.on_delete_result(0, deleted(a.deletes[0], 300), now_, kDraw);
  EXPECT_TRUE(reg_.set_published(0, true, now_, "undrain").empty());
  // Someone else writes the key: not ours to restore or delete.
  const Actions w = reg_.on_observed(0, Observed{"x", 0x9999, 301}, 301, ObservationSource::kWatch, now_, kDraw);
  EXPECT_TRUE(w.writes.empty());
  EXPECT_TRUE(w.deletes.empty());
}

TEST_F(RegistrationKeySet, ReAddedKeyRevivesItsIndexAndOvertakesTheDeleteInFlight) {
  register_all();
  const Actions removed = reg_.remove_key(0, now_);
  ASSERT_EQ(removed.deletes.size(), 1u);
  size_t index = 99;
  const Actions a = reg_.add_key({"/services/api/a", "va2"}, now_, &index);
  EXPECT_EQ(index, 0u);
  EXPECT_EQ(reg_.key_count(), 2u);
  ASSERT_EQ(a.writes.size(), 1u);
  EXPECT_EQ(reg_.desired(0).value, "va2");
  // The old delete's answer is dropped; the write decides.
  EXPECT_TRUE(reg_.on_delete_result(0, deleted(removed.deletes[0], 300), now_, kDraw).empty());
  reg_.on_write_result(0, written(a.writes[0], 301), now_, kDraw);
  EXPECT_EQ(reg_.key_state(0), KeyState::kRegistered);
  EXPECT_FALSE(reg_.removed(0));
}

TEST_F(RegistrationKeySet, ChangedValueIsRewrittenInPlaceOnTheSameLease) {
  register_all();
  const Actions a = reg_.update_value(1, "vb2", now_);
  ASSERT_EQ(a.writes.size(), 1u);
  EXPECT_EQ(a.writes[0].index, 1u);
  EXPECT_EQ(a.writes[0].lease, kLease);
  EXPECT_EQ(a.writes[0].expect_mod_revision, 101);  // compare on our own put: a put, never a delete
  EXPECT_TRUE(a.deletes.empty());
  reg_.on_write_result(1, written(a.writes[0], 400), now_, kDraw);
  EXPECT_EQ(reg_.key_state(1), KeyState::kRegistered);
  EXPECT_EQ(reg_.desired(1).value, "vb2");
  EXPECT_TRUE(reg_.update_value(1, "vb2", now_).empty());  // unchanged: nothing
}

TEST_F(RegistrationKeySet, ValueChangedWhileItsWriteIsInFlightEndsWithTheNewValue) {
  reg_.start(now_);
  const Actions granted = reg_.on_lease_granted(kLease, 10s, now_, now_);
  const Actions a = reg_.update_value(0, "va2", now_);
  ASSERT_EQ(a.writes.size(), 1u);
  // The first write (old value) answers late: ignored. The second finds the old value on our lease.
  EXPECT_TRUE(reg_.on_write_result(0, written(granted.writes[0], 100), now_, kDraw).empty());
  const Actions r = reg_.on_write_result(0, rejected(a.writes[0], Observed{"va", kLease, 100}, 100), now_, kDraw);
  ASSERT_EQ(r.writes.size(), 1u);
  EXPECT_EQ(r.writes[0].expect_mod_revision, 100);
  reg_.on_write_result(0, written(r.writes[0], 101), now_, kDraw);
  EXPECT_EQ(reg_.key_state(0), KeyState::kRegistered);
}

TEST_F(RegistrationKeySet, AddingALiveKeyAgainKeepsEveryActionOfTheUpdateAndThePublishChange) {
  // Key 1 is held by another agent: in conflict, so the agent is not ready yet.
  reg_.start(now_);
  const Actions granted = reg_.on_lease_granted(kLease, 10s, now_, now_);
  ASSERT_EQ(granted.writes.size(), 2u);
  reg_.on_write_result(0, written(granted.writes[0], 100), now_, kDraw);
  reg_.on_write_result(1, rejected(granted.writes[1], Observed{"other", 0x9999, 90}, 100), now_, kDraw);
  ASSERT_EQ(reg_.key_state(1), KeyState::kConflict);
  // Added again, unhealthy, with a new value: the withdrawal settles the last key, which is what makes
  // the agent ready. The old path merged only writes, deletes and notes and lost became_ready for good.
  size_t index = 99;
  const Actions a = reg_.add_key({"/services/web/b", "vb2", false}, now_, &index);
  EXPECT_EQ(index, 1u);
  EXPECT_TRUE(a.became_ready);
  ASSERT_EQ(a.notes.size(), 1u);
  EXPECT_THAT(a.notes[0].text, ::testing::HasSubstr("withdrawing /services/web/b (added again)"));
  EXPECT_EQ(reg_.key_state(1), KeyState::kWithdrawn);
  EXPECT_EQ(reg_.desired(1).value, "vb2");
}

TEST_F(RegistrationKeySet, AddingARegisteredKeyAgainWithANewValueKeepsTheWrite) {
  register_all();
  size_t index = 99;
  const Actions a = reg_.add_key({"/services/web/b", "vb2"}, now_, &index);
  ASSERT_EQ(a.writes.size(), 1u);
  EXPECT_EQ(a.writes[0].index, 1u);
  EXPECT_EQ(a.writes[0].expect_mod_revision, 101);
}

TEST(Actions, MergeKeepsEveryKindOfAction) {
  Actions a;
  a.writes.push_back({.index = 0, .lease = kLease});
  a.notes.push_back({core::LogNote::Level::kInfo, "first"});
  Actions b;
  b.grant_lease = true;
  b.keepalive = kLease;
  b.revoke_stale = 0x42;
  b.writes.push_back({.index = 1, .lease = kLease});
  b.deletes.push_back({.index = 2, .lease = kLease});
  b.notes.push_back({core::LogNote::Level::kWarn, "second"});
  b.became_ready = true;
  a.merge(b);
  EXPECT_TRUE(a.grant_lease);
  EXPECT_EQ(a.keepalive, kLease);
  EXPECT_EQ(a.revoke_stale, 0x42);
  ASSERT_EQ(a.writes.size(), 2u);
  EXPECT_EQ(a.writes[1].index, 1u);
  ASSERT_EQ(a.deletes.size(), 1u);
  ASSERT_EQ(a.notes.size(), 2u);
  EXPECT_EQ(a.notes[0].text, "first");
  EXPECT_EQ(a.notes[1].text, "second");
  EXPECT_TRUE(a.became_ready);
  // Merging nothing changes nothing; merging into nothing copies everything.
  Actions c;
  c.merge(Actions{});
  EXPECT_TRUE(c.empty());
  c.merge(a);
  EXPECT_EQ(c.writes.size(), 2u);
  EXPECT_TRUE(c.became_ready);
}

}  // namespace
