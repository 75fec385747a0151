// Soak: continuous churn of the discovered service and the mirrored config, with etcd restarted every
// few seconds (alternately crashed and stopped gracefully), for SIDECAR_SOAK_SECONDS (default 60; `make
// soak` runs 600). Afterwards the agent's memory and file descriptors are where they were after warm-up,
// and the files equal etcd. The files are checked throughout by the InvariantMonitor.
#include <gtest/gtest.h>

#include <cstdlib>
#include <random>
#include <set>
#include <thread>

#include "tests/fault/fault_fixture.hpp"
#include "tests/support/bulk_writer.hpp"

namespace sidecar::test {
namespace {

std::chrono::seconds soak_duration() {
  const char* env = std::getenv("SIDECAR_SOAK_SECONDS");
  const long seconds = env ? std::strtol(env, nullptr, 10) : 60;
  return std::chrono::seconds(seconds > 0 ? seconds : 60);
}

class Soak : public FaultTest {};

TEST_F(Soak, ChurnAndEtcdRestartsLeaveMemoryFdsAndFilesExact) {
  const auto duration = soak_duration();
  // A restart every 10 s (at least 4 of them), so a short run still crosses several.
  const auto restart_every = std::min<std::chrono::seconds>(10s, duration / 4);
  std::cerr << "soak: " << duration.count() << " s, etcd restart every " << restart_every.count() << " s\n";

  seed(20, 5);
  start_agent();
  std::mt19937 rng(42);
  std::uniform_int_distribution<int> pick(0, 499);
  std::uniform_int_distribution<int> port(1, 60000);
  int round = 0;
  int restarts = 0;
  // A burst of churn: puts and deletes of 500 instance ids and 50 config keys.
  auto churn = [&](BulkWriter& writer) {
    std::vector<BulkOp> batch;
    std::set<int> used;
    for (int n = 0; n < 40; ++n) {
      const int i = pick(rng);
      if (!used.insert(i).second) continue;
      const std::string id = "soak-" + std::to_string(i);
      if (n % 3 == 0) {
        batch.push_back({self_key(id), "", true});
      } else {
        batch.push_back({self_key(id), instance_value(id, port(rng))});
      }
      if (i < 50) {
        batch.push_back({std::string(kFaultConfigPrefix) + "k" + std::to_string(i),
                         n % 5 == 0 ? std::string() : std::to_string(round), n % 5 == 0});
      }
    }
    ++round;
    return writer.apply(batch) > 0;
  };

  long baseline_rss = 0;
  std::size_t baseline_fds = 0;
  const auto start = std::chrono::steady_clock::now();
  auto next_restart = start + restart_every;
  bool warmed_up = false;
  int failed_batches = 0;
  auto writer = std::make_unique<BulkWriter>(etcd_->endpoint());
  while (std::chrono::steady_clock::now() - start < duration) {
    if (!churn(*writer)) ++failed_batches;
    std::this_thread::sleep_for(10ms);
    if (std::chrono::steady_clock::now() < next_restart) continue;
    if (restarts % 2 == 0) {
      etcd_->kill9();
      ASSERT_TRUE(etcd_->restart()) << etcd_->log_tail();
    } else {
      ASSERT_TRUE(etcd_->restart()) << etcd_->log_tail();  // graceful: SIGTERM, then start
    }
    ++restarts;
    ASSERT_TRUE(registered(15s)) << "after restart " << restarts;
    ASSERT_TRUE(agent_->is_running());
    if (!warmed_up) {
      // Warm-up is over once the agent has been through one reconnect: every pool, arena and gRPC
      // structure it needs exists now. From here on, memory and fds must stay flat.
      ASSERT_TRUE(converged(30s));
      baseline_rss = rss_kib(agent_->pid()).value_or(0);
      baseline_fds = fd_count(agent_->pid()).value_or(0);
      warmed_up = true;
    }
    next_restart = std::chrono::steady_clock::now() + restart_every;
  }
  std::cerr << "soak: " << round << " churn batches (" << failed_batches << " failed during restarts), " << restarts
            << " etcd restarts\n";
  ASSERT_TRUE(warmed_up);
  EXPECT_GE(restarts, 3);
  EXPECT_LT(failed_batches, round / 10) << "churn mostly failed, so the soak did not exercise the agent";

  EXPECT_TRUE(converged(30s)) << "the final files must equal etcd";
  EXPECT_TRUE(registered(5s));
  // fds: the same sockets, pipes and files as after warm-up (checked once quiet and connected).
  std::size_t fds = 0;
  EXPECT_TRUE(wait_until([&] { fds = fd_count(agent_->pid()).value_or(0); return fds <= baseline_fds; }, 10s, 100ms))
      << "fd count grew from " << baseline_fds << " to " << fds;
  const long rss = rss_kib(agent_->pid()).value_or(0);
  const auto samples = monitor_->rss_samples();
  if (samples.size() >= 4) {
    std::cerr << "soak: RSS at each quarter (KiB):";
    for (std::size_t q = 1; q <= 4; ++q) std::cerr << " " << samples[samples.size() * q / 4 - 1];
    std::cerr << "\n";
  }
  std::cerr << "soak: RSS " << baseline_rss << " KiB after warm-up, " << rss << " KiB at the end, max "
            << monitor_->max_rss_kib() << " KiB; fds " << baseline_fds << " -> " << fds << "\n";
#ifndef SIDECAR_TESTS_SANITIZED  // ASan's quarantine grows RSS by design
  EXPECT_LE(rss, baseline_rss + 4 * 1024) << "RSS grew by more than 4 MiB after warm-up";
#endif
  expect_files_never_broken();
  expect_clean_shutdown();
}

}  // namespace
}  // namespace sidecar::test
