// Every exit path has one hard deadline, and a busy on_change cannot stretch it: SIGQUIT hands the lease
// over within TTL/2 with the keepalives running until then, SIGTERM exits within 1 s, and both kill the
// command's whole process group on the way out.
#include <gtest/gtest.h>

#include <csignal>
#include <fstream>

#include "agent/daemon/exit_codes.hpp"
#include "tests/fault/fault_fixture.hpp"

namespace sidecar::test {
namespace {

// A process that is gone or a zombie (its parent, the agent, exited; whoever reaps it has not yet).
bool process_gone(pid_t pid) {
  const auto stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return true;
  const auto paren = stat->rfind(')');
  return paren != std::string::npos && paren + 2 < stat->size() && (*stat)[paren + 2] == 'Z';
}

class ExitDeadline : public FaultTest {
 protected:
  // The agent with an on_change that records its shell's pid (the group leader) and then blocks for 25 s
  // in the same process (exec), as a hung `nginx -s reload` would. `$$$$` is the manifest's escape for `$$`.
  void start_with_busy_on_change(const std::string& ttl) {
    AgentConfig config = with_ttl(ttl);
    config.discover_extra = "    on_change: \"echo $$$$ > " + pid_file().string() +
                            "; exec sleep 25\"\n    command_timeout: 60s\n";
    agent_ = AgentProcess::start_in(dir_.path(), manifest(config),
                                    {"--log-level", "debug", "--state-dir", (dir_.path() / "state").string()});
    ASSERT_NE(agent_, nullptr);
    ASSERT_TRUE(registered(15s));
    // The first write of the discovery file runs on_change, which then blocks.
    ASSERT_TRUE(wait_until([&] { return read_pid().has_value(); }, 10s)) << "on_change never started";
    ASSERT_FALSE(process_gone(*read_pid()));
  }

  std::filesystem::path pid_file() const { return dir_ / "on_change.pid"; }
  std::optional<pid_t> read_pid() const {
    std::ifstream in(pid_file());
    pid_t pid = 0;
    if (in >> pid && pid > 0) return pid;
    return std::nullopt;
  }
};

TEST_F(ExitDeadline, SigquitWithABusyOnChangeHandsOverWithinHalfTheTtlAndTheLeaseStaysAlive) {
  start_with_busy_on_change("6s");
  const pid_t command = *read_pid();
  const std::int64_t lease = self_lease();
  ASSERT_NE(lease, 0);

  const auto started = std::chrono::steady_clock::now();
  ASSERT_TRUE(agent_->signal(SIGQUIT));
  const auto code = agent_->wait_exit(10s);
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
  ASSERT_TRUE(code.has_value()) << "still running 10 s after SIGQUIT";
  EXPECT_EQ(*code, daemon::kExitHandover);
  std::cout << "SIGQUIT with a busy on_change: exited in " << took.count() << " ms (TTL 6 s)\n";
  RecordProperty("sigquit_exit_ms", static_cast<int>(took.count()));
  // The deadline is TTL/2 = 3 s; the rest is process exit and this poll.
  EXPECT_LT(took, 3500ms);
  EXPECT_GE(took, 2500ms) << "exited before the deadline although on_change was still running";
  EXPECT_EQ(agent_->count_in_output("handover not finished within 3000 ms: killed 1 running command"), 1u);

  // Left for the successor: the key on the same lease, which the keepalives kept fresh until the handover
  // (without them it would have at most 6 - 3 = 3 s left now).
  const auto kv = client_->get(self_key());
  ASSERT_TRUE(kv.has_value()) << "the key vanished: the handover outlived the lease";
  EXPECT_EQ(kv->lease, lease);
  EXPECT_GE(client_->lease_ttl(lease).ttl, 3);
  EXPECT_TRUE(wait_until([&] { return process_gone(command); }, 2s)) << "on_change outlived the agent";
}

TEST_F(ExitDeadline, SigtermWithABusyOnChangeDeregistersAndExitsWithinASecond) {
  start_with_busy_on_change("6s");
  const pid_t command = *read_pid();

  const auto started = std::chrono::steady_clock::now();
  ASSERT_TRUE(agent_->signal(SIGTERM));
  const auto code = agent_->wait_exit(10s);
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
  ASSERT_TRUE(code.has_value()) << "still running 10 s after SIGTERM";
  EXPECT_EQ(*code, 0);
  std::cout << "SIGTERM with a busy on_change: exited in " << took.count() << " ms\n";
  EXPECT_LT(took, 1500ms);
  EXPECT_EQ(agent_->count_in_output("shutdown not finished within 900 ms: killed 1 running command"), 1u);
  EXPECT_FALSE(client_->get(self_key()).has_value()) << "SIGTERM must deregister";
  EXPECT_TRUE(wait_until([&] { return process_gone(command); }, 2s)) << "on_change outlived the agent";
}

}  // namespace
}  // namespace sidecar::test
