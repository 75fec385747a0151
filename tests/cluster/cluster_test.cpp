// The agent against a real 3-member etcd cluster that loses members: the leader killed, the member the
// agent talks to frozen (SIGSTOP) and thawed. The key must never disappear, discovery must go on, and the
// agent must move before its lease is at risk. One cluster is shared by the suite (and healed after each
// test) to keep the run time down. Figures are printed for docs/scaling.md.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <cstdint>
#include <vector>

#include "tests/support/agent_process.hpp"
#include "tests/support/etcd_client.hpp"
#include "tests/support/etcd_process.hpp"
#include "tests/support/process.hpp"
#include "tests/support/wait.hpp"

namespace sidecar::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

long ms_since(Clock::time_point t) {
  return static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count());
}

bool file_has(const std::filesystem::path& path, const std::string& text) {
  const auto content = read_file(path);
  return content && content->find(text) != std::string::npos;
}

size_t count_of(const std::string& haystack, const std::string& needle) {
  size_t n = 0;
  for (size_t at = haystack.find(needle); at != std::string::npos; at = haystack.find(needle, at + 1)) ++n;
  return n;
}

// True once `rounds` keepalives of `lease` were seen: its remaining TTL (whole seconds, counting down
// between keepalives) going back up. Samples that fail (an election in progress) are skipped.
bool wait_for_keepalives(EtcdSyncClient& client, std::int64_t lease, int rounds, std::chrono::milliseconds timeout) {
  std::int64_t last = -1;
  int seen = 0;
  return wait_until(
      [&] {
        const std::int64_t ttl = client.lease_ttl(lease).ttl;
        if (ttl < 0) return false;
        if (last >= 0 && ttl > last) ++seen;
        last = ttl;
        return seen >= rounds;
      },
      timeout, 100ms);
}

class ClusterFailover : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { cluster_ = EtcdCluster::start(3).release(); }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(cluster_, nullptr) << "3-member cluster did not start";
    // Heal whatever the previous test left: every member running and a leader agreed on.
    for (size_t i = 0; i < cluster_->size(); ++i) {
      cluster_->member(i).sigcont();
      if (!cluster_->member(i).is_running()) ASSERT_TRUE(cluster_->restart_member(i));
    }
    ASSERT_TRUE(cluster_->wait_for_leader(20s));
  }

  // Client URLs with member `first` first: the agent starts on its first endpoint.
  static std::string endpoints_starting_with(size_t first) {
    std::string list = "\"" + cluster_->member(first).client_url() + "\"";
    for (size_t i = 0; i < cluster_->size(); ++i) {
      if (i != first) list += ", \"" + cluster_->member(i).client_url() + "\"";
    }
    return list;
  }

  static std::string manifest(size_t first, const std::string& id, const std::filesystem::path& out,
                              const std::string& ttl = "6s") {
    return "etcd:\n  endpoints: [" + endpoints_starting_with(first) + "]\nlease:\n  ttl: " + ttl + "\nservices:\n  - {name: app, id: " +
           id + ", port: 8080}\ndiscover:\n  - {service: peer, output: \"" + out.string() + "\", format: lines}\n";
  }

  // A put that rides out an election: retried on another member until one accepts it.
  static bool put_anywhere(const std::string& key, const std::string& value, size_t avoid) {
    return wait_until(
        [&] {
          for (size_t i = 0; i < cluster_->size(); ++i) {
            if (i == avoid || !cluster_->member(i).is_running()) continue;
            EtcdSyncClient c(cluster_->member(i).endpoint(), 2s);
            if (c.put(key, value) > 0) return true;
          }
          return false;
        },
        15s, 100ms);
  }

  static EtcdCluster* cluster_;
  TempDir dir_{"sidecar-cluster"};
};

EtcdCluster* ClusterFailover::cluster_ = nullptr;

TEST_F(ClusterFailover, KillingTheLeaderKeepsTheKeyLosesNoEventAndDoesNotReRegister) {
  const size_t leader = *cluster_->leader_index();
  const size_t witness = (leader + 1) % cluster_->size();
  const auto out = dir_ / "peer.txt";
  auto agent = AgentProcess::start(manifest(leader, "leader-kill", out));
  ASSERT_TRUE(agent);
  EtcdSyncClient check(cluster_->member(witness).endpoint());
  ASSERT_TRUE(wait_until([&] { return check.get("/services/app/leader-kill").has_value(); }, 10s)) << agent->output();
  const auto lease = check.get("/services/app/leader-kill")->lease;
  ASSERT_TRUE(put_anywhere("/services/peer/a", R"({"address":"10.0.0.1","port":1})", leader));
  ASSERT_TRUE(wait_until([&] { return file_has(out, "10.0.0.1:1"); }, 10s)) << agent->output();

  WatchRecorder own_key(cluster_->member(witness).endpoint(), "/services/app/leader-kill");
  ASSERT_TRUE(own_key.created());
  const auto killed_at = Clock::now();
  cluster_->kill_member(leader);
  // Writes during and right after the election must all reach the agent's file.
  ASSERT_TRUE(put_anywhere("/services/peer/b", R"({"address":"10.0.0.2","port":2})", leader));
  const long first_write_ms = ms_since(killed_at);
  ASSERT_TRUE(put_anywhere("/services/peer/c", R"({"address":"10.0.0.3","port":3})", leader));
  EXPECT_TRUE(wait_until([&] { return file_has(out, "10.0.0.2:2") && file_has(out, "10.0.0.3:3"); }, 20s))
      << agent->output();
  const long discovery_ms = ms_since(killed_at);
  // Two keepalive rounds (TTL/3 = 2 s each) on the new leader prove the lease is kept, not replaced, and
  // give a wrong re-registration time to show on the key.
  ASSERT_TRUE(wait_for_keepalives(check, lease, 2, 10s)) << "the lease is not kept alive\n" << agent->output();
  const auto ttl = check.lease_ttl(lease);
  EXPECT_GT(ttl.ttl, 0) << "lease expired";
  EXPECT_TRUE(own_key.events().empty()) << "the agent's key changed " << own_key.events().size()
                                        << " time(s) (delete or re-registration)\n" << agent->output();
  const auto kv = check.get("/services/app/leader-kill");
  ASSERT_TRUE(kv.has_value());
  EXPECT_EQ(kv->lease, lease);
  EXPECT_EQ(count_of(agent->output(), " granted, ttl"), 1u) << agent->output();
  std::printf("[ figures  ] leader kill: first write accepted after %ld ms; agent file had both later writes "
              "after %ld ms; lease kept (ttl left %lld s of 6)\n",
              first_write_ms, discovery_ms, static_cast<long long>(ttl.ttl));
}

TEST_F(ClusterFailover, StoppedMemberIsLeftBeforeTheLeaseIsAtRiskAndItsReturnChangesNothing) {
  const size_t leader = *cluster_->leader_index();
  const size_t frozen = (leader + 1) % cluster_->size();  // a follower: the cluster keeps its quorum
  const size_t witness = (leader + 2) % cluster_->size();
  const auto out = dir_ / "peer.txt";
  auto agent = AgentProcess::start(manifest(frozen, "member-stop", out));
  ASSERT_TRUE(agent);
  EtcdSyncClient check(cluster_->member(witness).endpoint());
  ASSERT_TRUE(wait_until([&] { return check.get("/services/app/member-stop").has_value(); }, 10s)) << agent->output();
  const auto lease = check.get("/services/app/member-stop")->lease;
  ASSERT_TRUE(wait_until([&] { return file_has(out, "") && read_file(out).has_value(); }, 10s));
  WatchRecorder own_key(cluster_->member(witness).endpoint(), "/services/app/member-stop");
  ASSERT_TRUE(own_key.created());

  const auto stopped_at = Clock::now();
  ASSERT_TRUE(cluster_->member(frozen).sigstop());
  // Until the keepalive stream is back on another member, watch the lease from the witness.
  const std::string back = "lease keepalive stream to ";
  long min_ttl = 6;
  long moved_ms = -1;
  wait_until(
      [&] {
        const auto t = check.lease_ttl(lease).ttl;
        if (t >= 0) min_ttl = std::min<long>(min_ttl, t);
        const std::string log = agent->output();
        const auto at = log.find(" is back");
        if (at != std::string::npos && log.rfind(back, at) != std::string::npos) moved_ms = ms_since(stopped_at);
        return moved_ms >= 0;
      },
      10s, 20ms);
  ASSERT_GE(moved_ms, 0) << "the agent never moved its keepalive stream\n" << agent->output();
  EXPECT_LT(moved_ms, 6000) << "moved only after a whole lease TTL";
  EXPECT_GE(min_ttl, 1) << "the lease came within a second of expiring";

  // Discovery moves too (its watch notices the hung member through HTTP/2 pings: 5 s + 3 s at worst).
  ASSERT_TRUE(put_anywhere("/services/peer/x", R"({"address":"10.0.0.9","port":9})", frozen));
  const auto put_at = Clock::now();
  EXPECT_TRUE(wait_until([&] { return file_has(out, "10.0.0.9:9"); }, 15s)) << agent->output();
  const long discovery_ms = ms_since(stopped_at);
  const long put_to_file_ms = ms_since(put_at);

  // Thawing the member changes nothing: same lease, no event on the key, no new registration.
  ASSERT_TRUE(cluster_->member(frozen).sigcont());
  ASSERT_TRUE(cluster_->wait_for_leader(10s));
  // Two keepalive rounds after the thaw: the agent is past whatever the member's return set off.
  ASSERT_TRUE(wait_for_keepalives(check, lease, 2, 10s)) << "the lease is not kept alive\n" << agent->output();
  EXPECT_TRUE(own_key.events().empty()) << agent->output();
  const auto kv = check.get("/services/app/member-stop");
  ASSERT_TRUE(kv.has_value());
  EXPECT_EQ(kv->lease, lease);
  EXPECT_EQ(count_of(agent->output(), " granted, ttl"), 1u) << agent->output();
  std::printf("[ figures  ] member SIGSTOP: keepalive moved to another member after %ld ms (lease TTL 6 s, "
              "lowest TTL left seen %ld s); discovery file updated %ld ms after the stop (%ld ms after the put)\n",
              moved_ms, min_ttl, discovery_ms, put_to_file_ms);
}

}  // namespace
}  // namespace sidecar::test

namespace sidecar::test {
namespace {

// `hasleader`: a member that lost its quorum must refuse the agent's streams ("etcdserver: no leader")
// rather than hold them open in silence, or the agent would keep a dead watch and a lease it cannot renew.
// Both other members are frozen, so the agent's member is alive but leaderless; once they are back the
// agent resumes on the same lease with its key intact.
TEST_F(ClusterFailover, LeaderlessMemberRefusesTheAgentsStreamsAndTheAgentRecovers) {
  const size_t member = *cluster_->leader_index();
  const auto out = dir_ / "peer-leaderless.txt";
  // A lease that outlives the outage (refusal after ~4 s, then a new election), so "same lease" is fair.
  auto agent = AgentProcess::start(manifest(member, "leaderless", out, "20s"));
  ASSERT_TRUE(agent);
  EtcdSyncClient check(cluster_->member(member).endpoint());
  ASSERT_TRUE(wait_until([&] { return check.get("/services/app/leaderless").has_value(); }, 10s)) << agent->output();
  const auto lease = check.get("/services/app/leaderless")->lease;

  std::vector<size_t> frozen;
  for (size_t i = 0; i < cluster_->size(); ++i) {
    if (i != member) frozen.push_back(i);
  }
  const auto stopped_at = Clock::now();
  for (size_t i : frozen) ASSERT_TRUE(cluster_->member(i).sigstop());
  // etcd cancels streams that asked for a leader once the member has been leaderless for a few election
  // timeouts; the agent logs the reason when its stream ends.
  const bool refused = wait_until([&] { return agent->output().find("no leader") != std::string::npos; }, 15s, 50ms);
  const long refused_ms = ms_since(stopped_at);
  for (size_t i : frozen) ASSERT_TRUE(cluster_->member(i).sigcont());
  ASSERT_TRUE(refused) << "the leaderless member kept the agent's streams open\n" << agent->output();
  ASSERT_TRUE(cluster_->wait_for_leader(20s));

  // Back to normal: same lease, key present, discovery follows a new write.
  ASSERT_TRUE(put_anywhere("/services/peer/l", R"({"address":"10.0.0.8","port":8})", cluster_->size()));
  EXPECT_TRUE(wait_until([&] { return file_has(out, "10.0.0.8:8"); }, 15s)) << agent->output();
  const auto kv = check.get("/services/app/leaderless");
  ASSERT_TRUE(kv.has_value());
  EXPECT_EQ(kv->lease, lease);
  std::printf("[ figures  ] quorum lost around the agent's member: streams refused with 'no leader' after %ld ms\n",
              refused_ms);
}

}  // namespace
}  // namespace sidecar::test
