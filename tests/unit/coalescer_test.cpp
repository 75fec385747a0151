#include "agent/core/coalescer.hpp"

#include <gtest/gtest.h>

namespace sidecar::core {
namespace {

using namespace std::chrono_literals;
using TimePoint = Coalescer::TimePoint;

// An arbitrary, non-zero origin so nothing accidentally relies on the clock's epoch.
const TimePoint kT0 = TimePoint{} + 1000h;

TEST(Coalescer, NothingPendingMeansNothingDue) {
  Coalescer c(0ms, 1000ms);
  EXPECT_FALSE(c.pending());
  EXPECT_FALSE(c.due().has_value());
  EXPECT_FALSE(c.should_flush(kT0));
}

TEST(Coalescer, LoneChangeIsDueAtOnceWhenMinIsZero) {
  Coalescer c(0ms, 1000ms);
  c.on_change(kT0);
  ASSERT_TRUE(c.due().has_value());
  EXPECT_EQ(*c.due(), kT0);
  EXPECT_TRUE(c.should_flush(kT0));
}

TEST(Coalescer, LoneChangeLongAfterPreviousWriteIsDueAtOnce) {
  Coalescer c(0ms, 1000ms);
  c.on_change(kT0);
  c.on_flushed(kT0);
  EXPECT_FALSE(c.pending());
  c.on_change(kT0 + 10s);
  EXPECT_EQ(*c.due(), kT0 + 10s);
}

TEST(Coalescer, ChangeRightAfterAWriteWaitsForTheHoldoff) {
  Coalescer c(0ms, 1000ms);
  ASSERT_EQ(c.holdoff(), 100ms);
  c.on_change(kT0);
  c.on_flushed(kT0);
  c.on_change(kT0 + 1ms);
  EXPECT_FALSE(c.should_flush(kT0 + 1ms));
  EXPECT_FALSE(c.should_flush(kT0 + 99ms));
  EXPECT_EQ(*c.due(), kT0 + 100ms);
  EXPECT_TRUE(c.should_flush(kT0 + 100ms));
}

TEST(Coalescer, MinRequiresQuiescence) {
  Coalescer c(50ms, 1000ms);
  c.on_change(kT0);
  EXPECT_EQ(*c.due(), kT0 + 50ms);
  c.on_change(kT0 + 30ms);  // the stream is not quiet yet: pushed back
  EXPECT_EQ(*c.due(), kT0 + 80ms);
  EXPECT_FALSE(c.should_flush(kT0 + 79ms));
  EXPECT_TRUE(c.should_flush(kT0 + 80ms));
}

TEST(Coalescer, MaxBoundsTheDelayOfAContinuousStream) {
  Coalescer c(50ms, 200ms);
  TimePoint t = kT0;
  for (int i = 0; i < 100; ++i, t += 10ms) c.on_change(t);  // never quiet for 50 ms
  EXPECT_EQ(*c.due(), kT0 + 200ms);
}

TEST(Coalescer, MaxIsMeasuredFromTheFirstUnflushedChange) {
  Coalescer c(50ms, 200ms);
  c.on_change(kT0);
  c.on_flushed(kT0 + 50ms);
  TimePoint first = kT0 + 300ms;
  for (TimePoint t = first; t < first + 400ms; t += 10ms) c.on_change(t);
  EXPECT_EQ(*c.due(), first + 200ms);
}

TEST(Coalescer, MinLargerThanMaxIsClampedToMax) {
  Coalescer c(5s, 1s);
  EXPECT_EQ(c.min(), 1s);
  c.on_change(kT0);
  EXPECT_EQ(*c.due(), kT0 + 1s);
}

TEST(Coalescer, MaxZeroDisablesCoalescing) {
  Coalescer c(0ms, 0ms);
  EXPECT_EQ(c.holdoff(), 0ms);
  c.on_change(kT0);
  c.on_flushed(kT0);
  c.on_change(kT0 + 1us);
  EXPECT_TRUE(c.should_flush(kT0 + 1us));
}

TEST(Coalescer, DefaultHoldoffIsATenthOfMaxCappedAt100ms) {
  EXPECT_EQ(Coalescer::default_holdoff(0ms), 0ms);
  EXPECT_EQ(Coalescer::default_holdoff(50ms), 5ms);
  EXPECT_EQ(Coalescer::default_holdoff(1000ms), 100ms);
  EXPECT_EQ(Coalescer::default_holdoff(60s), 100ms);
}

TEST(Coalescer, ExplicitHoldoffIsClampedToMax) {
  Coalescer c(0ms, 100ms, 5s);
  EXPECT_EQ(c.holdoff(), 100ms);
}

TEST(Coalescer, ClearPendingDropsTheChange) {
  Coalescer c(0ms, 1000ms);
  c.on_change(kT0);
  c.clear_pending();
  EXPECT_FALSE(c.pending());
  EXPECT_FALSE(c.should_flush(kT0 + 1h));
}

// Drives the coalescer the way the runtime does: every change is followed by a loop turn that flushes
// when due; timers fire at due(). Returns the number of writes and the latest delay of any change.
struct Simulation {
  int writes = 0;
  Coalescer::Duration worst_delay{0};
};

Simulation simulate(Coalescer& c, const std::vector<TimePoint>& changes) {
  Simulation sim;
  std::vector<TimePoint> unflushed;
  auto flush = [&](TimePoint now) {
    ++sim.writes;
    for (TimePoint t : unflushed) sim.worst_delay = std::max(sim.worst_delay, now - t);
    unflushed.clear();
    c.on_flushed(now);
  };
  for (TimePoint t : changes) {
    // A timer set at due() fires before this change if it is earlier.
    if (auto when = c.due(); when && *when < t) flush(*when);
    c.on_change(t);
    unflushed.push_back(t);
    if (c.should_flush(t)) flush(t);
  }
  while (auto when = c.due()) flush(*when);
  return sim;
}

TEST(Coalescer, BurstOfTenThousandChangesOver100msCostsAHandfulOfWrites) {
  Coalescer c(0ms, 1000ms);
  std::vector<TimePoint> changes;
  for (int i = 0; i < 10000; ++i) changes.push_back(kT0 + i * 10us);  // 10k changes in 100 ms
  Simulation sim = simulate(c, changes);
  EXPECT_GE(sim.writes, 2);
  EXPECT_LT(sim.writes, 50);
  EXPECT_LE(sim.worst_delay, 1000ms);
}

TEST(Coalescer, BurstWithSmallMaxStillBoundedAndHonoursMax) {
  Coalescer c(0ms, 50ms);  // holdoff 5 ms
  std::vector<TimePoint> changes;
  for (int i = 0; i < 10000; ++i) changes.push_back(kT0 + i * 10us);
  Simulation sim = simulate(c, changes);
  EXPECT_LT(sim.writes, 50);
  EXPECT_LE(sim.worst_delay, 50ms);
}

TEST(Coalescer, SparseChangesAreEachWrittenImmediately) {
  Coalescer c(0ms, 1000ms);
  std::vector<TimePoint> changes;
  for (int i = 0; i < 20; ++i) changes.push_back(kT0 + i * 1s);
  Simulation sim = simulate(c, changes);
  EXPECT_EQ(sim.writes, 20);
  EXPECT_EQ(sim.worst_delay, 0ms);
}

TEST(Coalescer, WithMinAQuietBurstIsOneWrite) {
  Coalescer c(20ms, 1000ms);
  std::vector<TimePoint> changes;
  for (int i = 0; i < 1000; ++i) changes.push_back(kT0 + i * 100us);
  Simulation sim = simulate(c, changes);
  EXPECT_EQ(sim.writes, 1);
  EXPECT_EQ(sim.worst_delay, 100ms - 100us + 20ms);
}

TEST(Coalescer, EndlessStreamIsWrittenAtLeastEveryMax) {
  Coalescer c(20ms, 300ms);
  std::vector<TimePoint> changes;
  for (int i = 0; i < 3000; ++i) changes.push_back(kT0 + i * 1ms);  // 3 s, never quiet
  Simulation sim = simulate(c, changes);
  EXPECT_LE(sim.worst_delay, 300ms);
  EXPECT_GE(sim.writes, 10);
}

}  // namespace
}  // namespace sidecar::core
