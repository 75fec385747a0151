#include "agent/core/catalog_policy.hpp"

#include <gtest/gtest.h>

namespace sidecar::core {
namespace {

using namespace std::chrono_literals;
using Admit = CatalogPolicy::Admit;

const CatalogPolicy::TimePoint t0{};

TEST(CatalogPolicy, SubscribersShareOneWatchAndTheLastOneStopsIt) {
  CatalogPolicy p;
  EXPECT_EQ(p.subscribe("order", t0), Admit::kStart);
  EXPECT_EQ(p.subscribe("order", t0), Admit::kExisting);
  EXPECT_EQ(p.holders("order"), 2u);
  EXPECT_FALSE(p.unsubscribe("order", t0 + 1s));
  EXPECT_TRUE(p.unsubscribe("order", t0 + 2s));
  EXPECT_FALSE(p.watched("order"));
}

TEST(CatalogPolicy, LookupsStartWatchesUpToMaxServicesAndCountRefusals) {
  CatalogPolicy p({.idle_timeout = 10min, .max_services = 2});
  EXPECT_EQ(p.subscribe("pinned", t0), Admit::kStart);
  EXPECT_EQ(p.lookup("a", t0), Admit::kStart);
  EXPECT_EQ(p.lookup("b", t0), Admit::kRefused);
  EXPECT_EQ(p.lookup("a", t0), Admit::kExisting);
  EXPECT_EQ(p.refused_total(), 1u);
  // Subscribers are never refused, even past the bound: the manifest's own entries always run.
  EXPECT_EQ(p.subscribe("also-pinned", t0), Admit::kStart);
  EXPECT_EQ(p.size(), 3u);
  EXPECT_EQ(p.on_demand(), 1u);
}

TEST(CatalogPolicy, AnOnDemandWatchExpiresAfterTheIdleTimeoutSinceItsLastLookup) {
  CatalogPolicy p({.idle_timeout = 10min, .max_services = 10});
  p.lookup("a", t0);
  EXPECT_EQ(p.next_expiry(), t0 + 10min);
  p.lookup("a", t0 + 5min);  // read again: the clock restarts
  EXPECT_EQ(p.next_expiry(), t0 + 15min);
  EXPECT_TRUE(p.expire(t0 + 15min - 1ms).empty());
  EXPECT_EQ(p.expire(t0 + 15min), std::vector<std::string>{"a"});
  EXPECT_FALSE(p.watched("a"));
  EXPECT_FALSE(p.next_expiry().has_value());
}

TEST(CatalogPolicy, AHeldServiceNeverExpiresAndALookedUpOneOutlivesItsLastHolder) {
  CatalogPolicy p({.idle_timeout = 1min, .max_services = 10});
  p.subscribe("a", t0);
  p.lookup("a", t0);
  EXPECT_FALSE(p.next_expiry().has_value());
  EXPECT_TRUE(p.expire(t0 + 1h).empty());
  // Released 30 s after its lookup: kept for the rest of the idle timeout, then expired.
  EXPECT_FALSE(p.unsubscribe("a", t0 + 30s));
  EXPECT_TRUE(p.watched("a"));
  EXPECT_EQ(p.next_expiry(), t0 + 1min);
  EXPECT_EQ(p.expire(t0 + 1min), std::vector<std::string>{"a"});
}

TEST(CatalogPolicy, ALookupOfAHeldServiceIsNotCountedAgainstTheBound) {
  CatalogPolicy p({.idle_timeout = 1min, .max_services = 1});
  p.subscribe("a", t0);
  EXPECT_EQ(p.lookup("a", t0), Admit::kExisting);
  EXPECT_EQ(p.lookup("b", t0), Admit::kRefused);
  // A raised bound applies to the next start.
  p.set_limits({.idle_timeout = 1min, .max_services = 2});
  EXPECT_EQ(p.lookup("b", t0), Admit::kStart);
}

}  // namespace
}  // namespace sidecar::core
