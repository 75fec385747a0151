#include "agent/core/backoff.hpp"

#include <gtest/gtest.h>

#include <chrono>

namespace {

using namespace std::chrono_literals;
using sidecar::core::Backoff;
using sidecar::core::BackoffPolicy;

constexpr double kNoJitter = 0.5;  // the middle of [0,1): factor exactly 1.0

TEST(Backoff, DoublesFromInitialUntilTheCap) {
  Backoff backoff;
  EXPECT_EQ(backoff.next(kNoJitter), 50ms);
  EXPECT_EQ(backoff.next(kNoJitter), 100ms);
  EXPECT_EQ(backoff.next(kNoJitter), 200ms);
  EXPECT_EQ(backoff.next(kNoJitter), 400ms);
  EXPECT_EQ(backoff.next(kNoJitter), 800ms);
  EXPECT_EQ(backoff.next(kNoJitter), 1000ms);
  EXPECT_EQ(backoff.next(kNoJitter), 1000ms);
}

TEST(Backoff, DefaultCapStaysNearOneSecondWithJitter) {
  Backoff backoff;
  for (int i = 0; i < 20; ++i) backoff.next(kNoJitter);
  EXPECT_EQ(backoff.next(0.0), 800ms);
  EXPECT_EQ(backoff.next(0.999999), 1200ms);
  EXPECT_EQ(backoff.next(kNoJitter), 1000ms);
}

TEST(Backoff, JitterStaysWithinItsFractionOfTheDelay) {
  for (double draw : {0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.999999}) {
    Backoff backoff(BackoffPolicy{.initial = 1000ms, .max = 10000ms, .multiplier = 2.0, .jitter = 0.2});
    const auto delay = backoff.next(draw);
    EXPECT_GE(delay, 800ms) << "draw " << draw;
    EXPECT_LE(delay, 1200ms) << "draw " << draw;
  }
  Backoff low(BackoffPolicy{.initial = 1000ms});
  Backoff high(BackoffPolicy{.initial = 1000ms});
  EXPECT_LT(low.next(0.1), high.next(0.9));  // the draw actually moves the delay
}

TEST(Backoff, ClampsDrawsOutsideTheUnitInterval) {
  Backoff below;
  Backoff above;
  EXPECT_EQ(below.next(-3.0), 40ms);
  EXPECT_EQ(above.next(7.0), 60ms);
}

TEST(Backoff, ResetStartsOverFromInitial) {
  Backoff backoff;
  backoff.next(kNoJitter);
  backoff.next(kNoJitter);
  backoff.next(kNoJitter);
  ASSERT_EQ(backoff.attempts(), 3);
  backoff.reset();
  EXPECT_EQ(backoff.attempts(), 0);
  EXPECT_EQ(backoff.next(kNoJitter), 50ms);
}

// Callers log only when attempts() == 0; a policy whose first delay is already the cap must still count,
// or every failure of a streak would be logged.
TEST(Backoff, CountsAttemptsAlsoAtTheCap) {
  Backoff backoff(BackoffPolicy{.initial = 1000ms, .max = 1000ms});
  backoff.next(kNoJitter);
  EXPECT_EQ(backoff.attempts(), 1);
  backoff.next(kNoJitter);
  EXPECT_EQ(backoff.attempts(), 2);
}

TEST(Backoff, StaysAtTheCapThroughALongOutage) {
  Backoff backoff;
  for (int i = 0; i < 100000; ++i) backoff.next(kNoJitter);
  EXPECT_EQ(backoff.next(kNoJitter), 1000ms);
  EXPECT_EQ(backoff.next(0.0), 800ms);
}

TEST(Backoff, NeverReturnsAZeroDelay) {
  Backoff backoff(BackoffPolicy{.initial = 0ms, .max = 0ms, .multiplier = 2.0, .jitter = 0.5});
  EXPECT_EQ(backoff.next(0.0), 1ms);
}

}  // namespace
