// The TTL check and a service's health with one: what the app's reports and the passing of time (injected)
// make of the status, and what a report restored after a restart counts for.
#include <gtest/gtest.h>

#include "agent/core/health.hpp"
#include "agent/core/ttl_check.hpp"

namespace sidecar::core {
namespace {

using namespace std::chrono_literals;
using TimePoint = TtlCheck::TimePoint;

const TimePoint t0{std::chrono::seconds(1000)};

TEST(TtlCheck, ExpiresToCriticalWhenNoReportComesWithinTheTtl) {
  TtlCheck c(30s, HealthStatus::kCritical, t0);
  EXPECT_EQ(c.status(), HealthStatus::kCritical);
  EXPECT_FALSE(c.deadline()) << "critical: nothing to expire";
  auto t = c.report(TtlReport::kPass, "ok", t0);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->to, HealthStatus::kPassing);
  EXPECT_EQ(c.deadline(), t0 + 30s);
  EXPECT_FALSE(c.on_time(t0 + 29999ms)) << "one ms before the deadline";
  EXPECT_EQ(c.status(), HealthStatus::kPassing);
  t = c.on_time(t0 + 30s);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->from, HealthStatus::kPassing);
  EXPECT_EQ(t->to, HealthStatus::kCritical);
  EXPECT_TRUE(c.expired());
  EXPECT_EQ(c.output(), "TTL 30s expired without a report (last note: ok)");
  EXPECT_FALSE(c.on_time(t0 + 60s)) << "an expiry is reported once";
  EXPECT_FALSE(c.deadline());
}

TEST(TtlCheck, EachReportMovesTheDeadline) {
  TtlCheck c(10s, HealthStatus::kCritical, t0);
  c.report(TtlReport::kPass, "", t0);
  EXPECT_FALSE(c.report(TtlReport::kPass, "", t0 + 8s)) << "passing again is no transition";
  EXPECT_FALSE(c.on_time(t0 + 12s)) << "the second report's TTL runs until t0 + 18s";
  EXPECT_TRUE(c.on_time(t0 + 18s));
  EXPECT_EQ(c.reports(), 2u);
}

TEST(TtlCheck, WarnIsAWarningWithADeadlineAndFailIsCriticalAtOnce) {
  TtlCheck c(10s, HealthStatus::kCritical, t0);
  auto t = c.report(TtlReport::kWarn, "disk 91%", t0);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->to, HealthStatus::kWarning);
  EXPECT_EQ(t->output, "disk 91%");
  EXPECT_EQ(c.note(), "disk 91%");
  EXPECT_EQ(c.deadline(), t0 + 10s);
  t = c.report(TtlReport::kFail, "db down", t0 + 1s);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->from, HealthStatus::kWarning);
  EXPECT_EQ(t->to, HealthStatus::kCritical);
  EXPECT_FALSE(c.deadline());
  EXPECT_FALSE(c.expired()) << "failed by the app, not expired";
}

TEST(TtlCheck, RecoversWithAPassAfterExpiring) {
  TtlCheck c(2s, HealthStatus::kPassing, t0);
  EXPECT_EQ(c.deadline(), t0 + 2s) << "initial_status passing: one TTL for the first report";
  ASSERT_TRUE(c.on_time(t0 + 2s));
  auto t = c.report(TtlReport::kPass, "back", t0 + 5s);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->from, HealthStatus::kCritical);
  EXPECT_EQ(t->to, HealthStatus::kPassing);
  EXPECT_FALSE(c.expired());
  EXPECT_EQ(c.output(), "back");
}

TEST(TtlCheck, NotesAreBoundedLikeProbeOutput) {
  TtlCheck c(2s, HealthStatus::kCritical, t0);
  c.report(TtlReport::kWarn, std::string(10000, 'x'), t0);
  EXPECT_LE(c.note().size(), kMaxCheckOutput);
}

TEST(TtlCheck, ARestoredReportKeepsItsRemainingTtlAndAnOldOneIsExpired) {
  TtlCheck fresh(30s, HealthStatus::kCritical, t0);
  auto t = fresh.restore(TtlReport::kWarn, "slow", 10s, t0);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->to, HealthStatus::kWarning);
  EXPECT_EQ(fresh.deadline(), t0 + 20s) << "made 10 s ago: 20 s of its TTL left";

  TtlCheck old(30s, HealthStatus::kPassing, t0);
  t = old.restore(TtlReport::kPass, "ok", 30s, t0);
  ASSERT_TRUE(t) << "initial passing, restored report expired: one transition to critical";
  EXPECT_EQ(t->from, HealthStatus::kPassing);
  EXPECT_EQ(t->to, HealthStatus::kCritical);
  EXPECT_TRUE(old.expired());

  TtlCheck old_critical(30s, HealthStatus::kCritical, t0);
  EXPECT_FALSE(old_critical.restore(TtlReport::kPass, "ok", 45s, t0)) << "critical before and after";
  EXPECT_EQ(old_critical.status(), HealthStatus::kCritical);
  EXPECT_EQ(old_critical.note(), "ok") << "the last note is still shown";
}

TEST(TtlCheck, ParsesAndNamesReports) {
  EXPECT_EQ(parse_ttl_report("pass"), TtlReport::kPass);
  EXPECT_EQ(parse_ttl_report("warn"), TtlReport::kWarn);
  EXPECT_EQ(parse_ttl_report("fail"), TtlReport::kFail);
  EXPECT_FALSE(parse_ttl_report("PASS"));
  EXPECT_STREQ(to_string(TtlReport::kWarn), "warn");
}

TEST(ServiceHealthWithTtl, TheWorstCheckDecidesAndWarningStaysHealthy) {
  // A probe (rise 1, fall 1) and a ttl check, both critical at first.
  ServiceHealth h({{1, 1, std::nullopt}, {1, 1, 10s}}, HealthStatus::kCritical, t0);
  EXPECT_TRUE(h.is_ttl(1));
  EXPECT_FALSE(h.is_ttl(0));
  EXPECT_FALSE(h.record(0, true, "up", t0).service_status) << "the ttl check is still critical";
  auto u = h.report(1, TtlReport::kWarn, "slow", t0);
  ASSERT_TRUE(u.service_status);
  EXPECT_EQ(*u.service_status, HealthStatus::kWarning);
  ASSERT_TRUE(u.service_healthy);
  EXPECT_TRUE(*u.service_healthy) << "warning is published";
  EXPECT_TRUE(h.healthy());

  u = h.report(1, TtlReport::kPass, "", t0 + 1s);
  EXPECT_EQ(u.service_status, HealthStatus::kPassing);
  EXPECT_FALSE(u.service_healthy) << "warning -> passing: healthy all along";

  u = h.on_time(1, t0 + 11s);
  EXPECT_EQ(u.service_status, HealthStatus::kCritical);
  EXPECT_EQ(u.service_healthy, std::optional<bool>(false));
  ASSERT_TRUE(u.check);
  EXPECT_EQ(u.check->to, HealthStatus::kCritical);
  EXPECT_EQ(h.check_status(0), HealthStatus::kPassing);
}

}  // namespace
}  // namespace sidecar::core
