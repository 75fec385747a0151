// Registrar against FakeEtcd on an io_context the test drives: no etcd, no sockets, no sleeps. Each test
// runs the loop until a condition holds (the bound only turns a hang into a failure). Where a rule is about
// time (a keepalive every TTL/3, adoption given up after one TTL), the test moves the RuntimeClock instead
// of waiting; backoff between retries is shrunk to milliseconds through the options.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "agent/core/instance_state.hpp"
#include "agent/runtime/registrar.hpp"
#include "agent/runtime/task_scope.hpp"
#include "tests/runtime/drive.hpp"
#include "tests/runtime/fake_etcd.hpp"

namespace sidecar::runtime {
namespace {

using namespace std::chrono_literals;
using testing::FakeEtcd;
using testing::run_until;

std::vector<core::DesiredKey> service_keys(size_t n) {
  std::vector<core::DesiredKey> keys;
  for (size_t i = 0; i < n; ++i) {
    keys.push_back({"/services/orders/i-" + std::to_string(i), R"({"address":"10.0.0.)" + std::to_string(i % 250) +
                                                                    R"(","port":8080})"});
  }
  return keys;
}

// One registrar on the fake, stopped and joined at the end of every test, so a test that leaves a loop
// running (or a call that never completes) fails in the destructor's bound instead of hanging.
class RegistrarRig {
 public:
  explicit RegistrarRig(std::vector<core::DesiredKey> keys, std::chrono::seconds ttl = 10s) : keys_(keys) {
    RuntimeClock::reset();
    core::RegistrationOptions options;
    options.ttl = ttl;
    options.grant_backoff = {1ms, 5ms, 2.0, 0.0};
    options.write_backoff = {1ms, 5ms, 2.0, 0.0};
    options.conflict_backoff = {1ms, 5ms, 2.0, 0.0};
    registrar_ = std::make_unique<Registrar>(
        io_, etcd_, std::move(keys), options,
        RegistrarHooks{[this] { ++ready_; }, [this](int64_t lease) { reported_leases_.push_back(lease); }});
  }

  ~RegistrarRig() {
    if (!stopped_) stop(1s);
    registrar_->abandon();
    scope_.spawn("join", registrar_->join());
    EXPECT_TRUE(run_until(io_, [&] { return scope_.live() == 0; })) << "the registrar's loops did not end";
    RuntimeClock::reset();
  }

  void start(std::optional<int64_t> previous = std::nullopt) { registrar_->start(previous); }
  // Stops (revokes) and returns once stop() has completed.
  std::chrono::milliseconds stop(std::chrono::milliseconds budget) {
    stopped_ = true;
    bool done = false;
    const auto started = std::chrono::steady_clock::now();
    scope_.spawn("stop", stop_then(budget, &done));
    EXPECT_TRUE(run_until(io_, [&] { return done; }));
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
  }
  void advance(std::chrono::steady_clock::duration by) { testing::advance_clock(io_, by); }
  // Registered (ready) with the own-key watch open: the state most tests start from.
  bool run_until_watching() { return run([&] { return ready_ > 0 && etcd_.open_watches() == 1; }); }
  bool run(const std::function<bool()>& done, std::chrono::milliseconds limit = 5s) {
    return run_until(io_, done, limit);
  }
  bool registered_on(int64_t lease) const {
    for (const auto& k : keys_) {
      const auto kv = etcd_.get(k.key);
      if (!kv || kv->lease != lease || kv->value != k.value) return false;
    }
    return true;
  }
  bool none_in_etcd() const {
    for (const auto& k : keys_) {
      if (etcd_.get(k.key)) return false;
    }
    return true;
  }
  int64_t lease() const { return registrar_->state().lease(); }

  asio::io_context io_;
  FakeEtcd etcd_{io_};
  std::vector<core::DesiredKey> keys_;
  std::unique_ptr<Registrar> registrar_;
  int ready_ = 0;
  std::vector<int64_t> reported_leases_;

 private:
  asio::awaitable<void> stop_then(std::chrono::milliseconds budget, bool* done) {
    co_await registrar_->stop(budget);
    *done = true;
  }
  bool stopped_ = false;
  TaskScope scope_{io_, "test"};
};

TEST(Registrar, RegistersEveryKeyOnOneGrantedLeaseAndSaysReadyOnce) {
  RegistrarRig rig(service_keys(3));
  rig.start();
  ASSERT_TRUE(rig.run([&] { return rig.ready_ > 0; }));
  EXPECT_EQ(rig.etcd_.grants(), 1);
  EXPECT_NE(rig.lease(), 0);
  EXPECT_TRUE(rig.registered_on(rig.lease()));
  EXPECT_EQ(rig.reported_leases_, std::vector<int64_t>{rig.lease()});
  EXPECT_EQ(rig.ready_, 1);
}

TEST(Registrar, RestoresKeyDeletedByAnotherClient) {
  RegistrarRig rig(service_keys(3));
  rig.start();
  ASSERT_TRUE(rig.run_until_watching());
  const int64_t deleted_at = rig.etcd_.erase(rig.keys_[1].key);
  ASSERT_TRUE(rig.run([&] { return rig.registered_on(rig.lease()); }));
  EXPECT_GT(rig.etcd_.get(rig.keys_[1].key)->mod_revision, deleted_at);
  EXPECT_EQ(rig.etcd_.grants(), 1);  // the same lease: only the key was rewritten
}

TEST(Registrar, AnOwnKeyReadAnsweredAfterTheKeysWriteDoesNotUndoIt) {
  // The first own-key read is taken before the lease is granted (the key absent) and answered only after
  // the key was written: it must not be taken for a delete by another client.
  RegistrarRig rig(service_keys(1));
  rig.etcd_.hold_reads(true);
  rig.start();
  ASSERT_TRUE(rig.run([&] { return rig.etcd_.reads() == 1 && rig.registered_on(rig.lease()) && rig.ready_ > 0; }));
  const int64_t written_at = rig.etcd_.get(rig.keys_[0].key)->mod_revision;
  rig.etcd_.hold_reads(false);
  ASSERT_TRUE(rig.run([&] { return rig.etcd_.open_watches() == 1; }));  // the read was answered and used
  EXPECT_EQ(rig.etcd_.get(rig.keys_[0].key)->mod_revision, written_at) << "the key was written again";
  EXPECT_EQ(rig.etcd_.guarded_puts(), 1);
  // The watch that follows the stale read still sees what happens to the key.
  rig.etcd_.erase(rig.keys_[0].key);
  ASSERT_TRUE(rig.run([&] { return rig.registered_on(rig.lease()); }));
}

TEST(Registrar, RestoresKeyOverwrittenByAnotherClient) {
  RegistrarRig rig(service_keys(2));
  rig.start();
  ASSERT_TRUE(rig.run_until_watching());
  rig.etcd_.put(rig.keys_[0].key, R"({"address":"10.9.9.9","port":1})");
  ASSERT_TRUE(rig.run([&] { return rig.registered_on(rig.lease()); }));
}

TEST(Registrar, ReadsAndWatchesThreeHundredKeysWithinEtcdsTxnLimit) {
  // The fake refuses a read of more than 128 keys, as etcd's default --max-txn-ops does.
  RegistrarRig rig(service_keys(300));
  rig.start();
  ASSERT_TRUE(rig.run_until_watching());
  ASSERT_TRUE(rig.run([&] { return rig.etcd_.watches().back()->creates().size() == 300; }));
  rig.etcd_.erase(rig.keys_[299].key);
  rig.etcd_.erase(rig.keys_[0].key);
  ASSERT_TRUE(rig.run([&] { return rig.registered_on(rig.lease()); }));
}

TEST(Registrar, OwnKeyWatchIsReopenedAfterTheServerEndsItAndStillRestoresKeys) {
  RegistrarRig rig(service_keys(2));
  rig.start();
  ASSERT_TRUE(rig.run_until_watching());
  rig.etcd_.end_watches(EtcdStatus::failure(14, "fake etcd: member restarting"));
  const int64_t deleted_at = rig.etcd_.erase(rig.keys_[0].key);  // while no watch is open: the re-read sees it
  ASSERT_TRUE(rig.run([&] { return rig.etcd_.watches().size() == 2 && rig.etcd_.open_watches() == 1; }));
  ASSERT_TRUE(rig.run([&] { return rig.registered_on(rig.lease()); }));
  EXPECT_GT(rig.etcd_.get(rig.keys_[0].key)->mod_revision, deleted_at);
  // The new watch starts after the re-read, so it sees the next delete too.
  rig.etcd_.erase(rig.keys_[1].key);
  ASSERT_TRUE(rig.run([&] { return rig.registered_on(rig.lease()); }));
}

TEST(Registrar, OwnKeyWatchBacksOffWhileEtcdKeepsCancellingIt) {
  RegistrarRig rig(service_keys(1));
  rig.start();
  ASSERT_TRUE(rig.run_until_watching());
  rig.etcd_.refuse_watches("etcdserver: no leader");
  const auto refused_from = std::chrono::steady_clock::now();
  rig.etcd_.end_watches(EtcdStatus::failure(14, "fake etcd: leader lost"));
  // Four refused watches after the first: without backoff they would follow each other within a few ms.
  ASSERT_TRUE(rig.run([&] { return rig.etcd_.watches().size() >= 5; }));
  // Backoff 100 ms, doubling, 20 % jitter: at least 0.8 x (100 + 200 + 400) ms before the fifth.
  EXPECT_GE(std::chrono::steady_clock::now() - refused_from, 560ms);
  rig.etcd_.refuse_watches(std::nullopt);
  ASSERT_TRUE(rig.run([&] { return rig.etcd_.open_watches() == 1; }));
  rig.etcd_.erase(rig.keys_[0].key);
  ASSERT_TRUE(rig.run([&] { return rig.registered_on(rig.lease()); }));
}

TEST(Registrar, AdoptsAPreviousLeaseStillHeldByEtcdWithoutRewritingItsKeys) {
  RegistrarRig rig(service_keys(2));
  const int64_t previous = rig.etcd_.grant_lease(10s);
  for (const auto& k : rig.keys_) rig.etcd_.put(k.key, k.value, previous);
  const int64_t revision = rig.etcd_.revision();
  rig.start(previous);
  ASSERT_TRUE(rig.run_until_watching());
  EXPECT_EQ(rig.lease(), previous);
  EXPECT_EQ(rig.etcd_.grants(), 0);
  // One create-if-absent per key, refused because the key is there with our value: that answer is what
  // registers it. Nothing was written: the keys never left and their revisions stand.
  EXPECT_EQ(rig.etcd_.guarded_puts(), 2);
  EXPECT_EQ(rig.etcd_.revision(), revision);
  EXPECT_TRUE(rig.registered_on(previous));
}

TEST(Registrar, AfterAdoptingDeletesTheKeyOfAServiceThatIsNowWithdrawn) {
  // The previous process registered the service; this one starts with it critical (not published). The
  // key must go from the adopted lease, which only a read after the adoption can tell.
  auto keys = service_keys(2);
  keys[0].published = false;
  RegistrarRig rig(keys);
  const int64_t previous = rig.etcd_.grant_lease(10s);
  for (const auto& k : rig.keys_) rig.etcd_.put(k.key, k.value, previous);
  rig.start(previous);
  ASSERT_TRUE(rig.run([&] { return !rig.etcd_.get(rig.keys_[0].key); })) << "the withdrawn key stayed";
  EXPECT_EQ(rig.lease(), previous);
  EXPECT_EQ(rig.etcd_.get(rig.keys_[1].key)->lease, previous);
  EXPECT_EQ(rig.etcd_.grants(), 0);
}

TEST(Registrar, RegistersOnANewLeaseWhenThePreviousOneIsGone) {
  RegistrarRig rig(service_keys(2));
  const int64_t previous = rig.etcd_.grant_lease(10s);
  rig.etcd_.expire_lease(previous);
  rig.start(previous);
  ASSERT_TRUE(rig.run([&] { return rig.ready_ > 0; }));
  EXPECT_NE(rig.lease(), previous);
  EXPECT_EQ(rig.etcd_.grants(), 1);
  EXPECT_TRUE(rig.registered_on(rig.lease()));
}

TEST(Registrar, GivesUpAdoptionAfterOneTtlOfSilenceAndRegistersOnANewLease) {
  RegistrarRig rig(service_keys(1), 10s);
  const int64_t previous = rig.etcd_.grant_lease(10s);
  rig.etcd_.set_silent(true);
  rig.start(previous);
  // Each check times out and is retried with backoff; the clock moves 3 s while each is in flight. Within
  // one TTL the registrar keeps asking (the lease may still be alive); an answer (here a timeout) that
  // comes past it gives up: the lease has expired by then anyway.
  for (int tries = 1; tries <= 4; ++tries) {
    ASSERT_TRUE(rig.run([&] { return rig.etcd_.time_to_live_calls() == tries; }));
    EXPECT_EQ(rig.etcd_.grants(), 0) << "gave up after " << 3 * (tries - 1) << " s of a 10 s TTL";
    rig.advance(3s);
  }
  ASSERT_TRUE(rig.run([&] { return rig.etcd_.grants() > 0; }));
  EXPECT_EQ(rig.etcd_.time_to_live_calls(), 4);
  rig.etcd_.set_silent(false);
  ASSERT_TRUE(rig.run([&] { return rig.ready_ > 0; }));
  EXPECT_NE(rig.lease(), previous);
  EXPECT_TRUE(rig.registered_on(rig.lease()));
}

TEST(Registrar, StopRevokesTheLeaseWhichDeletesEveryKey) {
  RegistrarRig rig(service_keys(3));
  rig.start();
  ASSERT_TRUE(rig.run([&] { return rig.ready_ > 0; }));
  const int64_t lease = rig.lease();
  rig.stop(1s);
  EXPECT_FALSE(rig.etcd_.has_lease(lease));
  EXPECT_TRUE(rig.none_in_etcd());
}

TEST(Registrar, StopEndsWithinItsBudgetWhenEtcdIsSilent) {
  RegistrarRig rig(service_keys(3));
  rig.start();
  ASSERT_TRUE(rig.run_until_watching());
  rig.etcd_.set_silent(true, 10s);  // calls without a deadline of their own would hang far past the bound
  const auto took = rig.stop(300ms);
  EXPECT_GE(took, 300ms);  // it did wait for the revoke's answer
  EXPECT_LT(took, 1500ms);
  EXPECT_EQ(rig.etcd_.revokes(), 1);
  EXPECT_TRUE(rig.registered_on(rig.lease()));  // nothing reached etcd: the keys expire with the lease
}

TEST(Registrar, KeepaliveWritesNeverOverlapAndAnOwedOneGoesOutWhenTheWriteCompletes) {
  RegistrarRig rig(service_keys(1), 10s);
  rig.etcd_.hold_keepalive_writes(true);
  rig.start();
  ASSERT_TRUE(rig.run([&] { return rig.ready_ > 0 && !rig.etcd_.keepalives().empty(); }));
  const auto& stream = *rig.etcd_.keepalives().front();
  // The first keepalive goes out at once if the stream came up after the grant, else TTL/3 after it.
  if (!rig.run([&] { return stream.writes() == 1; }, 100ms)) rig.advance(3500ms);
  ASSERT_TRUE(rig.run([&] { return stream.writes() == 1; }));
  // The next falls due TTL/3 later while the first write is still in flight: it is owed, not stacked.
  rig.advance(3500ms);
  ASSERT_TRUE(rig.run([&] { return rig.registrar_->keepalive_gate().owed().has_value(); }));
  EXPECT_EQ(stream.writes(), 1);
  EXPECT_EQ(stream.max_writes_in_flight(), 1);
  rig.etcd_.hold_keepalive_writes(false);
  ASSERT_TRUE(rig.run([&] { return stream.writes() >= 2; }));
  EXPECT_EQ(stream.max_writes_in_flight(), 1);
  EXPECT_EQ(rig.etcd_.grants(), 1);  // the lease held throughout
}

TEST(Registrar, ReconnectsTheKeepaliveStreamAndSendsAKeepaliveAtOnce) {
  RegistrarRig rig(service_keys(1));
  rig.start();
  ASSERT_TRUE(rig.run([&] { return rig.ready_ > 0 && !rig.etcd_.keepalives().empty(); }));
  rig.etcd_.end_keepalives(EtcdStatus::failure(14, "fake etcd: connection reset"));
  // TTL is 10 s: a keepalive on the new stream within the bound can only be the reconnect's own.
  ASSERT_TRUE(rig.run([&] { return rig.etcd_.keepalives().size() == 2 && rig.etcd_.keepalives()[1]->writes() == 1; }));
  EXPECT_EQ(rig.etcd_.grants(), 1);
}

TEST(Registrar, ReregistersOnANewLeaseWhenEtcdLosesIt) {
  RegistrarRig rig(service_keys(2));
  rig.start();
  ASSERT_TRUE(rig.run_until_watching());
  const int64_t first = rig.lease();
  rig.etcd_.wipe();  // etcd restarted without its data: keys and leases gone
  ASSERT_TRUE(rig.run([&] { return rig.lease() != first && rig.registered_on(rig.lease()); }));
  EXPECT_EQ(rig.etcd_.grants(), 2);
}

TEST(Registrar, AddedKeyIsRegisteredAndWatched) {
  RegistrarRig rig(service_keys(1));
  rig.start();
  ASSERT_TRUE(rig.run_until_watching());
  core::DesiredKey extra{"/services/billing/b-1", R"({"address":"10.0.1.1","port":9090})"};
  rig.registrar_->add_key(extra);
  rig.keys_.push_back(extra);
  ASSERT_TRUE(rig.run([&] { return rig.registered_on(rig.lease()); }));
  // The watch was restarted to cover it: a delete of the new key is noticed and undone.
  ASSERT_TRUE(rig.run([&] {
    return rig.etcd_.open_watches() == 1 && rig.etcd_.watches().back()->creates().size() == 2;
  }));
  rig.etcd_.erase(extra.key);
  ASSERT_TRUE(rig.run([&] { return rig.registered_on(rig.lease()); }));
}

TEST(Registrar, UpdatedValueIsRewrittenInPlaceOnTheSameLease) {
  RegistrarRig rig(service_keys(2));
  rig.start();
  ASSERT_TRUE(rig.run_until_watching());
  const int64_t lease = rig.lease();
  const int64_t created = rig.etcd_.get(rig.keys_[1].key)->create_revision;
  rig.keys_[1].value = R"({"address":"10.0.0.1","port":9443})";
  rig.registrar_->update_value(1, rig.keys_[1].value);
  ASSERT_TRUE(rig.run([&] { return rig.registered_on(lease); }));
  EXPECT_EQ(rig.etcd_.get(rig.keys_[1].key)->create_revision, created);  // rewritten, never deleted
  EXPECT_EQ(rig.etcd_.grants(), 1);
}

// A value source per key: its state (warning, maintenance) is written in place; maintenance keeps the key of
// a critical service, and ending it withdraws the key.
TEST(Registrar, StateChangesRewriteTheValueInPlaceAndMaintenanceKeepsACriticalKey) {
  RegistrarRig rig(service_keys(1));
  rig.registrar_->set_value_source(0, [&](core::InstanceState state) {
    return state == core::InstanceState::kPassing ? rig.keys_[0].value
                                                  : R"({"state":")" + std::string(core::to_string(state)) + R"("})";
  });
  rig.start();
  ASSERT_TRUE(rig.run_until_watching());
  const std::string key = rig.keys_[0].key;
  const int64_t created = rig.etcd_.get(key)->create_revision;
  auto value_is = [&](const std::string& v) {
    const auto kv = rig.etcd_.get(key);
    return kv && kv->value == v;
  };

  rig.registrar_->set_service_health(0, core::HealthStatus::kWarning, "test");
  ASSERT_TRUE(rig.run([&] { return value_is(R"({"state":"warning"})"); }));
  rig.registrar_->set_maintenance(0, true, "test");
  ASSERT_TRUE(rig.run([&] { return value_is(R"({"state":"maintenance"})"); }));
  rig.registrar_->set_service_health(0, core::HealthStatus::kCritical, "test");
  EXPECT_EQ(rig.registrar_->instance_state(0), core::InstanceState::kMaintenance);
  EXPECT_TRUE(rig.registrar_->state().published(0)) << "maintenance keeps a critical service's key";
  EXPECT_EQ(rig.etcd_.get(key)->create_revision, created) << "every change rewritten in place";

  rig.registrar_->set_maintenance(0, false, "test");
  ASSERT_TRUE(rig.run([&] { return !rig.etcd_.get(key); })) << "out of maintenance, critical: withdrawn";
  rig.registrar_->set_service_health(0, core::HealthStatus::kPassing, "test");
  ASSERT_TRUE(rig.run([&] { return value_is(rig.keys_[0].value); })) << "published again with the passing value";
  EXPECT_EQ(rig.etcd_.grants(), 1);
}

TEST(Registrar, RemovedKeyIsDeletedAndTheOthersStay) {
  RegistrarRig rig(service_keys(2));
  rig.start();
  ASSERT_TRUE(rig.run([&] { return rig.ready_ > 0; }));
  rig.registrar_->remove_key(0);
  ASSERT_TRUE(rig.run([&] { return !rig.etcd_.get(rig.keys_[0].key); }));
  EXPECT_TRUE(rig.etcd_.get(rig.keys_[1].key).has_value());
  EXPECT_TRUE(rig.etcd_.has_lease(rig.lease()));
}

TEST(Registrar, DrainWithdrawsEveryKeyKeepingTheLeaseAndUndrainPublishesThemAgain) {
  RegistrarRig rig(service_keys(2));
  rig.start();
  ASSERT_TRUE(rig.run([&] { return rig.ready_ > 0; }));
  const int64_t lease = rig.lease();
  rig.registrar_->set_drained(true, "test");
  ASSERT_TRUE(rig.run([&] { return rig.none_in_etcd(); }));
  EXPECT_TRUE(rig.etcd_.has_lease(lease));
  rig.registrar_->set_drained(false, "test");
  ASSERT_TRUE(rig.run([&] { return rig.registered_on(lease); }));
}

TEST(Registrar, LeavesAKeyOnAnotherAgentsLeaseAloneWhenWithdrawing) {
  RegistrarRig rig(service_keys(1));
  rig.start();
  ASSERT_TRUE(rig.run_until_watching());
  rig.registrar_->set_drained(true, "test");
  ASSERT_TRUE(rig.run([&] { return rig.none_in_etcd(); }));
  // Another agent takes the name over while this one is drained; stopping must not delete its key.
  const int64_t other = rig.etcd_.grant_lease(10s);
  rig.etcd_.put(rig.keys_[0].key, R"({"address":"10.7.7.7","port":1})", other);
  rig.stop(1s);
  ASSERT_TRUE(rig.etcd_.get(rig.keys_[0].key).has_value());
  EXPECT_EQ(rig.etcd_.get(rig.keys_[0].key)->lease, other);
}

}  // namespace
}  // namespace sidecar::runtime
