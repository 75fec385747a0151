// Check and service health: rise/fall counting, one transition per flip, bounded output, all checks must pass.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "agent/core/health.hpp"

namespace {

using namespace std::chrono_literals;
namespace core = sidecar::core;
using core::CheckHealth;
using core::HealthStatus;
using core::ServiceHealth;
using TimePoint = CheckHealth::TimePoint;

const TimePoint kT0 = TimePoint{} + 1h;

TEST(CheckHealth, RisesOnlyAfterRiseConsecutivePasses) {
  CheckHealth c(3, 2, HealthStatus::kCritical);
  EXPECT_FALSE(c.record(true, "ok", kT0));
  EXPECT_FALSE(c.record(true, "ok", kT0 + 1s));
  const auto t = c.record(true, "ok 3", kT0 + 2s);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->from, HealthStatus::kCritical);
  EXPECT_EQ(t->to, HealthStatus::kPassing);
  EXPECT_EQ(t->streak, 3);
  EXPECT_EQ(t->output, "ok 3");
  EXPECT_EQ(c.status(), HealthStatus::kPassing);
  EXPECT_EQ(c.last_change(), kT0 + 2s);
}

TEST(CheckHealth, AFailureResetsTheRiseCount) {
  CheckHealth c(2, 2, HealthStatus::kCritical);
  c.record(true, "", kT0);
  c.record(false, "", kT0 + 1s);
  EXPECT_FALSE(c.record(true, "", kT0 + 2s));
  EXPECT_EQ(c.status(), HealthStatus::kCritical);
  EXPECT_TRUE(c.record(true, "", kT0 + 3s));
}

TEST(CheckHealth, FallsOnlyAfterFallConsecutiveFailures) {
  CheckHealth c(1, 3, HealthStatus::kPassing);
  EXPECT_FALSE(c.record(false, "", kT0));
  EXPECT_FALSE(c.record(false, "", kT0 + 1s));
  EXPECT_FALSE(c.record(true, "", kT0 + 2s));  // a pass in between starts the count again
  EXPECT_FALSE(c.record(false, "", kT0 + 3s));
  EXPECT_FALSE(c.record(false, "", kT0 + 4s));
  const auto t = c.record(false, "HTTP 503", kT0 + 5s);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->to, HealthStatus::kCritical);
  EXPECT_EQ(t->streak, 3);
  EXPECT_EQ(c.consecutive_failures(), 3);
}

TEST(CheckHealth, ReportsEachTransitionExactlyOnce) {
  CheckHealth c(1, 1, HealthStatus::kPassing);
  int transitions = 0;
  for (int i = 0; i < 5; ++i) transitions += c.record(false, "", kT0 + i * 1s) ? 1 : 0;
  EXPECT_EQ(transitions, 1);
  for (int i = 0; i < 5; ++i) transitions += c.record(true, "", kT0 + (10 + i) * 1s) ? 1 : 0;
  EXPECT_EQ(transitions, 2);
  EXPECT_EQ(c.runs(), 10u);
}

TEST(CheckHealth, KeepsTheLastOutputBounded) {
  CheckHealth c(1, 1, HealthStatus::kCritical);
  c.record(false, std::string(100000, 'x'), kT0);
  EXPECT_LE(c.last_output().size(), core::kMaxCheckOutput);
  EXPECT_THAT(c.last_output(), ::testing::HasSubstr("more bytes"));
  c.record(true, "short", kT0 + 1s);
  EXPECT_EQ(c.last_output(), "short");
  EXPECT_EQ(c.last_run(), kT0 + 1s);
  EXPECT_EQ(c.last_passed(), true);
}

TEST(CheckHealth, InitialPassingNeedsFallFailuresBeforeGoingCritical) {
  CheckHealth c(2, 2, HealthStatus::kPassing);
  EXPECT_TRUE(c.passing());
  EXPECT_FALSE(c.record(false, "", kT0));
  EXPECT_TRUE(c.passing());
  EXPECT_TRUE(c.record(false, "", kT0 + 1s));
}

TEST(ServiceHealth, IsHealthyOnlyWhileEveryCheckPasses) {
  ServiceHealth s({{1, 1}, {1, 1}}, HealthStatus::kCritical);
  EXPECT_FALSE(s.healthy());
  auto u = s.record(0, true, "", kT0);
  EXPECT_TRUE(u.check);
  EXPECT_FALSE(u.service_healthy);  // one of two
  u = s.record(1, true, "", kT0);
  ASSERT_TRUE(u.service_healthy);
  EXPECT_TRUE(*u.service_healthy);
  u = s.record(1, false, "refused", kT0 + 1s);
  ASSERT_TRUE(u.service_healthy);
  EXPECT_FALSE(*u.service_healthy);
  // The other check failing too changes the check, not the service.
  u = s.record(0, false, "", kT0 + 2s);
  EXPECT_TRUE(u.check);
  EXPECT_FALSE(u.service_healthy);
}

TEST(ServiceHealth, WithoutChecksIsAlwaysHealthy) {
  ServiceHealth s({}, HealthStatus::kCritical);
  EXPECT_TRUE(s.healthy());
}

TEST(ServiceHealth, InitialPassingStartsHealthy) {
  ServiceHealth s({{2, 2}}, HealthStatus::kPassing);
  EXPECT_TRUE(s.healthy());
  EXPECT_FALSE(s.record(0, false, "", kT0).service_healthy);
  const auto u = s.record(0, false, "", kT0 + 1s);
  ASSERT_TRUE(u.service_healthy);
  EXPECT_FALSE(*u.service_healthy);
}

}  // namespace
