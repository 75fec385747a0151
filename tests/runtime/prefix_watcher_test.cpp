// PrefixWatcher against FakeEtcd on an io_context the test drives: no etcd, no sockets, no sleeps. The test
// runs the loop until a condition holds (a bound only turns a hang into a failure); backoff delays come
// from the options, shrunk to a millisecond or two, or made huge where a test proves there was none.
#include <gtest/gtest.h>

#include <map>

#include "agent/runtime/prefix_watcher.hpp"
#include "tests/runtime/drive.hpp"
#include "tests/runtime/fake_etcd.hpp"

namespace sidecar::runtime {
namespace {

using namespace std::chrono_literals;
using testing::FakeEtcd;
using testing::run_until;
using testing::stop_and_join;

class RecordingSink final : public WholeSnapshotSink {
 public:
  void on_snapshot(std::vector<core::KvInput> kvs, int64_t revision) override {
    state.clear();
    for (auto& kv : kvs) state[kv.key] = kv.value;
    snapshot_revisions.push_back(revision);
  }
  void on_events(const std::vector<core::EventInput>& evs) override {
    for (const auto& ev : evs) {
      if (ev.type == core::EventInput::Type::kDelete) {
        state.erase(ev.kv.key);
      } else {
        state[ev.kv.key] = ev.kv.value;
      }
      events.push_back(ev);
    }
  }
  std::map<std::string, std::string> state;
  std::vector<int64_t> snapshot_revisions;
  std::vector<core::EventInput> events;
};

core::BackoffPolicy fixed(std::chrono::milliseconds initial, std::chrono::milliseconds max) {
  return {.initial = initial, .max = max, .multiplier = 2.0, .jitter = 0.0};
}

// Backoff of a millisecond: restarts happen at once as far as the test can tell.
PrefixWatcherOptions quick() {
  PrefixWatcherOptions o;
  o.retry.failed = fixed(1ms, 1ms);
  o.retry.canceled = fixed(1ms, 1ms);
  return o;
}

TEST(PrefixWatcher, RewatchesFromTheNextRevisionAfterTheStreamEnds) {
  asio::io_context io;
  FakeEtcd etcd(io);
  etcd.put("/s/a", "1");
  RecordingSink sink;
  PrefixWatcher watcher(io, etcd, "/s/", sink, quick());
  watcher.start();
  ASSERT_TRUE(run_until(io, [&] { return etcd.open_watches() == 1; }));
  EXPECT_EQ(etcd.watches()[0]->request().start_revision, 3);  // snapshot at 2
  etcd.put("/s/b", "2");
  ASSERT_TRUE(run_until(io, [&] { return sink.events.size() == 1; }));

  etcd.end_watches(EtcdStatus::failure(14, "member restarting"));
  const int64_t missed = etcd.put("/s/c", "3");  // while no watch is open: only a re-read can see it
  ASSERT_TRUE(run_until(io, [&] { return etcd.watches().size() == 2 && etcd.open_watches() == 1; }));
  EXPECT_EQ(etcd.watches()[1]->request().start_revision, missed + 1);
  EXPECT_EQ(sink.snapshot_revisions, (std::vector<int64_t>{2, missed}));
  EXPECT_EQ(sink.state, (std::map<std::string, std::string>{{"/s/a", "1"}, {"/s/b", "2"}, {"/s/c", "3"}}));

  etcd.put("/s/d", "4");
  ASSERT_TRUE(run_until(io, [&] { return sink.events.size() == 2; }));
  EXPECT_EQ(sink.events[1].kv.key, "/s/d");
  EXPECT_EQ(watcher.stats().watch_starts, 2u);
  EXPECT_EQ(watcher.stats().revision, etcd.revision());
  EXPECT_TRUE(stop_and_join(io, watcher));
}

TEST(PrefixWatcher, ReReadsThePrefixAfterCompactionWithoutBackingOff) {
  asio::io_context io;
  FakeEtcd etcd(io);
  etcd.put("/s/a", "1");
  RecordingSink sink;
  PrefixWatcherOptions slow;  // any backoff would outlast the test's bound
  slow.retry.failed = fixed(60s, 60s);
  slow.retry.canceled = fixed(60s, 60s);
  PrefixWatcher watcher(io, etcd, "/s/", sink, slow);
  watcher.start();
  ASSERT_TRUE(run_until(io, [&] { return etcd.open_watches() == 1; }));

  etcd.put("/s/b", "2");
  etcd.cancel_watches_compacted(etcd.revision());
  ASSERT_TRUE(run_until(io, [&] { return etcd.watches().size() == 2 && etcd.open_watches() == 1; }, 2s));
  EXPECT_EQ(watcher.stats().resyncs, 1u);
  EXPECT_EQ(watcher.stats().retries, 0u);
  EXPECT_EQ(etcd.ranges(), 2);
  EXPECT_EQ(etcd.watches()[1]->request().start_revision, etcd.revision() + 1);
  EXPECT_EQ(sink.state.size(), 2u);
  EXPECT_TRUE(stop_and_join(io, watcher));
}

TEST(PrefixWatcher, BacksOffWhenEtcdKeepsCancelling) {
  asio::io_context io;
  FakeEtcd etcd(io);
  RecordingSink sink;
  PrefixWatcherOptions options;
  options.retry.failed = fixed(1ms, 1ms);       // not this one: etcd answers, it refuses
  options.retry.canceled = fixed(1ms, 4ms);
  PrefixWatcher watcher(io, etcd, "/s/", sink, options);
  etcd.refuse_watches("etcdserver: no leader");
  watcher.start();
  std::vector<std::chrono::milliseconds> delays;
  for (uint64_t n = 1; n <= 4; ++n) {
    ASSERT_TRUE(run_until(io, [&] { return watcher.stats().retries == n; }));
    delays.push_back(watcher.stats().last_retry_delay);
  }
  EXPECT_EQ(delays, (std::vector<std::chrono::milliseconds>{1ms, 2ms, 4ms, 4ms}));
  // Every restart re-reads the prefix: a refusal may hide a replaced store.
  EXPECT_GE(etcd.ranges(), 4);

  etcd.refuse_watches(std::nullopt);
  ASSERT_TRUE(run_until(io, [&] { return etcd.open_watches() == 1; }));
  etcd.put("/s/a", "1");
  ASSERT_TRUE(run_until(io, [&] { return sink.state.count("/s/a") == 1; }));
  EXPECT_TRUE(stop_and_join(io, watcher));
}

TEST(PrefixWatcher, RetriesAFailedReadWithTheFailureBackoff) {
  asio::io_context io;
  FakeEtcd etcd(io);
  etcd.put("/s/a", "1");
  RecordingSink sink;
  PrefixWatcher watcher(io, etcd, "/s/", sink, quick());
  etcd.fail_ranges(2);
  watcher.start();
  ASSERT_TRUE(run_until(io, [&] { return watcher.stats().synced; }));
  EXPECT_EQ(etcd.ranges(), 3);
  EXPECT_EQ(watcher.stats().retries, 2u);
  EXPECT_EQ(sink.state.size(), 1u);
  EXPECT_TRUE(stop_and_join(io, watcher));
}

TEST(PrefixWatcher, IsNotLiveFromALostStreamUntilEtcdAnswersAgain) {
  asio::io_context io;
  FakeEtcd etcd(io);
  etcd.put("/s/a", "1");
  RecordingSink sink;
  PrefixWatcher watcher(io, etcd, "/s/", sink, quick());
  EXPECT_FALSE(watcher.stats().live);
  watcher.start();
  ASSERT_TRUE(run_until(io, [&] { return etcd.open_watches() == 1; }));
  EXPECT_TRUE(watcher.stats().live);

  const auto before = RuntimeClock::now();
  etcd.fail_ranges(3);  // the re-reads fail three times: one outage
  etcd.end_watches(EtcdStatus::failure(14, "connection refused"));
  ASSERT_TRUE(run_until(io, [&] { return watcher.stats().retries == 1; }));
  EXPECT_FALSE(watcher.stats().live);
  const auto down = watcher.stats().down_since;
  EXPECT_GE(down, before);
  EXPECT_TRUE(watcher.stats().synced);  // the set is kept: stale, not gone

  // Failed re-reads keep the outage's start; it is not restarted by each.
  ASSERT_TRUE(run_until(io, [&] { return watcher.stats().retries == 3; }));
  EXPECT_FALSE(watcher.stats().live);
  EXPECT_EQ(watcher.stats().down_since, down);

  ASSERT_TRUE(run_until(io, [&] { return watcher.stats().live && etcd.open_watches() == 1; }));
  EXPECT_EQ(watcher.stats().retries, 4u);
  EXPECT_TRUE(stop_and_join(io, watcher));
}

TEST(PrefixWatcher, ResyncsWhenAnotherClusterAnswers) {
  asio::io_context io;
  FakeEtcd etcd(io);
  etcd.put("/s/a", "1");
  RecordingSink sink;
  PrefixWatcher watcher(io, etcd, "/s/", sink, quick());
  watcher.start();
  ASSERT_TRUE(run_until(io, [&] { return etcd.open_watches() == 1; }));
  etcd.set_cluster_id(FakeEtcd::kClusterId + 1);
  etcd.put("/s/b", "2");
  ASSERT_TRUE(run_until(io, [&] { return sink.snapshot_revisions.size() == 2; }));
  EXPECT_TRUE(sink.events.empty()) << "an event from another cluster was applied";
  EXPECT_EQ(watcher.stats().resyncs, 1u);
  EXPECT_EQ(sink.state.size(), 2u);
  EXPECT_TRUE(stop_and_join(io, watcher));
}

TEST(PrefixWatcher, StopWhileTheStreamOpensStillJoins) {
  asio::io_context io;
  FakeEtcd etcd(io);
  RecordingSink sink;
  PrefixWatcher watcher(io, etcd, "/s/", sink, quick());
  etcd.hold_opens(true);  // a member that never answers the open
  watcher.start();
  ASSERT_TRUE(run_until(io, [&] { return etcd.opening() == 1; }));
  EXPECT_TRUE(stop_and_join(io, watcher)) << "join() hung: stop() did not reach the opening stream";
  EXPECT_TRUE(etcd.watches()[0]->cancelled());
  EXPECT_EQ(watcher.stats().watch_starts, 0u);
}

TEST(PrefixWatcher, StopWhileReadingJoinsAndCancelsTheStream) {
  asio::io_context io;
  FakeEtcd etcd(io);
  RecordingSink sink;
  PrefixWatcher watcher(io, etcd, "/s/", sink, quick());
  watcher.start();
  ASSERT_TRUE(run_until(io, [&] { return etcd.open_watches() == 1; }));
  EXPECT_TRUE(stop_and_join(io, watcher));
  EXPECT_TRUE(etcd.watches()[0]->cancelled());
  EXPECT_EQ(etcd.watches().size(), 1u) << "a stopped watcher opened another stream";
}

TEST(PrefixWatcher, AKeyRangeSeesOnlyThatKey) {
  asio::io_context io;
  FakeEtcd etcd(io);
  etcd.put("/cfg/a", "1");
  etcd.put("/cfg/ab", "2");
  RecordingSink sink;
  PrefixWatcher watcher(io, etcd, "/cfg/a", std::string("/cfg/a") + '\0', sink, quick());
  watcher.start();
  ASSERT_TRUE(run_until(io, [&] { return etcd.open_watches() == 1; }));
  etcd.put("/cfg/ab", "3");
  etcd.put("/cfg/a", "4");
  ASSERT_TRUE(run_until(io, [&] { return sink.events.size() == 1; }));
  EXPECT_EQ(sink.state, (std::map<std::string, std::string>{{"/cfg/a", "4"}}));
  EXPECT_TRUE(stop_and_join(io, watcher));
}

}  // namespace
}  // namespace sidecar::runtime
