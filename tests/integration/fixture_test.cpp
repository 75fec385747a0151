// Self-tests of the shared test fixture against a real etcd: if these fail, every integration and fault
// test that builds on EtcdProcess / EtcdSyncClient / WatchRecorder / ChildProcess is suspect.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cerrno>
#include <csignal>
#include <filesystem>
#include <memory>
#include <string>

#include "tests/support/agent_fixture.hpp"
#include "tests/support/etcd_client.hpp"
#include "tests/support/etcd_process.hpp"
#include "tests/support/process.hpp"

namespace sidecar::test {
namespace {

using namespace std::chrono_literals;

// The shared base as-is: its etcd and client are what these tests check.
class EtcdFixture : public EtcdAgentFixture {};

TEST_F(EtcdFixture, PutThenGetReturnsValueAndRevisions) {
  const std::int64_t rev = client_->put("/fixture/a", "one");
  ASSERT_GT(rev, 1) << client_->last_error();
  const auto kv = client_->get("/fixture/a");
  ASSERT_TRUE(kv.has_value()) << client_->last_error();
  EXPECT_EQ(kv->key, "/fixture/a");
  EXPECT_EQ(kv->value, "one");
  EXPECT_EQ(kv->mod_revision, rev);
  EXPECT_EQ(kv->create_revision, rev);
  EXPECT_EQ(kv->lease, 0);
  EXPECT_EQ(client_->revision(), rev);
  EXPECT_FALSE(client_->get("/fixture/missing").has_value());
  EXPECT_TRUE(client_->last_error().empty()) << "a missing key is not an RPC failure";
}

TEST_F(EtcdFixture, GetPrefixReturnsOnlyKeysUnderPrefixSortedByKey) {
  ASSERT_GT(client_->put("/svc/b", "2"), 0);
  ASSERT_GT(client_->put("/svc/a", "1"), 0);
  ASSERT_GT(client_->put("/svd", "outside"), 0);  // the byte after '/svc/' ends the range
  const auto kvs = client_->get_prefix("/svc/");
  ASSERT_EQ(kvs.size(), 2u);
  EXPECT_EQ(kvs[0].key, "/svc/a");
  EXPECT_EQ(kvs[1].key, "/svc/b");
  EXPECT_EQ(client_->del_prefix("/svc/"), 2);
  EXPECT_EQ(client_->del("/svd"), 1);
  EXPECT_EQ(client_->del("/svd"), 0);
  EXPECT_TRUE(client_->get_prefix("").empty());
}

TEST_F(EtcdFixture, RestartAfterKill9KeepsKeysAndRevision) {
  const std::int64_t rev = client_->put("/fixture/durable", "kept");
  ASSERT_GT(rev, 0);
  const pid_t old_pid = etcd_->pid();
  etcd_->kill9();
  EXPECT_FALSE(etcd_->is_running());
  EXPECT_EQ(etcd_->pid(), -1);
  EXPECT_EQ(client_->put("/fixture/other", "x"), 0) << "a put must fail while etcd is down";

  ASSERT_TRUE(etcd_->restart());
  EXPECT_NE(etcd_->pid(), old_pid);
  ASSERT_TRUE(wait_until([&] { return client_->get("/fixture/durable").has_value(); }, 5s))
      << client_->last_error();
  EXPECT_EQ(client_->get("/fixture/durable")->value, "kept");
  EXPECT_EQ(client_->revision(), rev);
}

TEST_F(EtcdFixture, RestartWipedLosesKeysAndRevisionStartsOver) {
  ASSERT_GT(client_->put("/fixture/k", "v1"), 0);
  const std::int64_t rev = client_->put("/fixture/k", "v2");
  ASSERT_GE(rev, 3);

  ASSERT_TRUE(etcd_->restart_wiped());
  std::int64_t fresh = 0;
  ASSERT_TRUE(wait_until([&] { return (fresh = client_->revision()) > 0; }, 5s)) << client_->last_error();
  EXPECT_EQ(fresh, 1) << "a new store starts at revision 1";
  EXPECT_FALSE(client_->get("/fixture/k").has_value());
}

TEST_F(EtcdFixture, WatchRecorderSeesPutThenDeleteInOrder) {
  WatchRecorder watch(etcd_->endpoint(), "/w/", WatchRecorder::Scope::kPrefix);
  ASSERT_TRUE(watch.created());
  const std::int64_t put_rev = client_->put("/w/x", "hello");
  ASSERT_GT(client_->put("/outside", "ignored"), 0);
  ASSERT_EQ(client_->del("/w/x"), 1);

  ASSERT_TRUE(watch.wait_for_count(2, 5s));
  const auto events = watch.events();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].type, WatchEvent::Type::kPut);
  EXPECT_EQ(events[0].key, "/w/x");
  EXPECT_EQ(events[0].value, "hello");
  EXPECT_EQ(events[0].mod_revision, put_rev);
  EXPECT_EQ(events[1].type, WatchEvent::Type::kDelete);
  EXPECT_EQ(events[1].key, "/w/x");
  EXPECT_GT(events[1].mod_revision, put_rev);
  EXPECT_LE(events[0].received_at, events[1].received_at);
}

TEST_F(EtcdFixture, WatchFromCompactedRevisionIsCanceledWithCompactRevision) {
  const std::int64_t first = client_->put("/c/k", "1");
  ASSERT_GT(first, 0);
  const std::int64_t last = client_->put("/c/k", "2");
  ASSERT_TRUE(client_->compact(last)) << client_->last_error();

  WatchRecorder watch(etcd_->endpoint(), "/c/k", WatchRecorder::Scope::kKey, first);
  ASSERT_TRUE(wait_until([&] { return watch.canceled(); }, 5s));
  EXPECT_EQ(watch.compact_revision(), last);
  EXPECT_TRUE(watch.events().empty());
}

TEST_F(EtcdFixture, LeaseTtlIsReportedAndRevokeDeletesAttachedKey) {
  const std::int64_t lease = client_->lease_grant(30);
  ASSERT_NE(lease, 0) << client_->last_error();
  ASSERT_GT(client_->put("/l/k", "v", lease), 0);
  EXPECT_EQ(client_->get("/l/k")->lease, lease);

  const LeaseTtl ttl = client_->lease_ttl(lease);
  EXPECT_EQ(ttl.granted_ttl, 30);
  EXPECT_GT(ttl.ttl, 25);
  EXPECT_LE(ttl.ttl, 30);

  ASSERT_TRUE(client_->lease_revoke(lease));
  EXPECT_FALSE(client_->get("/l/k").has_value());
  EXPECT_EQ(client_->lease_ttl(lease).ttl, -1);
}

TEST_F(EtcdFixture, SigstoppedEtcdTimesOutUntilSigcont) {
  ASSERT_GT(client_->put("/s/k", "v"), 0);
  ASSERT_TRUE(etcd_->sigstop());
  EXPECT_TRUE(etcd_->is_running()) << "a stopped process is still alive";
  EtcdSyncClient impatient(etcd_->endpoint(), 300ms);
  EXPECT_FALSE(impatient.get("/s/k").has_value());
  EXPECT_NE(impatient.last_error().find("grpc code 4"), std::string::npos)  // DEADLINE_EXCEEDED
      << impatient.last_error();

  ASSERT_TRUE(etcd_->sigcont());
  ASSERT_TRUE(wait_until([&] { return impatient.get("/s/k").has_value(); }, 5s)) << impatient.last_error();
}

TEST_F(EtcdFixture, StopIsGracefulAndLogIsKept) {
  EXPECT_TRUE(etcd_->stop());
  EXPECT_FALSE(etcd_->is_running());
  EXPECT_NE(etcd_->log_tail().find("etcd"), std::string::npos);
}

TEST(EtcdFixtureCleanup, DestructorKillsProcessAndRemovesDataDir) {
  pid_t pid = -1;
  std::filesystem::path data;
  {
    auto etcd = EtcdProcess::start();
    ASSERT_NE(etcd, nullptr);
    pid = etcd->pid();
    data = etcd->data_dir();
    ASSERT_TRUE(std::filesystem::exists(data));
  }
  EXPECT_FALSE(std::filesystem::exists(data));
  // ECHILD: no longer our child, i.e. killed AND reaped (a zombie or a live etcd would still be ours).
  errno = 0;
  EXPECT_EQ(::waitpid(pid, nullptr, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD);
}

TEST(EtcdClusterFixture, ElectsNewLeaderAfterLeaderIsKilledAndMemberRejoins) {
  auto cluster = EtcdCluster::start(3);
  ASSERT_NE(cluster, nullptr);
  const auto leader = cluster->leader_index();
  ASSERT_TRUE(leader.has_value());
  EtcdSyncClient first(cluster->member((*leader + 1) % 3).endpoint());
  ASSERT_GT(first.put("/cluster/k", "v"), 0) << first.last_error();

  cluster->kill_member(*leader);
  const auto next = cluster->wait_for_leader(10s);
  ASSERT_TRUE(next.has_value());
  EXPECT_NE(*next, *leader);
  EtcdSyncClient survivor(cluster->member(*next).endpoint());
  ASSERT_GT(survivor.put("/cluster/after", "x"), 0) << survivor.last_error();

  ASSERT_TRUE(cluster->restart_member(*leader));
  EtcdSyncClient rejoined(cluster->member(*leader).endpoint());
  ASSERT_TRUE(wait_until([&] { return rejoined.get("/cluster/after").has_value(); }, 5s));
  EXPECT_EQ(rejoined.get("/cluster/k")->value, "v");
}

// ------------------------------------------------------------------------------------------------ ChildProcess

TEST(ChildProcess, RunAndCaptureReturnsExitCodeAndBothStreams) {
  const auto result = run_and_capture({"sh", "-c", "echo to-out; echo to-err >&2; exit 3"}, 5s);
  EXPECT_EQ(result.exit_code, 3);
  EXPECT_FALSE(result.timed_out);
  EXPECT_NE(result.output.find("to-out"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("to-err"), std::string::npos) << result.output;
}

TEST(ChildProcess, ArgumentsAreNotInterpretedByAShellAndExtraEnvIsSet) {
  const auto result =
      run_and_capture({"sh", "-c", "printf '%s|%s' \"$1\" \"$SIDECAR_FIXTURE_VAR\"", "sh", "a b;$X"}, 5s,
                      {{"SIDECAR_FIXTURE_VAR", "set"}});
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_EQ(result.output, "a b;$X|set");
}

TEST(ChildProcess, SignalledChildReportsNegativeSignalNumber) {
  auto child = ChildProcess::spawn({"sleep", "30"});
  ASSERT_TRUE(child.has_value());
  EXPECT_TRUE(child->is_running());
  EXPECT_FALSE(child->wait_exit(50ms).has_value());
  ASSERT_TRUE(child->signal(SIGTERM));
  EXPECT_EQ(child->wait_exit(5s), -SIGTERM);
  EXPECT_EQ(child->pid(), -1);
  EXPECT_FALSE(child->signal(SIGTERM)) << "a reaped PID must never be signalled";
}

TEST(ChildProcess, RunAndCaptureKillsChildThatOutlivesTimeout) {
  const auto result = run_and_capture({"sleep", "30"}, 200ms);
  EXPECT_TRUE(result.timed_out);
  EXPECT_EQ(result.exit_code, -SIGKILL);
}

TEST(ChildProcess, MissingProgramIsReportedNotThrown) {
  EXPECT_FALSE(ChildProcess::spawn({"/nonexistent/sidecar-no-such-binary"}).has_value());
  EXPECT_EQ(run_and_capture({"sidecar-no-such-binary-on-path"}, 1s).exit_code, 127);
}

TEST(TestHelpers, FreePortsAreDistinctAndTempDirIsRemoved) {
  const auto a = free_port();
  const auto b = free_port();
  EXPECT_NE(a, 0);
  EXPECT_NE(a, b);
  std::filesystem::path path;
  {
    TempDir dir("fixture-self-test");
    path = dir.path();
    ASSERT_TRUE(write_file(dir / "f.txt", "hello"));
    ASSERT_TRUE(write_file_atomic(dir / "g.txt", "world"));
    EXPECT_EQ(read_file(dir / "f.txt"), "hello");
    EXPECT_EQ(read_file(dir / "g.txt"), "world");
  }
  EXPECT_FALSE(std::filesystem::exists(path));
}

}  // namespace
}  // namespace sidecar::test
