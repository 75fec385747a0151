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

}  // namespace
}  // namespace sidecar::core
