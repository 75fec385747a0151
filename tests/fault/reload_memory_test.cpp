// A pod with --watch-manifest reloads for its whole life: what a reload removes must be freed, not kept.
// 300 reloads swap a discovery of 2,000 instances in and out; the agent's RSS may not grow past 5 MB.
#include <gtest/gtest.h>

#include <csignal>
#include <iostream>

#include "tests/fault/fault_fixture.hpp"
#include "tests/support/bulk_writer.hpp"

namespace sidecar::test {
namespace {

constexpr int kInstances = 2000;
// SIDECAR_RELOADS=1200 for a longer look by hand.
const int kReloads = std::getenv("SIDECAR_RELOADS") ? std::atoi(std::getenv("SIDECAR_RELOADS")) : 300;
constexpr const char* kBigPrefix = "/services/big/";

class ReloadMemory : public FaultTest {
 protected:
  std::string yaml(bool with_big) const {
    std::string m = manifest(with_ttl("10s"));
    if (with_big) {
      // Appended as a second `discover:` entry, under the fixture's own one.
      const std::string entry = "  - service: big\n    output: " + (out_dir_ / "big.json").string() +
                                "\n    wait: {min: 0ms, max: 100ms}\n";
      const auto at = m.find("config:\n");
      m.insert(at, entry);
    }
    return m;
  }

  // Rewrites the manifest, sends SIGHUP and waits until the agent has applied it (and, when the big
  // discovery came in, until it has read all of it).
  void reload(bool with_big, size_t n) {
    ASSERT_TRUE(write_file(agent_->manifest_path(), yaml(with_big)));
    ASSERT_TRUE(agent_->signal(SIGHUP));
    ASSERT_TRUE(wait_until([&] { return agent_->count_in_output("reload applied") >= n; }, 10s))
        << "reload " << n << " was not applied";
    if (with_big) {
      const size_t synced = (n + 1) / 2;
      ASSERT_TRUE(wait_until([&] { return agent_->count_in_output("catalog big: synced 2000 instance(s)") >= synced; },
                             10s))
          << "the big discovery of reload " << n << " never synced";
    }
  }
};

TEST_F(ReloadMemory, ThreeHundredReloadsSwappingA2000InstanceDiscoveryKeepRssFlat) {
  std::vector<BulkOp> ops;
  for (int i = 0; i < kInstances; ++i) {
    const std::string id = "i-" + std::to_string(i);
    ops.push_back({kBigPrefix + id,
                   nlohmann::json{{"name", "big"}, {"id", id}, {"address", "10.1." + std::to_string(i / 250) + "." +
                                                                               std::to_string(i % 250)},
                                  {"port", 8000}, {"metadata", {{"zone", "a"}, {"version", "1.2.3"}}}}
                       .dump()});
  }
  BulkWriter writer(etcd_->endpoint());
  ASSERT_GT(writer.apply(ops), 0) << writer.last_error();

  agent_ = AgentProcess::start_in(dir_.path(), yaml(false), {"--log-level", "info"});
  ASSERT_NE(agent_, nullptr);
  ASSERT_TRUE(registered(15s));
  // Two swaps first: the allocator's arenas and etcd's connection reach their working size.
  size_t n = 0;
  for (int i = 0; i < 2; ++i) {
    reload(true, ++n);
    reload(false, ++n);
  }
  const long before = rss_kib(agent_->pid()).value_or(0);
  ASSERT_GT(before, 0);
  const auto started = std::chrono::steady_clock::now();
  for (int i = 0; i < kReloads / 2; ++i) {
    reload(true, ++n);
    if (HasFatalFailure()) return;
    reload(false, ++n);
    if (HasFatalFailure()) return;
  }
  // The last removed discovery is freed once its watch has ended: a positive marker that the agent has
  // answered something after the last reload, then the figure.
  ASSERT_TRUE(registered(5s));
  const long after = rss_kib(agent_->pid()).value_or(0);
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
  std::cout << kReloads << " reloads swapping a " << kInstances << "-instance discovery in " << took.count()
            << " ms: RSS " << before << " KiB -> " << after << " KiB (" << (after - before) << " KiB)\n";
  RecordProperty("rss_before_kib", static_cast<int>(before));
  RecordProperty("rss_after_kib", static_cast<int>(after));
#ifndef SIDECAR_TESTS_SANITIZED
  EXPECT_LT(after - before, 5 * 1024) << "RSS grew from " << before << " KiB to " << after << " KiB";
#endif
  EXPECT_EQ(agent_->count_in_output("reload applied"), n);
  expect_clean_shutdown();
}

}  // namespace
}  // namespace sidecar::test
