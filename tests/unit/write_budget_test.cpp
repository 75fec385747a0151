#include "agent/core/write_budget.hpp"

#include <gtest/gtest.h>

namespace sidecar::core {
namespace {

using namespace std::chrono_literals;
using TimePoint = WriteBudget::TimePoint;

const TimePoint kT0 = TimePoint{} + 1000h;

TEST(WriteBudget, FreshBudgetLetsAWriteStartAtOnce) {
  WriteBudget b(10s);
  EXPECT_LE(b.next_start(0ms), kT0);
  EXPECT_EQ(b.ahead(kT0), 0ms);
}

TEST(WriteBudget, WithoutAllowanceTheNextWriteWaitsTenTimesTheCostAfterTheEnd) {
  WriteBudget b(10s);
  b.charge(kT0 + 3ms, 3ms);
  EXPECT_EQ(b.next_start(0ms), kT0 + 33ms);
  EXPECT_EQ(b.ahead(kT0 + 3ms), 3ms);
}

TEST(WriteBudget, CostsOfBackToBackWritesAccumulate) {
  WriteBudget b(10s);
  b.charge(kT0 + 2ms, 2ms);
  b.charge(kT0 + 4ms, 2ms);  // ended before the first was paid for
  EXPECT_EQ(b.next_start(0ms), kT0 + 42ms);
}

TEST(WriteBudget, AllowanceLetsWritingRunAheadOfThePaceByThatMuch) {
  WriteBudget b(10s);
  b.charge(kT0 + 30ms, 30ms);
  EXPECT_EQ(b.next_start(20ms), kT0 + 130ms);  // 30 ms ahead, 20 ms allowed: 10 ms to recover
  EXPECT_EQ(b.next_start(30ms), kT0 + 30ms);
}

TEST(WriteBudget, IdleTimeRefillsButIsNotBanked) {
  WriteBudget b(10s);
  b.charge(kT0 + 5ms, 5ms);
  // Long after it was paid for, a write restarts the pace from its own end: an hour idle buys nothing.
  b.charge(kT0 + 1h + 5ms, 5ms);
  EXPECT_EQ(b.next_start(0ms), kT0 + 1h + 55ms);
}

TEST(WriteBudget, WithoutAllowanceWritingTakesAnEleventh) {
  WriteBudget b(100s);
  TimePoint t = kT0;
  for (int i = 0; i < 1000; ++i) {
    t = std::max(t, b.next_start(0ms)) + 3ms;  // each write starts as soon as it may and takes 3 ms
    b.charge(t, 3ms);
  }
  EXPECT_EQ(t - kT0, 1000 * 33ms - 30ms);
}

TEST(WriteBudget, OverAWindowWritingTakesAtMostATenthPlusTheAllowance) {
  WriteBudget b(100s);
  // A writer that always writes 2 ms as soon as an allowance of 50 ms lets it.
  TimePoint t = kT0;
  WriteBudget::Duration written{0};
  while (t < kT0 + 10s) {
    t = std::max(t, b.next_start(50ms));
    t += 2ms;
    b.charge(t, 2ms);
    written += 2ms;
  }
  EXPECT_LE(written, (t - kT0) / WriteBudget::kDutyFactor + 50ms + 2ms);
  EXPECT_GE(written, (t - kT0) / WriteBudget::kDutyFactor + 50ms - 2ms);
}

TEST(WriteBudget, DebtBeyondForgiveIsDropped) {
  WriteBudget b(1s);
  b.charge(kT0 + 500ms, 500ms);  // 5 s of pace, but at most 1 s beyond the write's end is remembered
  EXPECT_EQ(b.next_start(0ms), kT0 + 1500ms);
}

TEST(WriteBudget, HugeCostDoesNotOverflowIntoThePast) {
  WriteBudget b(24h);
  b.charge(kT0, WriteBudget::Duration::max());
  EXPECT_GT(b.next_start(0ms), kT0 + 1h);
  EXPECT_GT(b.ahead(kT0), 1h);
}

}  // namespace
}  // namespace sidecar::core
