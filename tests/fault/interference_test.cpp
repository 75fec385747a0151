// Other clients of the same etcd interfere with the agent's key, its lease and its discovered service.
#include <gtest/gtest.h>

#include <random>
#include <set>
#include <thread>

#include "tests/fault/fault_fixture.hpp"
#include "tests/support/bulk_writer.hpp"

namespace sidecar::test {
namespace {

class Interference : public FaultTest {};

TEST_F(Interference, OurKeyDeletedIsWrittenBackEveryTime) {
  seed();
  start_agent();
  require_seeds_listed();
  for (int round = 0; round < 5; ++round) {
    ASSERT_EQ(client_->del(self_key()), 1) << "round " << round;
    ASSERT_TRUE(registered(5s)) << "round " << round;
  }
  EXPECT_TRUE(converged());
  expect_files_never_broken();
  expect_rss_flat();
  expect_clean_shutdown();
}

TEST_F(Interference, OurLeaseRevokedIsReplaced) {
  seed();
  start_agent();
  require_seeds_listed();
  for (int round = 0; round < 3; ++round) {
    const std::int64_t lease = self_lease();
    ASSERT_NE(lease, 0);
    ASSERT_TRUE(client_->lease_revoke(lease)) << client_->last_error();
    ASSERT_TRUE(wait_until([&] { return self_lease() != lease && self_lease() != 0; }, 5s)) << "round " << round;
    ASSERT_TRUE(registered(5s)) << "round " << round;
  }
  EXPECT_TRUE(converged());
  expect_files_never_broken();
  expect_rss_flat();
  expect_clean_shutdown();
}

TEST_F(Interference, OurKeyOverwrittenWithAnotherValueIsRestored) {
  start_agent();
  const std::int64_t lease = self_lease();
  for (int round = 0; round < 3; ++round) {
    ASSERT_GT(client_->put(self_key(), instance_value(kSelfId, 1234)), 0);  // no lease, wrong port
    ASSERT_TRUE(registered(5s)) << "round " << round;
    EXPECT_EQ(self_lease(), lease) << "the lease was fine, so the same lease should hold the restored key";
  }
  EXPECT_TRUE(converged());
  expect_files_never_broken();
  expect_clean_shutdown();
}

TEST_F(Interference, OurKeyTakenUnderAnotherLiveLeaseIsLeftAloneUntilThatLeaseEnds) {
  start_agent();
  const std::int64_t foreign = client_->lease_grant(30);
  ASSERT_NE(foreign, 0);
  const std::string foreign_value = instance_value(kSelfId, 4321);
  ASSERT_GT(client_->put(self_key(), foreign_value, foreign), 0);
  // Another agent's live lease holds the key: never overwrite it (that would be a registration fight).
  EXPECT_FALSE(wait_until(
      [&] {
        const auto kv = client_->get(self_key());
        return !kv || kv->value != foreign_value || kv->lease != foreign;
      },
      3s))
      << "the agent overwrote a key held by another live lease";
  EXPECT_TRUE(agent_->is_running());
  ASSERT_TRUE(client_->lease_revoke(foreign));
  EXPECT_TRUE(registered(5s)) << "once the other lease is gone, the key is ours again";
  EXPECT_TRUE(converged());
  expect_files_never_broken();
  expect_clean_shutdown();
}

TEST_F(Interference, SecondAgentWithTheSameIdWaitsAndTakesOverWhenTheFirstLeaves) {
  start_agent();
  AgentConfig second;
  second.port = 9002;
  second.name = "second";
  auto other = launch_agent(second);
  ASSERT_NE(other, nullptr);
  // Both alive: the first keeps the key; neither crashes, and they do not flap it back and forth.
  const auto kv = client_->get(self_key());
  ASSERT_TRUE(kv.has_value());
  EXPECT_FALSE(wait_until([&] { const auto now = client_->get(self_key()); return !now || now->mod_revision != kv->mod_revision; }, 3s))
      << "the key changed hands while its owner was alive";
  EXPECT_TRUE(other->is_running());
  EXPECT_TRUE(agent_->is_running());

  monitor_->stop();
  EXPECT_EQ(agent_->terminate(5s), 0);
  EXPECT_TRUE(registered(10s, second)) << "the second agent should take over once the first deregistered";
  EXPECT_EQ(other->terminate(5s), 0);
  EXPECT_TRUE(wait_until([&] { return !client_->get(self_key()).has_value() && client_->last_error().empty(); }, 2s));
  if (HasFailure()) std::cerr << "---- second agent log ----\n" << other->output() << "\n";
}

TEST_F(Interference, AgentKilledWithoutDeregisteringLeavesNoKeyBeyondTheTtl) {
  start_agent(with_ttl("2s"));
  const auto killed_at = std::chrono::steady_clock::now();
  agent_->process().kill_and_reap();
  ASSERT_TRUE(wait_until([&] { return !client_->get(self_key()).has_value() && client_->last_error().empty(); }, 5s))
      << "the key outlived its dead agent";
  // The lease was kept alive up to the kill, so the key lasts about one TTL after it, not much less.
  EXPECT_GT(std::chrono::steady_clock::now() - killed_at, 500ms) << "the key vanished before its lease could expire";
  expect_files_never_broken();  // a dead agent leaves its last files behind, complete
}

TEST_F(Interference, TenThousandOtherInstancesChurningDoNotDisturbUs) {
  start_agent();
  BulkWriter writer(etcd_->endpoint());
  constexpr int kInstances = 10000;
  std::vector<BulkOp> ops;
  for (int i = 0; i < kInstances; ++i) {
    const std::string id = "churn-" + std::to_string(i);
    ops.push_back({self_key(id), instance_value(id, 10000 + i)});
  }
  ASSERT_GT(writer.apply(ops), 0) << writer.last_error();
  ASSERT_TRUE(converged(60s));
  baseline_rss_kib_ = rss_kib(agent_->pid()).value_or(0);  // the set is loaded; from here it must stay flat

  // Churn: batches of puts (new ports), deletes and re-adds across the whole range, for a few seconds.
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> pick(0, kInstances - 1);
  int key_missing = 0;
  const auto until = std::chrono::steady_clock::now() + 6s;
  int round = 0;
  while (std::chrono::steady_clock::now() < until) {
    std::vector<BulkOp> batch;
    std::set<int> used;
    for (int n = 0; n < 300; ++n) {
      const int i = pick(rng);
      if (!used.insert(i).second) continue;
      const std::string id = "churn-" + std::to_string(i);
      if ((n + round) % 3 == 0) {
        batch.push_back({self_key(id), "", true});
      } else {
        batch.push_back({self_key(id), instance_value(id, 20000 + (i + round) % 30000)});
      }
    }
    ASSERT_GT(writer.apply(batch), 0) << writer.last_error();
    if (!client_->get(self_key()).has_value()) ++key_missing;
    ++round;
  }
  EXPECT_EQ(key_missing, 0) << "our key vanished during other instances' churn";
  EXPECT_TRUE(converged(60s));
  EXPECT_TRUE(registered(1s));
  expect_files_never_broken();
  expect_rss_flat(16 * 1024);
  expect_clean_shutdown();
}

}  // namespace
}  // namespace sidecar::test
