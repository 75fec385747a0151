// runtime::HealthMonitor in-process, on a real io_context with real probes: what its view() reports (the
// admin endpoint reads it), and that a check that hangs is killed and never overlaps its next run.
#include <gtest/gtest.h>

#include <signal.h>

#include <utility>  // before Asio
#include <boost/asio/io_context.hpp>
#include <cerrno>
#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "agent/core/manifest.hpp"
#include "agent/runtime/health_monitor.hpp"
#include "tests/support/health_servers.hpp"
#include "tests/support/process.hpp"

namespace sidecar::test {
namespace {

using namespace std::chrono_literals;

core::Manifest parse(const std::string& yaml) {
  auto r = core::parse_manifest(yaml, "test.yaml", [](const std::string&) -> std::optional<std::string> {
    return std::nullopt;
  });
  if (!r.ok()) ADD_FAILURE() << r.errors.front().to_string();
  return r.ok() ? *r.manifest : core::Manifest{};
}

// Runs the loop in small slices until `done` holds or `timeout` passes.
bool run_until(boost::asio::io_context& io, const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    io.run_for(10ms);
    if (done()) return true;
  }
  return done();
}

struct Change {
  size_t service;
  bool healthy;
  std::string reason;
};

TEST(HealthMonitor, ViewReportsStatusAndLastOutputPerCheck) {
  TcpListener tcp;
  ASSERT_TRUE(tcp.is_open());
  const core::Manifest m = parse(
      "services:\n"
      "  - name: db\n    id: db-1\n    port: 1\n    checks:\n"
      "      - tcp: 127.0.0.1:" + std::to_string(tcp.port()) + "\n        interval: 50ms\n        rise: 1\n"
      "  - name: api\n    id: api-1\n    port: 2\n    initial_status: passing\n    checks:\n"
      "      - exec: [\"/bin/sh\", \"-c\", \"echo boom; exit 4\"]\n        name: boom\n        interval: 50ms\n"
      "        fall: 2\n"
      "  - name: web\n    id: web-1\n    port: 3\n");
  boost::asio::io_context io;
  std::vector<Change> changes;
  runtime::HealthMonitor monitor(io, m, [&](size_t s, core::HealthStatus status, const std::string& reason) {
    changes.push_back({s, status != core::HealthStatus::kCritical, reason});
  });
  ASSERT_EQ(monitor.view().size(), 3u);
  EXPECT_FALSE(monitor.view()[0].healthy) << "critical until the first pass";
  EXPECT_TRUE(monitor.view()[1].healthy) << "initial_status: passing";
  EXPECT_TRUE(monitor.view()[2].healthy) << "no checks";

  monitor.start();
  ASSERT_TRUE(run_until(io, [&] { return changes.size() >= 2; }, 3s));
  monitor.stop();
  io.run_for(50ms);

  ASSERT_EQ(changes.size(), 2u);
  EXPECT_EQ(changes[0].service, 0u);
  EXPECT_TRUE(changes[0].healthy);
  EXPECT_EQ(changes[1].service, 1u);
  EXPECT_FALSE(changes[1].healthy);
  EXPECT_EQ(changes[1].reason, "check 'boom' critical");

  const auto& db = monitor.view()[0];
  EXPECT_EQ(db.key, "/services/db/db-1");
  EXPECT_TRUE(db.healthy);
  ASSERT_EQ(db.checks.size(), 1u);
  EXPECT_EQ(db.checks[0].status, core::HealthStatus::kPassing);
  EXPECT_EQ(db.checks[0].last_output, "connected to 127.0.0.1:" + std::to_string(tcp.port()));
  EXPECT_GE(db.checks[0].runs, 1u);

  const auto& api = monitor.view()[1];
  EXPECT_FALSE(api.healthy);
  EXPECT_EQ(api.checks[0].name, "boom");
  EXPECT_EQ(api.checks[0].status, core::HealthStatus::kCritical);
  EXPECT_EQ(api.checks[0].last_output, "exit 4: boom");
  EXPECT_EQ(api.checks[0].last_passed, false);
  EXPECT_GE(api.checks[0].consecutive_failures, 2);
}

TEST(HealthMonitor, HangingCheckIsKilledAtItsTimeoutAndNeverOverlapsItsNextRun) {
  TempDir dir("sidecar-monitor");
  const std::string log = (dir / "runs").string();
  // Each run appends its pid and start time, then hangs far past the timeout. ("$$$$": the manifest reads
  // "$$" as a literal '$'.)
  const core::Manifest m = parse(
      "services:\n  - name: api\n    id: api-1\n    port: 1\n    checks:\n"
      "      - exec: [\"/bin/sh\", \"-c\", \"echo $$$$ $(date +%s%N) >> " + log + "; exec sleep 10\"]\n"
      "        interval: 150ms\n        timeout: 100ms\n        fall: 1\n");
  boost::asio::io_context io;
  runtime::HealthMonitor monitor(io, m, nullptr);
  monitor.start();

  struct Run {
    pid_t pid;
    long long start_ns;
  };
  std::vector<Run> runs;
  bool overlap = false;
  const auto read_runs = [&] {
    runs.clear();
    std::ifstream in(log);
    Run r{};
    while (in >> r.pid >> r.start_ns) runs.push_back(r);
    // Every run but the newest must be gone (killed and reaped) by the time a newer one started.
    for (size_t i = 0; i + 1 < runs.size(); ++i) {
      if (::kill(runs[i].pid, 0) == 0 || errno != ESRCH) overlap = true;
    }
    return runs.size() >= 5;
  };
  ASSERT_TRUE(run_until(io, read_runs, 5s));
  monitor.stop();
  io.run_for(100ms);

  EXPECT_FALSE(overlap) << "a run was still alive when the next one started";
  // The times are taken by each run's shell, so a run that the loaded machine started late shortens the
  // gap after it: each gap is allowed that jitter, the average must be the interval.
  for (size_t i = 1; i < runs.size(); ++i) {
    const long long gap_ms = (runs[i].start_ns - runs[i - 1].start_ns) / 1000000;
    EXPECT_GE(gap_ms, 75) << "runs start an interval apart, run " << i;
  }
  const long long mean_ms = (runs.back().start_ns - runs.front().start_ns) / 1000000 /
                            static_cast<long long>(runs.size() - 1);
  EXPECT_GE(mean_ms, 140) << "runs start an interval (150 ms) apart on average";
  const auto& check = monitor.view()[0].checks[0];
  EXPECT_EQ(check.status, core::HealthStatus::kCritical);
  EXPECT_EQ(check.last_output.rfind("timed out after ", 0), 0u) << check.last_output;
  // stop() killed the run in flight too: nothing is left behind.
  for (const auto& r : runs) EXPECT_TRUE(::kill(r.pid, 0) != 0 && errno == ESRCH) << r.pid;
}

}  // namespace
}  // namespace sidecar::test
