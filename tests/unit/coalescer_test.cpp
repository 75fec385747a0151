#include "agent/core/coalescer.hpp"

#include <gtest/gtest.h>

#include <functional>
#include <vector>

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

TEST(Coalescer, ChangeRightAfterAWriteWaitsTenTimesWhatThatWriteCost) {
  Coalescer c(0ms, 1000ms);
  c.on_change(kT0);
  c.on_flushed(kT0);
  c.on_cost(2ms);  // render + write + fsync + rename
  ASSERT_EQ(c.holdoff(), 20ms);
  c.on_change(kT0 + 3ms);
  EXPECT_FALSE(c.should_flush(kT0 + 19ms));
  EXPECT_EQ(*c.due(), kT0 + 20ms);
  EXPECT_TRUE(c.should_flush(kT0 + 20ms));
}

TEST(Coalescer, CheapWriteLetsTheNextChangeThroughWithinAFewMs) {
  // The stream case of issue 16: the old fixed holdoff (max/10) held this change 100 ms.
  Coalescer c(0ms, 1000ms);
  c.on_change(kT0);
  c.on_flushed(kT0);
  c.on_cost(300us);
  c.on_change(kT0 + 1ms);
  EXPECT_EQ(*c.due(), kT0 + 3ms);
}

TEST(Coalescer, CommandCostsAddToTheWriteCost) {
  Coalescer c(0ms, 1000ms);
  c.on_change(kT0);
  c.on_flushed(kT0);
  c.on_cost(1ms);   // the write
  c.on_cost(30ms);  // on_change after it
  EXPECT_EQ(c.holdoff(), 310ms);
}

TEST(Coalescer, CostBasedHoldoffIsClampedToMax) {
  Coalescer c(0ms, 200ms);
  c.on_change(kT0);
  c.on_flushed(kT0);
  c.on_cost(50ms);
  EXPECT_EQ(c.holdoff(), 200ms);
  c.on_cost(Coalescer::Duration::max() / 2);  // no overflow into a negative spacing
  EXPECT_EQ(c.holdoff(), 200ms);
}

TEST(Coalescer, EachWriteIsPacedByItsOwnCostNotAnOlderOne) {
  Coalescer c(0ms, 1000ms);
  c.on_change(kT0);
  c.on_flushed(kT0);
  c.on_cost(40ms);
  EXPECT_EQ(c.holdoff(), 400ms);
  c.on_change(kT0 + 400ms);
  c.on_flushed(kT0 + 400ms);
  c.on_cost(1ms);
  EXPECT_EQ(c.holdoff(), 10ms);
}

TEST(Coalescer, FixedHoldoffIgnoresCost) {
  Coalescer c(0ms, 1000ms, 200ms);
  EXPECT_TRUE(c.holdoff_fixed());
  c.on_change(kT0);
  c.on_flushed(kT0);
  c.on_cost(1ms);
  c.on_change(kT0 + 1ms);
  EXPECT_EQ(*c.due(), kT0 + 200ms);
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

// `cost(n)` is what a write of the first n changes costs (a growing list costs more); the loop is busy for
// that long, so a change during a write is looked at after it. The delay counts until the write ends.
using CostModel = std::function<Coalescer::Duration(size_t)>;

Simulation simulate(Coalescer& c, const std::vector<TimePoint>& changes,
                    const CostModel& cost = [](size_t) { return Coalescer::Duration{0}; }) {
  Simulation sim;
  std::vector<TimePoint> unflushed;
  size_t seen = 0;
  TimePoint busy_until{};
  auto flush = [&](TimePoint now) {
    ++sim.writes;
    c.on_flushed(now);
    const Coalescer::Duration spent = cost(seen);
    c.on_cost(spent);
    busy_until = now + spent;
    for (TimePoint t : unflushed) sim.worst_delay = std::max(sim.worst_delay, busy_until - t);
    unflushed.clear();
  };
  auto next_flush = [&]() { return std::max(*c.due(), busy_until); };
  for (TimePoint t : changes) {
    // A timer set at due() fires before this change if it is earlier.
    if (c.pending() && next_flush() < t) flush(next_flush());
    c.on_change(t);
    ++seen;
    unflushed.push_back(t);
    if (c.should_flush(t) && busy_until <= t) flush(t);
  }
  while (c.pending()) flush(next_flush());
  return sim;
}

// Rendering and writing 10,000 instances: about 100 ns each plus a fixed 200 us (fsync, rename).
Coalescer::Duration list_cost(size_t n) { return 200us + n * 100ns; }

TEST(Coalescer, BurstOfTenThousandChangesOver100msCostsTensOfWritesNotThousands) {
  Coalescer c(0ms, 1000ms);
  std::vector<TimePoint> changes;
  for (int i = 0; i < 10000; ++i) changes.push_back(kT0 + i * 10us);  // 10k changes in 100 ms
  Simulation sim = simulate(c, changes, list_cost);
  EXPECT_GE(sim.writes, 2);
  EXPECT_LT(sim.writes, 100);
  // The last write ends within ten times its own cost (1.2 ms) of the last change.
  EXPECT_LE(sim.worst_delay, 1000ms);
}

TEST(Coalescer, BurstSpendsAtMostAboutATenthOfItsTimeWriting) {
  Coalescer c(0ms, 1000ms);
  std::vector<TimePoint> changes;
  for (int i = 0; i < 10000; ++i) changes.push_back(kT0 + i * 10us);
  int writes = 0;
  Coalescer::Duration writing{0};
  auto counting_cost = [&](size_t n) {
    ++writes;
    writing += list_cost(n);
    return list_cost(n);
  };
  simulate(c, changes, counting_cost);
  const Coalescer::Duration burst = 100ms;
  // Each spacing is a tenth of the write before it; the first write meets no spacing and the last one
  // follows the burst, so those two come on top of the tenth.
  EXPECT_LE(writing, burst / Coalescer::kCostFactor + 2 * list_cost(changes.size()));
  EXPECT_GE(writes, 2);
}

TEST(Coalescer, BurstWithSmallMaxStillBoundedAndHonoursMax) {
  Coalescer c(0ms, 50ms);
  std::vector<TimePoint> changes;
  for (int i = 0; i < 10000; ++i) changes.push_back(kT0 + i * 10us);
  Simulation sim = simulate(c, changes, list_cost);
  EXPECT_LT(sim.writes, 100);
  EXPECT_LE(sim.worst_delay, 50ms + list_cost(changes.size()));
}

TEST(Coalescer, StreamOfChangesAFewMsApartIsWrittenWithinAFewMsEach) {
  Coalescer c(0ms, 1000ms);
  std::vector<TimePoint> changes;
  for (int i = 0; i < 200; ++i) changes.push_back(kT0 + i * 3ms);
  Simulation sim = simulate(c, changes, [](size_t) { return Coalescer::Duration{300us}; });
  EXPECT_EQ(sim.writes, 200);
  EXPECT_LE(sim.worst_delay, 1ms);
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

TEST(CommandPacer, FirstRunMayStartAtOnce) {
  CommandPacer p;
  EXPECT_TRUE(p.may_start(kT0));
}

TEST(CommandPacer, NeverTwoRunsAtOnce) {
  CommandPacer p;
  p.on_started(kT0);
  EXPECT_TRUE(p.running());
  EXPECT_FALSE(p.next_start().has_value());
  EXPECT_FALSE(p.may_start(kT0 + 1h));
}

TEST(CommandPacer, NextRunWaitsTenTimesTheLastRunsDurationFromItsStart) {
  CommandPacer p;
  p.on_started(kT0);
  p.on_finished(kT0 + 100ms);
  EXPECT_EQ(*p.next_start(), kT0 + 1000ms);
  EXPECT_FALSE(p.may_start(kT0 + 999ms));
  EXPECT_TRUE(p.may_start(kT0 + 1000ms));
}

TEST(CommandPacer, AHundredMsCommandRunsAboutOnceASecondUnderAnEndlessStream) {
  CommandPacer p;
  int runs = 0;
  // Always owed for 5 s: each run starts as soon as it may and takes 100 ms.
  TimePoint t = kT0;
  while (t < kT0 + 5s) {
    ASSERT_TRUE(p.may_start(t));
    p.on_started(t);
    ++runs;
    p.on_finished(t + 100ms);
    t = *p.next_start();
  }
  EXPECT_EQ(runs, 5);
}

TEST(CommandPacer, ACheapCommandIsPacedByItsOwnCost) {
  CommandPacer p;
  p.on_started(kT0);
  p.on_finished(kT0 + 5ms);
  EXPECT_EQ(*p.next_start(), kT0 + 50ms);
}

}  // namespace
}  // namespace sidecar::core
