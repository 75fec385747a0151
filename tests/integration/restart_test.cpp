// Restart without a gap: a new agent process adopts the lease its predecessor left (after kill -9, or a
// SIGQUIT handover), so the registration never disappears and watchers see no event at all.
#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <optional>
#include <string>

#include "tests/support/agent_fixture.hpp"
#include "tests/support/agent_process.hpp"
#include "tests/support/etcd_client.hpp"
#include "tests/support/etcd_process.hpp"
#include "tests/support/process.hpp"
#include "tests/support/wait.hpp"

namespace sidecar::test {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

constexpr auto kTtl = 3s;
constexpr int kExitHandover = 75;
const ServiceDef kService{.name = "order-service", .id = "order-1", .address = "10.0.0.7", .port = 9090, .metadata = {}};

class RestartWithoutGap : public EtcdAgentFixture {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(EtcdAgentFixture::SetUp());
    manifest_ = registration_manifest(etcd_->client_url(), {kService}, "3s");
  }

  void dump_logs() const override {
    if (first_) dump_agent_log(*first_, "first agent");
    if (second_) dump_agent_log(*second_, "second agent");
    dump_etcd_log_tail();
  }

  // Same directory and name for every process: the same manifest path, so the same state file.
  std::unique_ptr<AgentProcess> start_agent() { return AgentProcess::start_in(dir_.path(), manifest_, {}, "agent"); }

  // The key with its lease, once registered.
  std::int64_t wait_registered() {
    std::int64_t lease = 0;
    wait_until([&] {
      auto kv = client_->get(key_);
      lease = kv ? kv->lease : 0;
      return lease != 0;
    }, 10s);
    return lease;
  }

  // The lease state file, once the agent has written it (written after the lease is granted, on the agent's
  // writer thread, so it can lag behind the key; a file still being written has another name).
  fs::path wait_for_state_file() {
    fs::path found;
    wait_until([&] {
      std::error_code ec;
      for (const auto& entry : fs::directory_iterator(dir_.path() / "state", ec)) {
        if (entry.path().extension() == ".lease") found = entry.path();
      }
      return !found.empty();
    }, 5s);
    return found;
  }

  // For `period`, the key never goes missing and stays on `lease` (checked every 50 ms).
  ::testing::AssertionResult key_held_throughout(std::int64_t lease, std::chrono::milliseconds period) {
    const auto end = std::chrono::steady_clock::now() + period;
    while (std::chrono::steady_clock::now() < end) {
      auto kv = client_->get(key_);
      if (!kv) return ::testing::AssertionFailure() << key_ << " disappeared";
      if (kv->lease != lease) return ::testing::AssertionFailure() << key_ << " moved to lease " << kv->lease;
      std::this_thread::sleep_for(50ms);
    }
    return ::testing::AssertionSuccess();
  }

  // Hands over from first_ to second_ with `stop_first`, then checks that nothing at all happened in etcd.
  void expect_gapless_handover(const std::function<void()>& stop_first) {
    first_ = start_agent();
    ASSERT_TRUE(first_);
    const std::int64_t lease = wait_registered();
    ASSERT_NE(lease, 0);
    ASSERT_FALSE(wait_for_state_file().empty()) << "no lease state file";
    WatchRecorder watch(etcd_->endpoint(), key_);
    ASSERT_TRUE(watch.created());

    stop_first();
    second_ = start_agent();
    ASSERT_TRUE(second_);
    ASSERT_TRUE(wait_until([&] { return second_->count_in_output("adopted from the previous process") == 1; }, 10s));
    ASSERT_TRUE(wait_until([&] { return second_->count_in_output("registered " + key_) == 1; }, 10s));
    // Past more than a TTL from the predecessor's last keepalive, the key is still there on the same lease.
    EXPECT_TRUE(key_held_throughout(lease, kTtl + 1500ms));
    EXPECT_GT(client_->lease_ttl(lease).ttl, 0);
    EXPECT_TRUE(watch.events().empty()) << watch.events().size() << " event(s) on " << key_
                                        << ": the registration was rewritten or deleted";

    // The successor owns it now: SIGTERM deregisters as usual and removes the state file.
    EXPECT_EQ(second_->terminate(), 0);
    EXPECT_FALSE(client_->get(key_).has_value());
    EXPECT_TRUE(fs::is_empty(dir_.path() / "state"));
  }

  TempDir dir_{"restart-it"};
  std::string manifest_;
  const std::string key_ = service_key(kService);
  std::unique_ptr<AgentProcess> first_;
  std::unique_ptr<AgentProcess> second_;
};

TEST_F(RestartWithoutGap, AgentKilledWithSigkillIsSucceededByOneThatAdoptsItsLease) {
  expect_gapless_handover([&] { first_->process().kill_and_reap(); });
}

TEST_F(RestartWithoutGap, SigquitLeavesLeaseAndKeysForTheNextProcess) {
  expect_gapless_handover([&] {
    ASSERT_TRUE(first_->process().signal(SIGQUIT));
    EXPECT_EQ(first_->process().wait_exit(2s), kExitHandover);
    EXPECT_EQ(first_->count_in_output("SIGQUIT: leaving lease"), 1u) << first_->output();
    EXPECT_TRUE(client_->get(key_).has_value()) << "SIGQUIT must not deregister";
  });
}

TEST_F(RestartWithoutGap, ExpiredPreviousLeaseIsReplacedByANewOne) {
  first_ = start_agent();
  ASSERT_TRUE(first_);
  const std::int64_t old_lease = wait_registered();
  ASSERT_NE(old_lease, 0);
  ASSERT_FALSE(wait_for_state_file().empty()) << "no lease state file";
  first_->process().kill_and_reap();
  ASSERT_TRUE(wait_until([&] { return !client_->get(key_).has_value(); }, kTtl + 3s)) << "the lease never expired";

  second_ = start_agent();
  ASSERT_TRUE(second_);
  const std::int64_t new_lease = wait_registered();
  EXPECT_NE(new_lease, 0);
  EXPECT_NE(new_lease, old_lease);
  EXPECT_EQ(second_->count_in_output("previous lease"), 1u) << second_->output();
  EXPECT_EQ(second_->count_in_output("adopted"), 0u);
  EXPECT_EQ(second_->terminate(), 0);
}

TEST_F(RestartWithoutGap, CorruptStateFileIsReportedAndIgnored) {
  // Find the state file name by running once, then damage it.
  first_ = start_agent();
  ASSERT_TRUE(first_);
  ASSERT_NE(wait_registered(), 0);
  const fs::path state_file = wait_for_state_file();
  ASSERT_FALSE(state_file.empty()) << "no lease state file";
  first_->process().kill_and_reap();
  ASSERT_TRUE(write_file(state_file, "{\"lease_id\": 12"));

  second_ = start_agent();
  ASSERT_TRUE(second_);
  ASSERT_TRUE(wait_until([&] { return second_->count_in_output("registered " + key_) == 1; }, 10s))
      << second_->output();
  EXPECT_EQ(second_->count_in_output("ignoring the lease state file: not a JSON object"), 1u);
  EXPECT_EQ(second_->terminate(), 0);
}

}  // namespace
}  // namespace sidecar::test
