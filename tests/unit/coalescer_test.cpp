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

TEST(Coalescer, SeveralChangesRightAfterAWriteWaitTenTimesWhatThatWriteCostAfterIt) {
  Coalescer c(0ms, 1000ms);
  c.on_change(kT0);
  c.on_flushed(kT0);
  c.on_cost(2ms);  // render + write + fsync + rename
  c.on_change(kT0 + 3ms);
  c.on_change(kT0 + 4ms);  // a burst: holding back merges these
  EXPECT_FALSE(c.should_flush(kT0 + 21ms));
  EXPECT_EQ(*c.due(), kT0 + 22ms);
  EXPECT_TRUE(c.should_flush(kT0 + 22ms));
}

TEST(Coalescer, OneWatchResponseWithManyKeysIsPacedAsABurst) {
  Coalescer c(0ms, 1000ms);
  c.on_change(kT0);
  c.on_flushed(kT0);
  c.on_cost(2ms);
  c.on_change(kT0 + 3ms, 128);  // a Txn of 128 puts
  EXPECT_EQ(*c.due(), kT0 + 22ms);
}

TEST(Coalescer, SingleChangeRightAfterAnExpensiveWriteGoesOutAtOnce) {
  // The stream case of issue 16: a client puts, waits for the file, puts again. Holding its change back
  // would merge it with nothing; with 10,000 instances (a 3 ms write) the per-write holdoff held it 30 ms.
  Coalescer c(0ms, 1000ms);
  c.on_change(kT0);
  c.on_flushed(kT0);
  c.on_cost(3ms);
  c.on_change(kT0 + 5ms);
  EXPECT_EQ(*c.due(), kT0 + 5ms);
}

TEST(Coalescer, StreamOfSingleChangesIsPacedOnceItSpentItsAllowance) {
  Coalescer c(0ms, 1000ms);
  // 5 ms writes, the next change 1 ms after each ends: 5/6 of the time writing, far above a tenth.
  TimePoint t = kT0;
  int at_once = 0;
  for (int i = 0; i < 200; ++i) {
    c.on_change(t);
    if (*c.due() > t) break;
    ++at_once;
    c.on_flushed(t);
    c.on_cost(5ms);
    t += 6ms;
  }
  // Each write runs 5 ms - 6 ms / 10 = 4.4 ms ahead of the pace; the allowance covers 250 / 4.4 of them.
  EXPECT_GE(at_once, 56);
  EXPECT_LE(at_once, 58);
  EXPECT_GT(*c.due(), t);
  EXPECT_LE(*c.due(), t + 50ms);  // then paced: about ten times a write
}

TEST(Coalescer, AllowanceComesBackAtTheRateOfThePace) {
  Coalescer c(0ms, 1000ms);
  c.on_change(kT0);
  c.on_flushed(kT0);
  c.on_cost(300ms);  // 300 ms ahead of the pace: 50 ms beyond the stream allowance
  c.on_change(kT0 + 300ms);
  EXPECT_EQ(*c.due(), kT0 + 800ms);  // 3 s of pace after the write, minus the 2.5 s the allowance covers
  EXPECT_EQ(c.ahead_of_pace(kT0 + 800ms), 250ms);
  EXPECT_EQ(c.ahead_of_pace(kT0 + 3300ms), 0ms);
}

TEST(Coalescer, CheckCommandCostAddsToTheWriteCost) {
  Coalescer c(0ms, 1000ms);
  c.on_change(kT0);
  c.on_flushed(kT0);
  c.on_cost(1ms);   // the write
  c.on_cost(30ms);  // check_command for it
  c.on_change(kT0 + 40ms, 2);
  c.on_change(kT0 + 320ms, 2);  // still coming: no settled allowance
  EXPECT_EQ(*c.due(), kT0 + 331ms);
}

TEST(Coalescer, BudgetNeverHoldsAChangeLongerThanMax) {
  Coalescer c(0ms, 200ms);
  c.on_change(kT0);
  c.on_flushed(kT0);
  c.on_cost(50ms);
  c.on_change(kT0 + 60ms, 5);
  EXPECT_EQ(*c.due(), kT0 + 260ms);
  c.on_flushed(kT0 + 260ms);
  c.on_cost(Coalescer::Duration::max() / 2);  // no overflow into a spacing in the past
  c.on_cost(Coalescer::Duration::max() / 2);  // nor when parts of one write add up
  c.on_change(kT0 + 270ms, 5);
  EXPECT_EQ(*c.due(), kT0 + 470ms);
  EXPECT_GT(c.ahead_of_pace(kT0 + 270ms), 1h);
}

TEST(Coalescer, DebtTheMaxBoundCouldNotCollectIsForgiven) {
  // 400 ms writes under max 1 s: the budget wants 4 s between them, max forces one a second. After such a
  // stream ends, a lone change must not find the output many seconds behind pace.
  Coalescer c(0ms, 1000ms);
  TimePoint t = kT0;
  for (int i = 0; i < 100; ++i) {
    c.on_change(t, 2);
    t = *c.due();
    c.on_flushed(t);
    c.on_cost(400ms);
  }
  // At most what max, the last write and the allowance account for: (1 s + 400 ms) / 10 + 250 ms. Kept
  // whole, 100 writes would leave it 30 s ahead.
  EXPECT_LE(c.ahead_of_pace(t), (1000ms + 400ms) / Coalescer::kCostFactor + Coalescer::kStreamAllowance);
}

TEST(Coalescer, EachWriteOfABurstIsPacedByTheCostsBeforeIt) {
  Coalescer c(0ms, 1000ms);
  c.on_change(kT0);
  c.on_flushed(kT0);
  c.on_cost(40ms);
  c.on_change(kT0 + 50ms, 3);
  c.on_change(kT0 + 430ms, 3);  // the burst goes on
  EXPECT_EQ(*c.due(), kT0 + 440ms);
  c.on_flushed(kT0 + 440ms);
  c.on_cost(1ms);
  c.on_change(kT0 + 442ms, 3);
  EXPECT_EQ(*c.due(), kT0 + 451ms);
}

TEST(Coalescer, LastWriteOfABurstWaitsOnlyUntilTheBurstSettles) {
  // With 10,000 instances on a busy host a write may cost 8 ms: pacing would hold the burst's last
  // changes 80 ms after it. Once nothing came for kSettle they go, a little ahead of the pace.
  Coalescer c(0ms, 1000ms);
  c.on_change(kT0, 5);
  c.on_flushed(kT0);
  c.on_cost(8ms);
  c.on_change(kT0 + 9ms, 3);
  c.on_change(kT0 + 10ms, 3);
  EXPECT_EQ(*c.due(), kT0 + 10ms + Coalescer::kSettle);
}

TEST(Coalescer, StreamSettlesKSettleAfterItsLastChange) {
  Coalescer c(0ms, 1000ms);
  c.on_change(kT0);
  c.on_change(kT0 + 5ms);
  c.on_change(kT0 + 3ms);  // a late-reported older change does not move it back
  EXPECT_EQ(c.settled_at(), kT0 + 5ms + Coalescer::kSettle);
}

TEST(Coalescer, SettledWriteMayRunOnlyTheSettledAllowanceAheadOfPace) {
  Coalescer c(0ms, 1000ms);
  c.on_change(kT0, 5);
  c.on_flushed(kT0);
  c.on_cost(50ms);  // paid 550 ms after the capture; the settled allowance covers 200 ms of it
  c.on_change(kT0 + 60ms, 3);
  c.on_change(kT0 + 61ms, 3);
  EXPECT_EQ(*c.due(), kT0 + 350ms);
}

TEST(Coalescer, IdleTimeIsNotBankedBeyondTheAllowance) {
  Coalescer c(0ms, 1000ms);
  c.on_change(kT0);
  c.on_flushed(kT0);
  c.on_cost(1ms);
  // An hour idle, then a burst: the first write goes at once, the next is spaced by its cost as usual.
  const TimePoint later = kT0 + 1h;
  c.on_change(later, 3);
  EXPECT_EQ(*c.due(), later);
  c.on_flushed(later);
  c.on_cost(2ms);
  c.on_change(later + 3ms, 3);
  EXPECT_EQ(*c.due(), later + 22ms);
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

TEST(Coalescer, FixedHoldoffIsSpacingEvenAfterAnExpensiveWrite) {
  Coalescer c(0ms, 1000ms, 20ms);
  c.on_change(kT0);
  c.on_flushed(kT0);
  c.on_cost(500ms);
  c.on_change(kT0 + 1ms, 10);
  EXPECT_EQ(*c.due(), kT0 + 20ms);
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
  c.on_change(kT0);
  c.on_flushed(kT0);
  c.on_cost(10ms);
  c.on_change(kT0 + 1us, 5);
  EXPECT_TRUE(c.should_flush(kT0 + 1us));
}

TEST(Coalescer, ExplicitHoldoffIsClampedToMax) {
  Coalescer c(0ms, 100ms, 5s);
  c.on_change(kT0);
  c.on_flushed(kT0);
  c.on_change(kT0 + 1ms);
  EXPECT_EQ(*c.due(), kT0 + 100ms);  // 100 ms from the write, not 5 s (nor the cap at 101 ms)
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

// A client that puts, waits for the file, then puts the next (issue 16's stream), with 10,000 instances
// listed: each write costs `cost`, and the next change arrives `gap` after it ends. Returns how many of
// `n` changes waited at all.
int closed_loop_stream(Coalescer& c, int n, Coalescer::Duration cost, Coalescer::Duration gap) {
  int held = 0;
  TimePoint t = kT0;
  for (int i = 0; i < n; ++i) {
    c.on_change(t);
    const TimePoint at = std::max(*c.due(), t);
    if (at > t) ++held;
    c.on_flushed(at);
    c.on_cost(cost);
    t = at + cost + gap;
  }
  return held;
}

TEST(Coalescer, ClosedLoopStreamToALargeListIsNotHeldBack) {
  Coalescer c(0ms, 1000ms);
  // 1 ms writes (a 1 MB file on tmpfs), the next put seen 2.5 ms later: 200 changes, none held.
  EXPECT_EQ(closed_loop_stream(c, 200, 1ms, 2500us), 0);
}

TEST(Coalescer, EndlessClosedLoopStreamIsPacedDownToATenth) {
  Coalescer c(0ms, 1000ms);
  // The same client going on for 10,000 changes: once the allowance is spent it waits, so that writing
  // stays near a tenth of the time.
  const int n = 10000;
  const auto cost = 1ms;
  TimePoint t = kT0;
  for (int i = 0; i < n; ++i) {
    c.on_change(t);
    const TimePoint at = std::max(*c.due(), t);
    c.on_flushed(at);
    c.on_cost(cost);
    t = at + cost + 2500us;
  }
  const auto elapsed = t - kT0;
  const auto writing = n * cost;
  EXPECT_LE(writing, elapsed / Coalescer::kCostFactor + Coalescer::kStreamAllowance + cost);
  EXPECT_GE(writing, elapsed / (Coalescer::kCostFactor + 1));  // and it is not held back more than that
}

TEST(Coalescer, LastChangeOfABurstWaitsAtMostTenTimesAWrite) {
  Coalescer c(0ms, 1000ms);
  std::vector<TimePoint> changes;
  for (int i = 0; i < 10000; ++i) changes.push_back(kT0 + i * 40us);  // 32 writers: 10k puts in 400 ms
  Simulation sim = simulate(c, changes, list_cost);
  // The last change may land as a write starts: it waits for that write, ten times its cost, then its own.
  EXPECT_LE(sim.worst_delay, (Coalescer::kCostFactor + 2) * list_cost(changes.size()));
}

TEST(Coalescer, BurstWithPausesGainsAtMostTheSettledAllowanceFromThem) {
  Coalescer c(0ms, 10s);
  // A watch response of 5 keys every 25 ms for 2 s, each pause longer than kSettle; a write costs 5 ms, so
  // the pace allows one every 55 ms, not one per response.
  Coalescer::Duration writing{0};
  TimePoint busy_until{};
  for (int i = 0; i < 80; ++i) {
    const TimePoint t = kT0 + i * 25ms;
    c.on_change(t, 5);
    const TimePoint at = std::max({*c.due(), t, busy_until});
    if (at < t + 25ms) {  // flushed before the next response
      c.on_flushed(at);
      c.on_cost(5ms);
      busy_until = at + 5ms;
      writing += 5ms;
    }
  }
  // Without the bound each response would be a write: 400 ms.
  EXPECT_LE(writing, Coalescer::Duration{2s} / Coalescer::kCostFactor + Coalescer::kSettledAllowance + 5ms);
  EXPECT_GE(writing, Coalescer::Duration{2s} / (Coalescer::kCostFactor + 1));
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

TEST(Coalescer, AnOnChangeRunIsChargedToTheSameBudgetAsTheWrite) {
  // A 1 ms write, then a 100 ms reload: the next write of a burst waits for ten times both, not the write
  // alone, so the file and its reload together take about a tenth of the time.
  Coalescer c(0ms, 5000ms);
  const TimePoint t0{};
  c.on_change(t0, 2);
  c.on_flushed(t0);
  c.on_cost(1ms);
  c.on_command_cost(t0 + 101ms, 100ms);
  c.on_change(t0 + 110ms, 2);
  c.on_change(t0 + 111ms, 2);
  ASSERT_TRUE(c.due().has_value());
  // Ten times the reload after it ended, less what a settled burst may run ahead (without the reload's
  // charge the write would be due at once: 10 x 1 ms after the write is long past).
  EXPECT_GE(*c.due(), t0 + 101ms + 1000ms - Coalescer::kSettledAllowance * Coalescer::kCostFactor);
  EXPECT_LE(*c.due(), t0 + 110ms + 5000ms);  // and never past max
}

}  // namespace
}  // namespace sidecar::core
