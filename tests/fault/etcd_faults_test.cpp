// etcd itself fails under a running agent: crash, wipe, freeze, network cut, compaction. Each test checks
// the files while the fault lasts (InvariantMonitor) and the registry and files once it is over.
#include <gtest/gtest.h>

#include <thread>

#include "tests/fault/fault_fixture.hpp"
#include "tests/support/bulk_writer.hpp"
#include "tests/support/tcp_proxy.hpp"

namespace sidecar::test {
namespace {

class EtcdFault : public FaultTest {};

TEST_F(EtcdFault, Kill9AndRestartWithSameDataKeepsFilesAndRegistration) {
  seed();
  start_agent();
  require_seeds_listed();
  etcd_->kill9();
  // Down for longer than the TTL: the agent's keepalives and watches fail the whole time.
  ASSERT_FALSE(wait_until([&] { return !agent_->is_running(); }, 3s)) << "the agent died with etcd";
  ASSERT_TRUE(etcd_->restart());
  ASSERT_TRUE(registered());
  // Changes after the restart reach the files: the watches were re-established.
  ASSERT_GT(client_->put(self_key("after-restart"), instance_value("after-restart", 7100)), 0);
  ASSERT_GT(client_->put(std::string(kFaultConfigPrefix) + "flag-0", "changed"), 0);
  EXPECT_TRUE(converged());
  expect_files_never_broken();
  expect_rss_flat();
  expect_clean_shutdown();
}

TEST_F(EtcdFault, RestartWithWipedDataReRegistersAndDropsWhatIsGone) {
  seed();
  start_agent();
  ASSERT_TRUE(etcd_->restart_wiped());
  // A brand-new store at revision 1: the agent must notice the revisions went back, re-register and
  // resync, so the files lose the seeded keys and gain what the new store gets.
  ASSERT_GT(client_->put(self_key("new-store"), instance_value("new-store", 7200)), 0);
  ASSERT_TRUE(registered());
  EXPECT_TRUE(converged());
  const auto doc = read_json_file(discovery_file());
  ASSERT_TRUE(doc.has_value());
  EXPECT_EQ(endpoints_in_file(*doc).count("other-0"), 0u) << "an instance of the wiped store is still listed";
  expect_files_never_broken();
  expect_rss_flat();
  expect_clean_shutdown();
}

TEST_F(EtcdFault, FrozenLongerThanTheLeaseTtlThenThawedReRegisters) {
  seed();
  start_agent(with_ttl("2s"));
  require_seeds_listed();
  const std::int64_t old_lease = self_lease();
  ASSERT_NE(old_lease, 0);
  ASSERT_TRUE(etcd_->sigstop());
  std::this_thread::sleep_for(4s);  // the fault itself: twice the TTL with etcd answering nothing
  ASSERT_TRUE(agent_->is_running());
  ASSERT_TRUE(etcd_->sigcont());
  // On waking, etcd finds the lease expired and revokes it with our key; the agent must register again.
  ASSERT_TRUE(registered(15s));
  EXPECT_TRUE(wait_until([&] { return client_->lease_ttl(old_lease).ttl == -1; }, 5s))
      << "the old lease should have expired while etcd was frozen";
  EXPECT_NE(self_lease(), old_lease);
  ASSERT_GT(client_->put(self_key("after-thaw"), instance_value("after-thaw", 7300)), 0);
  EXPECT_TRUE(converged());
  expect_files_never_broken();
  expect_rss_flat();
  expect_clean_shutdown();
}

TEST_F(EtcdFault, NetworkCutLongerThanTheTtlThenHealedReRegistersAndResyncs) {
  auto proxy = TcpProxy::start(static_cast<std::uint16_t>(etcd_->spec().client_port));
  ASSERT_NE(proxy, nullptr);
  seed();
  AgentConfig config;
  config.endpoint_url = proxy->client_url();
  start_agent(config);
  require_seeds_listed();
  const std::int64_t old_lease = self_lease();

  proxy->blackhole();
  const auto before = proxy->bytes_forwarded();
  // While the agent is cut off, the server expires its lease (so the cut is real) and others write.
  ASSERT_TRUE(wait_until([&] { return !client_->get(self_key()).has_value() && client_->last_error().empty(); }, 8s))
      << "the agent's key should expire on the server while the network is cut";
  ASSERT_GT(client_->put(self_key("during-cut"), instance_value("during-cut", 7400)), 0);
  ASSERT_GT(client_->put(std::string(kFaultConfigPrefix) + "during-cut", "x"), 0);
  // The agent has given up on its lease in the dark (its own deadline, no answer within the TTL): it has
  // reacted to the cut by then, and kept trying through the proxy all along.
  ASSERT_TRUE(agent_->wait_for_output("lease " + lease_hex(old_lease) + " lost: no keepalive answered", 10s))
      << "the agent never noticed the cut";
  EXPECT_EQ(proxy->bytes_forwarded(), before) << "bytes crossed a black-holed proxy";
  ASSERT_TRUE(agent_->is_running());
  {
    // The files still describe the last state the agent saw: nothing was removed or emptied in the dark.
    const auto doc = read_json_file(discovery_file());
    ASSERT_TRUE(doc.has_value());
    EXPECT_EQ(endpoints_in_file(*doc).count(kSelfId), 1u);
  }

  proxy->heal();
  EXPECT_TRUE(registered(20s));
  EXPECT_NE(self_lease(), old_lease);
  EXPECT_TRUE(converged(20s));
  expect_files_never_broken();
  expect_rss_flat();
  expect_clean_shutdown();
}

TEST_F(EtcdFault, CompactionWhileTheAgentIsStoppedIsRecoveredByResync) {
  seed(6, 3);
  start_agent(with_ttl("10s"));
  ASSERT_TRUE(agent_->sigstop());
  // Everything the agent would have to replay from its last revision happens, then is compacted away,
  // and etcd restarts so the agent's watches must be re-created from that (now compacted) revision.
  for (int i = 0; i < 3; ++i) ASSERT_EQ(client_->del(self_key("other-" + std::to_string(i))), 1);
  ASSERT_GT(client_->put(self_key("other-4"), instance_value("other-4", 7999)), 0);
  ASSERT_GT(client_->put(self_key("while-stopped"), instance_value("while-stopped", 7500)), 0);
  ASSERT_EQ(client_->del(std::string(kFaultConfigPrefix) + "flag-1"), 1);
  ASSERT_GT(client_->put(std::string(kFaultConfigPrefix) + "flag-2", "changed"), 0);
  ASSERT_TRUE(client_->compact(client_->revision())) << client_->last_error();
  ASSERT_TRUE(etcd_->restart());
  ASSERT_TRUE(agent_->sigcont());
  EXPECT_TRUE(converged());
  EXPECT_TRUE(registered());
  expect_files_never_broken();
  expect_rss_flat();
  expect_clean_shutdown();
}

TEST_F(EtcdFault, FloodAndCompactionWhileTheAgentIsStoppedOnAnOpenStreamAreRecovered) {
  // Same store, same connection: the agent's watch stream stays open but nobody reads it, so etcd's
  // per-watcher buffer and the stream window fill up, then the history is compacted. (etcd 3.4 keeps a
  // stalled watcher's pending events in memory, so this does not cancel the watch; the compacted-resync
  // path is the etcd-restart scenario above. This one proves a stopped agent digests the backlog.)
  seed();
  start_agent(with_ttl("10s"));
  ASSERT_TRUE(agent_->sigstop());
  // One revision per put (a watch response each) with 4 KiB values: far more than etcd's per-watcher
  // buffer and the stream's flow-control window hold, so etcd must park the watcher as unsynced.
  const std::string pad(4096, 'p');
  std::vector<BulkOp> dels;
  for (int i = 0; i < 800; ++i) {
    const std::string id = "stalled-" + std::to_string(i);
    auto value = nlohmann::json::parse(instance_value(id, 1000 + i));
    value["metadata"]["pad"] = pad;
    ASSERT_GT(client_->put(self_key(id), value.dump()), 0) << client_->last_error();
    if (i % 4 != 0) dels.push_back({self_key(id), "", true});
  }
  BulkWriter writer(etcd_->endpoint());
  ASSERT_GT(writer.apply(dels), 0) << writer.last_error();
  ASSERT_EQ(client_->del(self_key("other-1")), 1);
  ASSERT_TRUE(client_->compact(client_->revision())) << client_->last_error();
  ASSERT_TRUE(agent_->sigcont());
  EXPECT_TRUE(converged(30s));
  EXPECT_TRUE(registered());
  expect_files_never_broken();
  expect_clean_shutdown();
}

}  // namespace
}  // namespace sidecar::test
