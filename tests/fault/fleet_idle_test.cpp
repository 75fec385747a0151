// A discovery of 100,000 instances must keep its one watch stream while nothing changes. Reported: the
// stream ended ("Socket closed") about 30 s after the first sync, forcing a full 10 MB re-read, while a
// handful of instances on the same etcd did not. This idles three minutes and then proves the watch is
// the same live stream: a change arrives without any re-read.
#include <gtest/gtest.h>

#include <iostream>

#include "tests/fault/fault_fixture.hpp"
#include "tests/support/bulk_writer.hpp"

namespace sidecar::test {
namespace {

constexpr int kInstances = 100000;
// SIDECAR_FLEET_IDLE_SECONDS shortens it by hand; the default is the three minutes the issue asked for.
const int kIdleSeconds = std::getenv("SIDECAR_FLEET_IDLE_SECONDS") ? std::atoi(std::getenv("SIDECAR_FLEET_IDLE_SECONDS")) : 180;

class FleetIdle : public FaultTest {};

TEST_F(FleetIdle, HundredThousandInstancesIdleThreeMinutesWithoutAStreamRestart) {
  std::vector<BulkOp> ops;
  ops.reserve(kInstances);
  for (int i = 0; i < kInstances; ++i) {
    const std::string id = "n-" + std::to_string(i);
    ops.push_back({kFaultServicePrefix + id, instance_value(id, 10000 + i % 50000)});
  }
  BulkWriter writer(etcd_->endpoint(), std::chrono::seconds(60));
  ASSERT_GT(writer.apply(ops), 0) << writer.last_error();

  agent_ = AgentProcess::start_in(dir_.path(), manifest(with_ttl("10s")), {"--log-level", "info"});
  ASSERT_NE(agent_, nullptr);
  const std::string synced = "catalog fault-svc: synced ";
  ASSERT_TRUE(agent_->wait_for_output(synced, 60s)) << "the first read of 100,000 instances never finished";
  const auto file_has = [&](const std::string& id) {
    const auto doc = read_json_file(discovery_file());
    return doc && endpoints_in_file(*doc).count(id) > 0;
  };
  ASSERT_TRUE(wait_until([&] { return file_has("n-99999"); }, 60s)) << "the file never listed every instance";

  const auto idle_until = std::chrono::steady_clock::now() + std::chrono::seconds(kIdleSeconds);
  // Watched the whole time, so a restart is seen when it happens, not only at the end.
  bool restarted = false;
  while (std::chrono::steady_clock::now() < idle_until && !restarted) {
    restarted = agent_->count_in_output("stream ended") > 0 || agent_->count_in_output(synced) > 1;
    if (!restarted) wait_until([&] { return agent_->count_in_output("stream ended") > 0; }, 5s, 500ms);
  }
  EXPECT_FALSE(restarted) << "the watch restarted while idle:\n" << agent_->output();

  // The positive marker: one more instance reaches the file through the same watch, with no re-read.
  ASSERT_GT(client_->put(self_key("late"), instance_value("late", 7999)), 0);
  EXPECT_TRUE(wait_until([&] { return file_has("late"); }, 30s)) << "the watch no longer delivers events";
  EXPECT_EQ(agent_->count_in_output(synced), 1u) << "the prefix was read again";
  EXPECT_EQ(agent_->count_in_output("stream ended"), 0u);
  std::cout << kInstances << " instances idled " << kIdleSeconds << " s with "
            << agent_->count_in_output("stream ended") << " stream restart(s)\n";
  expect_clean_shutdown();
}

}  // namespace
}  // namespace sidecar::test
