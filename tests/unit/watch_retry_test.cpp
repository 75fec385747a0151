// core::WatchRetry: a watch etcd keeps cancelling backs off instead of spinning, the backoff starts over
// only after a watch proved healthy, and each outage is logged once, not once per cycle.
#include "agent/core/watch_retry.hpp"

#include <gtest/gtest.h>

#include <chrono>

namespace {

using namespace std::chrono_literals;
using sidecar::core::WatchRetry;
using End = WatchRetry::End;
using TimePoint = WatchRetry::TimePoint;

constexpr double kNoJitter = 0.5;
const TimePoint kT0 = TimePoint{} + 1h;

TEST(WatchRetry, WatchCancelledRightAfterEachCreateBacksOffToTheCapAndLogsOnce) {
  WatchRetry retry;
  TimePoint now = kT0;
  std::vector<std::chrono::milliseconds> delays;
  int logged = 0;
  for (int cycle = 0; cycle < 10; ++cycle) {
    retry.on_started(now);  // created...
    now += 5ms;             // ...and cancelled at once by the server
    const auto r = retry.on_ended(End::kCanceled, now, kNoJitter);
    delays.push_back(r.delay);
    logged += r.log ? 1 : 0;
    now += r.delay;
  }
  EXPECT_EQ(logged, 1) << "one line per outage, not one per cycle";
  EXPECT_EQ(delays.front(), 100ms);
  EXPECT_EQ(delays[1], 200ms);
  EXPECT_EQ(delays[2], 400ms);
  EXPECT_EQ(delays.back(), 10000ms) << "capped";
  EXPECT_TRUE(retry.failing());
}

TEST(WatchRetry, BeingCreatedDoesNotResetTheBackoff) {
  WatchRetry retry;
  retry.on_started(kT0);
  EXPECT_EQ(retry.on_ended(End::kCanceled, kT0, kNoJitter).delay, 100ms);
  retry.on_started(kT0 + 1s);
  EXPECT_EQ(retry.on_ended(End::kCanceled, kT0 + 1s, kNoJitter).delay, 200ms);
}

TEST(WatchRetry, AnEventEndsTheOutageOnceAndTheNextFailureStartsAFreshBackoff) {
  WatchRetry retry;
  for (int i = 0; i < 5; ++i) {
    retry.on_started(kT0);
    retry.on_ended(End::kCanceled, kT0, kNoJitter);
  }
  retry.on_started(kT0 + 1s);
  EXPECT_TRUE(retry.on_delivered(kT0 + 2s)) << "the recovery is said once";
  EXPECT_FALSE(retry.on_delivered(kT0 + 3s));
  EXPECT_FALSE(retry.failing());
  const auto r = retry.on_ended(End::kCanceled, kT0 + 4s, kNoJitter);
  EXPECT_TRUE(r.log) << "a new outage is logged again";
  EXPECT_EQ(r.delay, 100ms);
}

TEST(WatchRetry, StayingUpLongEnoughCountsAsHealthyWithoutAnyEvent) {
  WatchRetry retry;
  retry.on_started(kT0);
  retry.on_ended(End::kFailed, kT0, kNoJitter);
  retry.on_started(kT0 + 1s);
  ASSERT_EQ(retry.recovery_due(), kT0 + 11s);
  EXPECT_FALSE(retry.on_tick(kT0 + 10s));
  EXPECT_TRUE(retry.on_tick(kT0 + 11s));
  EXPECT_FALSE(retry.recovery_due().has_value());
  EXPECT_FALSE(retry.on_tick(kT0 + 12s));
}

TEST(WatchRetry, AQuietWatchThatStayedUpStartsTheBackoffOverEvenWithoutATick) {
  WatchRetry retry;
  for (int i = 0; i < 5; ++i) retry.on_ended(End::kFailed, kT0, kNoJitter);
  retry.on_started(kT0);
  const auto r = retry.on_ended(End::kFailed, kT0 + 30s, kNoJitter);
  EXPECT_EQ(r.delay, 50ms);
  EXPECT_TRUE(r.log);
}

TEST(WatchRetry, StreamFailuresKeepTheShortCapSoARestartedEtcdIsPickedUpQuickly) {
  WatchRetry retry;
  std::chrono::milliseconds last{0};
  int logged = 0;
  for (int i = 0; i < 20; ++i) {
    const auto r = retry.on_ended(End::kFailed, kT0, kNoJitter);  // not even the read went through
    last = r.delay;
    logged += r.log ? 1 : 0;
  }
  EXPECT_EQ(last, 1000ms);
  EXPECT_EQ(logged, 1);
  EXPECT_FALSE(retry.recovery_due().has_value()) << "nothing is up";
}

TEST(WatchRetry, NoRecoveryToReportWhenNothingFailed) {
  WatchRetry retry;
  retry.on_started(kT0);
  EXPECT_FALSE(retry.recovery_due().has_value());
  EXPECT_FALSE(retry.on_delivered(kT0 + 1s));
}

}  // namespace
