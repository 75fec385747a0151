// Owns: the set-up most integration and fault fixtures share: one real etcd on free loopback ports, a
//       synchronous client on it, the agent under test, and the logs a failed test prints.
// Thread: the test's main thread.
#pragma once

#include <gtest/gtest.h>

#include <cstddef>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tests/support/agent_process.hpp"
#include "tests/support/etcd_client.hpp"
#include "tests/support/etcd_process.hpp"

namespace sidecar::test {

class EtcdAgentFixture : public ::testing::Test {
 protected:
  static constexpr std::size_t kWholeLog = std::numeric_limits<std::size_t>::max();

  // A plain etcd and client_ on it. Fixtures that need another etcd (TLS, auth, other flags) override
  // SetUp and call start_etcd() themselves; a subclass that does more after this wraps the call in
  // ASSERT_NO_FATAL_FAILURE, since a fatal failure here only returns from this function.
  void SetUp() override { start_etcd(); }
  // On failure, prints what dump_logs() prints; a passing test prints nothing. Then stops agent_: a
  // subclass's directories (where the agent writes) are destroyed before this class's members are.
  void TearDown() override {
    if (HasFailure()) dump_logs();
    agent_.reset();
  }

  // Starts etcd_ with `extra_args` and connects client_ to it; a fatal failure when etcd does not come up.
  void start_etcd(std::vector<std::string> extra_args = {});
  // Same for an etcd that serves clients over TLS; client_ uses `client_tls`.
  void start_etcd_tls(ServerTls server_tls, ClientTls client_tls);

  // agent_'s log and the tail of etcd's. Fixtures with more processes (several agents, an app) override
  // this and print those too, with dump_agent_log() for each agent.
  virtual void dump_logs() const;
  // `agent`'s log (its last log_tail_bytes_), headed by `label` and the agent's directory.
  void dump_agent_log(const AgentProcess& agent, std::string_view label = "agent") const;
  void dump_etcd_log_tail() const;

  std::unique_ptr<EtcdProcess> etcd_;
  std::unique_ptr<EtcdSyncClient> client_;
  std::unique_ptr<AgentProcess> agent_;
  // Debug-level agents of long scenarios log megabytes; their fixtures keep only the end, where it failed.
  std::size_t log_tail_bytes_ = kWholeLog;
};

}  // namespace sidecar::test
