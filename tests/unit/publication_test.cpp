#include "agent/core/publication.hpp"

#include <gtest/gtest.h>

namespace sidecar::core {
namespace {

using Changed = std::vector<size_t>;

TEST(Publication, AKeyIsPublishedOnlyWhileItsServiceIsHealthy) {
  Publication p;
  EXPECT_TRUE(p.add(0, true));
  EXPECT_FALSE(p.add(1, false));
  EXPECT_EQ(p.set_healthy(1, true), Changed{1});
  EXPECT_TRUE(p.published(1));
  EXPECT_EQ(p.set_healthy(1, true), Changed{}) << "a repeated health report is no change";
  EXPECT_EQ(p.set_healthy(0, false), Changed{0});
  EXPECT_FALSE(p.published(0));
}

TEST(Publication, DrainWithdrawsEveryKeyAndUndrainPublishesOnlyTheHealthyOnes) {
  Publication p;
  p.add(0, true);
  p.add(1, false);
  p.add(2, true);
  auto drained = p.set_drained(true);
  EXPECT_EQ(drained.outcome, Publication::DrainOutcome::kApplied);
  EXPECT_EQ(drained.changed, (Changed{0, 2}));
  // Health moves while drained: remembered, published by nothing until the undrain.
  EXPECT_EQ(p.set_healthy(1, true), Changed{});
  EXPECT_EQ(p.set_healthy(2, false), Changed{});
  EXPECT_EQ(p.set_drained(true).outcome, Publication::DrainOutcome::kAlready);
  auto undrained = p.set_drained(false);
  EXPECT_EQ(undrained.outcome, Publication::DrainOutcome::kApplied);
  EXPECT_EQ(undrained.changed, (Changed{0, 1}));
  EXPECT_FALSE(p.published(2));
  EXPECT_EQ(p.healthy_count(), 2u);
}

TEST(Publication, ShutdownWithdrawsEverythingForGoodAndRefusesAnUndrain) {
  Publication p;
  p.add(0, true);
  p.add(1, true);
  p.set_drained(true);
  EXPECT_EQ(p.begin_shutdown(), Changed{}) << "already withdrawn by the drain";
  EXPECT_EQ(p.set_drained(false).outcome, Publication::DrainOutcome::kShuttingDown);
  EXPECT_EQ(p.set_healthy(0, true), Changed{});
  EXPECT_FALSE(p.published(0));

  Publication q;
  q.add(0, true);
  q.add(1, false);
  EXPECT_EQ(q.begin_shutdown(), Changed{0});
  EXPECT_EQ(q.set_healthy(1, true), Changed{}) << "a check passing during the drain delay publishes nothing";
}

TEST(Publication, ARemovedKeyStaysWithdrawnUntilAddedAgain) {
  Publication p;
  p.add(0, true);
  p.add(1, true);
  EXPECT_TRUE(p.remove(1));
  EXPECT_FALSE(p.remove(1)) << "removing twice withdraws nothing more";
  p.set_drained(true);
  EXPECT_EQ(p.set_drained(false).changed, Changed{0}) << "an undrain never brings a removed key back";
  EXPECT_EQ(p.set_healthy(1, true), Changed{});
  EXPECT_EQ(p.healthy_count(), 1u);
  // Re-added by a later reload under the same index: starts afresh with its service's health.
  EXPECT_TRUE(p.add(1, true));
  EXPECT_EQ(p.healthy_count(), 2u);
}

TEST(Publication, UnknownIndicesAreNeitherPublishedNorChanged) {
  Publication p;
  EXPECT_FALSE(p.published(7));
  EXPECT_EQ(p.set_healthy(7, true), Changed{});
  EXPECT_FALSE(p.remove(7));
}

TEST(Publication, WarningIsPublishedWithItsStateAndOnlyChangesAreReported) {
  Publication p;
  p.add(0, true);
  auto c = p.set_health(0, HealthStatus::kWarning);
  EXPECT_FALSE(c.published) << "still published";
  EXPECT_TRUE(c.state) << "its value must say warning";
  EXPECT_EQ(p.state(0), InstanceState::kWarning);
  EXPECT_FALSE(p.set_health(0, HealthStatus::kWarning).any()) << "a repeated warning rewrites nothing";
  c = p.set_health(0, HealthStatus::kCritical);
  EXPECT_TRUE(c.published);
  EXPECT_TRUE(c.state) << "back to passing in the value it will carry when published again";
  EXPECT_FALSE(p.published(0));
  EXPECT_EQ(p.state(0), InstanceState::kPassing);
}

TEST(Publication, MaintenanceKeepsTheKeyWhateverItsHealthAndWinsOverWarning) {
  Publication p;
  p.add(0, false);
  auto c = p.set_maintenance(0, true);
  EXPECT_TRUE(c.published) << "critical but in maintenance: published, marked";
  EXPECT_TRUE(c.state);
  EXPECT_EQ(p.state(0), InstanceState::kMaintenance);
  EXPECT_FALSE(p.set_health(0, HealthStatus::kWarning).any()) << "maintenance wins over warning";
  EXPECT_EQ(p.state(0), InstanceState::kMaintenance);
  c = p.set_maintenance(0, false);
  EXPECT_FALSE(c.published);
  EXPECT_TRUE(c.state);
  EXPECT_EQ(p.state(0), InstanceState::kWarning);
  c = p.set_health(0, HealthStatus::kCritical);
  EXPECT_TRUE(c.published) << "out of maintenance, a failing check withdraws it";
  EXPECT_FALSE(p.published(0));
}

TEST(Publication, DrainAndShutdownWithdrawAKeyInMaintenanceWithoutChangingItsState) {
  Publication p;
  p.add(0, true, /*maintenance=*/true);
  p.add(1, false, /*maintenance=*/true);
  EXPECT_TRUE(p.published(1));
  EXPECT_EQ(p.set_drained(true).changed, (Changed{0, 1}));
  EXPECT_EQ(p.state(1), InstanceState::kMaintenance);
  EXPECT_EQ(p.healthy_count(), 2u) << "both come back with the undrain";
  EXPECT_EQ(p.set_drained(false).changed, (Changed{0, 1}));
  EXPECT_EQ(p.begin_shutdown(), (Changed{0, 1}));
  const auto c = p.set_maintenance(0, false);
  EXPECT_FALSE(c.published) << "withdrawn for the shutdown either way";
  EXPECT_TRUE(c.state);
}

TEST(Publication, ARemovedKeyIgnoresHealthAndMaintenance) {
  Publication p;
  p.add(0, true);
  p.remove(0);
  EXPECT_FALSE(p.set_maintenance(0, true).any());
  EXPECT_FALSE(p.set_health(0, HealthStatus::kWarning).any());
  EXPECT_FALSE(p.published(0));
}

}  // namespace
}  // namespace sidecar::core
