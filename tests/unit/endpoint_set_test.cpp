#include "agent/core/endpoint_set.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace sidecar::core {
namespace {

const std::string kPrefix = "/services/order/";

std::string value(const std::string& addr, int port, const std::string& metadata = "{}") {
  return R"({"address":")" + addr + R"(","port":)" + std::to_string(port) + R"(,"metadata":)" + metadata + "}";
}

KvInput kv(const std::string& id, const std::string& val, int64_t rev, int64_t lease = 0) {
  return KvInput{kPrefix + id, val, rev, rev, lease};
}

EventInput put(const std::string& id, const std::string& val, int64_t rev) {
  return EventInput{EventInput::Type::kPut, kv(id, val, rev)};
}

EventInput del(const std::string& id, int64_t rev) {
  return EventInput{EventInput::Type::kDelete, KvInput{kPrefix + id, "", rev, 0, 0}};
}

std::vector<std::string> ids(const EndpointSet& set) {
  std::vector<std::string> out;
  for (const auto* inst : set.sorted()) out.push_back(inst->id);
  return out;
}

TEST(EndpointSet, AddsTrailingSlashToPrefix) {
  EndpointSet set("/services/order");
  EXPECT_EQ(set.key_prefix(), "/services/order/");
}

TEST(EndpointSet, IgnoresKeysOfServicesSharingANamePrefix) {
  EndpointSet set(kPrefix);
  for (const char* key : {"/services/order-service/1", "/services/orders/1", "/services/order", "/services/order/",
                          "/other/order/1"}) {
    ApplyResult r = set.apply(EventInput{EventInput::Type::kPut, KvInput{key, value("h", 1), 5, 5, 0}});
    EXPECT_TRUE(r.foreign) << key;
    EXPECT_FALSE(r.changed) << key;
  }
  EXPECT_EQ(set.size(), 0u);
  EXPECT_EQ(set.invalid_count(), 0u);
}

TEST(EndpointSet, IdIsTheWholeRemainderIncludingSlashes) {
  EndpointSet set(kPrefix);
  EXPECT_EQ(set.id_of("/services/order/a/b"), "a/b");
  ApplyResult r = set.apply(put("a/b", value("h", 1), 3));
  EXPECT_TRUE(r.changed);
  EXPECT_EQ(r.id, "a/b");
  EXPECT_TRUE(set.contains("a/b"));
}

TEST(EndpointSet, ResetReplacesEverythingAndSetsRevision) {
  EndpointSet set(kPrefix);
  set.apply(put("old", value("10.0.0.9", 9), 3));
  ResetResult r = set.reset({kv("b", value("10.0.0.2", 2), 7), kv("a", value("10.0.0.1", 1), 8),
                             KvInput{"/services/orders/x", value("h", 1), 9, 9, 0}},
                            10);
  EXPECT_TRUE(r.changed);
  EXPECT_TRUE(r.invalid.empty());
  EXPECT_EQ(set.revision(), 10);
  EXPECT_EQ(ids(set), (std::vector<std::string>{"a", "b"}));
  EXPECT_FALSE(set.contains("old"));
  EXPECT_FALSE(set.contains("x"));
}

TEST(EndpointSet, ResetWithTheSameSetReportsUnchanged) {
  EndpointSet set(kPrefix);
  set.reset({kv("a", value("h", 1), 2), kv("b", value("h", 2), 3)}, 5);
  // Resync after a compaction: same content, other revisions and leases.
  ResetResult r = set.reset({kv("b", value("h", 2), 30, 77), kv("a", value("h", 1), 20, 77)}, 50);
  EXPECT_FALSE(r.changed);
  EXPECT_EQ(set.revision(), 50);
  EXPECT_EQ(set.find("a")->lease, 77);
}

TEST(EndpointSet, ResetDetectsOneChangedField) {
  EndpointSet set(kPrefix);
  set.reset({kv("a", value("h", 1), 2)}, 5);
  EXPECT_TRUE(set.reset({kv("a", value("h", 2), 2)}, 6).changed);
  EXPECT_TRUE(set.reset({kv("a", value("h", 2, R"({"x":"1"})"), 2)}, 7).changed);
  EXPECT_TRUE(set.reset({}, 8).changed);
  EXPECT_FALSE(set.reset({}, 9).changed);
}

TEST(EndpointSet, ResetMayMoveRevisionBackwardsAfterEtcdWasWiped) {
  EndpointSet set(kPrefix);
  set.reset({kv("a", value("h", 1), 900)}, 1000);
  set.reset({kv("a", value("h", 1), 2)}, 3);
  EXPECT_EQ(set.revision(), 3);
  // Events of the new store are applied, not dropped as "old".
  EXPECT_TRUE(set.apply(put("b", value("h", 2), 4)).changed);
}

TEST(EndpointSet, ResetReportsInvalidValuesAndCountsThem) {
  EndpointSet set(kPrefix);
  ResetResult r = set.reset({kv("a", value("h", 1), 2), kv("bad", "garbage", 3)}, 5);
  ASSERT_EQ(r.invalid.size(), 1u);
  EXPECT_EQ(r.invalid[0].first, "bad");
  EXPECT_NE(r.invalid[0].second.find("JSON"), std::string::npos);
  EXPECT_EQ(set.size(), 1u);
  EXPECT_EQ(set.invalid_count(), 1u);
  EXPECT_TRUE(set.contains("bad"));
  EXPECT_EQ(ids(set), (std::vector<std::string>{"a"}));
}

TEST(EndpointSet, PutOfNewInstanceChangesAndAdvancesRevision) {
  EndpointSet set(kPrefix);
  set.reset({}, 10);
  ApplyResult r = set.apply(put("a", value("10.0.0.1", 80), 11));
  EXPECT_TRUE(r.changed);
  EXPECT_FALSE(r.duplicate);
  EXPECT_FALSE(r.invalid);
  EXPECT_EQ(set.revision(), 11);
  const Instance* inst = set.find("a");
  ASSERT_NE(inst, nullptr);
  EXPECT_EQ(inst->address, "10.0.0.1");
  EXPECT_EQ(inst->mod_revision, 11);
}

TEST(EndpointSet, EventsOlderThanTheSnapshotAreDuplicates) {
  EndpointSet set(kPrefix);
  set.reset({kv("a", value("h", 1), 5)}, 10);
  ApplyResult r = set.apply(put("a", value("h", 2), 9));
  EXPECT_TRUE(r.duplicate);
  EXPECT_FALSE(r.changed);
  EXPECT_EQ(set.find("a")->port, 1);
  EXPECT_TRUE(set.apply(del("a", 8)).duplicate);
  EXPECT_TRUE(set.contains("a"));
}

TEST(EndpointSet, ReplayedEventAtSameRevisionIsDuplicate) {
  EndpointSet set(kPrefix);
  set.reset({}, 10);
  EXPECT_TRUE(set.apply(put("a", value("h", 1), 11)).changed);
  ApplyResult again = set.apply(put("a", value("h", 1), 11));
  EXPECT_TRUE(again.duplicate);
  EXPECT_FALSE(again.changed);
}

TEST(EndpointSet, AllEventsOfOneTransactionShareARevisionAndAreApplied) {
  EndpointSet set(kPrefix);
  set.reset({}, 10);
  EXPECT_TRUE(set.apply(put("a", value("h", 1), 11)).changed);
  ApplyResult second = set.apply(put("b", value("h", 2), 11));
  EXPECT_FALSE(second.duplicate);
  EXPECT_TRUE(second.changed);
  EXPECT_EQ(set.size(), 2u);
}

TEST(EndpointSet, EventAtSnapshotRevisionForAKeyInTheSnapshotIsDuplicate) {
  EndpointSet set(kPrefix);
  set.reset({kv("a", value("h", 1), 10)}, 10);
  ApplyResult r = set.apply(put("a", value("h", 1), 10));
  EXPECT_TRUE(r.duplicate);
}

TEST(EndpointSet, RePutWithSameContentDoesNotChangeOutput) {
  EndpointSet set(kPrefix);
  set.reset({kv("a", value("h", 1), 5, 100)}, 5);
  ApplyResult r = set.apply(EventInput{EventInput::Type::kPut, kv("a", value("h", 1), 6, 200)});
  EXPECT_FALSE(r.duplicate);
  EXPECT_FALSE(r.changed);
  EXPECT_EQ(set.find("a")->lease, 200);  // bookkeeping still updated
  EXPECT_EQ(set.revision(), 6);
}

TEST(EndpointSet, PutWithChangedMetadataChangesOutput) {
  EndpointSet set(kPrefix);
  set.reset({kv("a", value("h", 1, R"({"v":"1"})"), 5)}, 5);
  EXPECT_TRUE(set.apply(put("a", value("h", 1, R"({"v":"2"})"), 6)).changed);
}

TEST(EndpointSet, DeleteRemovesAndChanges) {
  EndpointSet set(kPrefix);
  set.reset({kv("a", value("h", 1), 5), kv("b", value("h", 2), 5)}, 5);
  ApplyResult r = set.apply(del("a", 6));
  EXPECT_TRUE(r.changed);
  EXPECT_EQ(ids(set), (std::vector<std::string>{"b"}));
  EXPECT_EQ(set.revision(), 6);
}

TEST(EndpointSet, DeleteOfUnknownKeyChangesNothing) {
  EndpointSet set(kPrefix);
  set.reset({}, 5);
  ApplyResult r = set.apply(del("ghost", 6));
  EXPECT_FALSE(r.changed);
  EXPECT_FALSE(r.duplicate);
  EXPECT_EQ(set.revision(), 6);
}

TEST(EndpointSet, InvalidPutIsTrackedButNotRendered) {
  EndpointSet set(kPrefix);
  set.reset({}, 5);
  ApplyResult r = set.apply(put("bad", "not json", 6));
  EXPECT_TRUE(r.invalid);
  EXPECT_FALSE(r.changed);
  EXPECT_FALSE(r.reason.empty());
  EXPECT_EQ(set.size(), 0u);
  EXPECT_EQ(set.invalid_count(), 1u);
  EXPECT_TRUE(set.sorted().empty());
}

TEST(EndpointSet, ValidInstanceTurningInvalidDisappearsFromOutput) {
  EndpointSet set(kPrefix);
  set.reset({kv("a", value("h", 1), 5)}, 5);
  ApplyResult r = set.apply(put("a", "[]", 6));
  EXPECT_TRUE(r.invalid);
  EXPECT_TRUE(r.changed);
  EXPECT_EQ(set.size(), 0u);
  EXPECT_EQ(set.invalid_count(), 1u);
  // And back.
  ApplyResult back = set.apply(put("a", value("h", 1), 7));
  EXPECT_TRUE(back.changed);
  EXPECT_FALSE(back.invalid);
  EXPECT_EQ(set.size(), 1u);
  EXPECT_EQ(set.invalid_count(), 0u);
}

TEST(EndpointSet, InvalidReplacedByOtherInvalidIsNotAChange) {
  EndpointSet set(kPrefix);
  set.reset({kv("a", "x", 5)}, 5);
  ApplyResult r = set.apply(put("a", "y", 6));
  EXPECT_TRUE(r.invalid);
  EXPECT_FALSE(r.changed);
  EXPECT_EQ(set.invalid_count(), 1u);
}

TEST(EndpointSet, DeleteOfInvalidKeyUncountsIt) {
  EndpointSet set(kPrefix);
  set.reset({kv("a", "x", 5)}, 5);
  ApplyResult r = set.apply(del("a", 6));
  EXPECT_FALSE(r.changed);
  EXPECT_EQ(set.invalid_count(), 0u);
  EXPECT_FALSE(set.contains("a"));
}

TEST(EndpointSet, EtcdEndpointsDeleteMarkerRemovesInstance) {
  EndpointSet set(kPrefix);
  set.reset({kv("a", R"({"Op":0,"Addr":"h:1"})", 5)}, 5);
  ASSERT_EQ(set.size(), 1u);
  ApplyResult r = set.apply(put("a", R"({"Op":1,"Addr":"h:1"})", 6));
  EXPECT_TRUE(r.changed);
  EXPECT_FALSE(r.invalid);
  EXPECT_FALSE(set.contains("a"));
  EXPECT_EQ(set.invalid_count(), 0u);
}

TEST(EndpointSet, DeleteMarkerInSnapshotIsSkipped) {
  EndpointSet set(kPrefix);
  ResetResult r = set.reset({kv("a", R"({"Op":1,"Addr":"h:1"})", 5)}, 5);
  EXPECT_FALSE(set.contains("a"));
  EXPECT_TRUE(r.invalid.empty());
}

TEST(EndpointSet, AdvanceRevisionOnlyMovesForward) {
  EndpointSet set(kPrefix);
  set.reset({}, 10);
  set.advance_revision(20);
  EXPECT_EQ(set.revision(), 20);
  set.advance_revision(15);
  EXPECT_EQ(set.revision(), 20);
  EXPECT_TRUE(set.apply(put("a", value("h", 1), 19)).duplicate);
  EXPECT_FALSE(set.apply(put("a", value("h", 1), 21)).duplicate);
}

TEST(EndpointSet, SortedIsOrderedByIdBytewise) {
  EndpointSet set(kPrefix);
  set.reset({}, 1);
  int64_t rev = 2;
  for (const char* id : {"b", "a10", "a2", "B", "a"}) set.apply(put(id, value("h", 1), rev++));
  EXPECT_EQ(ids(set), (std::vector<std::string>{"B", "a", "a10", "a2", "b"}));
}

TEST(EndpointSet, TenThousandPutsThenTenThousandUpdatesStayConsistent) {
  EndpointSet set(kPrefix);
  set.reset({}, 1);
  constexpr int kCount = 10000;
  auto id_of = [](int i) {
    std::string s = std::to_string(i);
    return "inst-" + std::string(5 - s.size(), '0') + s;
  };
  int64_t rev = 2;
  for (int i = 0; i < kCount; ++i) {
    ApplyResult r = set.apply(put(id_of(i), value("10.0." + std::to_string(i / 256) + "." + std::to_string(i % 256), 8000), rev++));
    ASSERT_TRUE(r.changed) << i;
  }
  EXPECT_EQ(set.size(), static_cast<size_t>(kCount));
  for (int i = 0; i < kCount; ++i) {
    ApplyResult r = set.apply(put(id_of(i), value("10.1." + std::to_string(i / 256) + "." + std::to_string(i % 256), 9000), rev++));
    ASSERT_TRUE(r.changed) << i;
    ASSERT_FALSE(r.duplicate) << i;
  }
  EXPECT_EQ(set.size(), static_cast<size_t>(kCount));
  EXPECT_EQ(set.revision(), rev - 1);
  auto all = set.sorted();
  ASSERT_EQ(all.size(), static_cast<size_t>(kCount));
  for (int i = 0; i < kCount; ++i) {
    ASSERT_EQ(all[i]->id, id_of(i));
    ASSERT_EQ(all[i]->port, 9000);
    ASSERT_EQ(all[i]->address, "10.1." + std::to_string(i / 256) + "." + std::to_string(i % 256));
  }
  // Replaying the whole second round is a no-op.
  rev -= kCount;
  for (int i = 0; i < kCount; ++i) {
    ASSERT_TRUE(set.apply(put(id_of(i), value("x", 1), rev++)).duplicate);
  }
  EXPECT_EQ(set.sorted()[0]->port, 9000);
}

TEST(NeedsResync, NothingWhenSameClusterAndRevisionMovesOn) {
  EXPECT_EQ(needs_resync(7, 100, 7, 100), ResyncReason::kNone);
  EXPECT_EQ(needs_resync(7, 100, 7, 150), ResyncReason::kNone);
}

TEST(NeedsResync, ClusterIdChangeWins) {
  EXPECT_EQ(needs_resync(7, 100, 8, 150), ResyncReason::kClusterChanged);
  EXPECT_EQ(needs_resync(7, 100, 8, 5), ResyncReason::kClusterChanged);
}

TEST(NeedsResync, RevisionBelowLastAppliedMeansWipedOrRestored) {
  EXPECT_EQ(needs_resync(7, 100, 7, 99), ResyncReason::kRevisionWentBack);
  EXPECT_TRUE(EndpointSet::revision_went_back(100, 1));
  EXPECT_FALSE(EndpointSet::revision_went_back(100, 100));
}

TEST(NeedsResync, UnknownClusterIdIsNotAChange) {
  EXPECT_EQ(needs_resync(0, 100, 8, 150), ResyncReason::kNone);
  EXPECT_EQ(needs_resync(7, 100, 0, 150), ResyncReason::kNone);
  EXPECT_EQ(needs_resync(0, 100, 8, 1), ResyncReason::kRevisionWentBack);
}

TEST(NeedsResync, ReasonsHaveNames) {
  EXPECT_STREQ(to_string(ResyncReason::kClusterChanged), "cluster id changed");
  EXPECT_STREQ(to_string(ResyncReason::kRevisionWentBack), "revision went back");
  EXPECT_STREQ(to_string(ResyncReason::kNone), "none");
}

}  // namespace
}  // namespace sidecar::core
