// Selection: which instances a consumer sees (tags, metadata, zone with local fallback, states) and in what
// order (id, weight, random-stable per host), plus the same selector read from query parameters.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <deque>
#include <string>
#include <vector>

#include "agent/core/instance.hpp"
#include "agent/core/selection.hpp"

namespace sidecar::core {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;

// Instances built from stored values, as the catalog holds them; kept alive in a deque (stable addresses).
class Selection : public ::testing::Test {
 protected:
  const Instance* add(const std::string& id, const std::string& extra_fields) {
    std::string value = R"({"address":"10.0.0.1","port":80)";
    if (!extra_fields.empty()) value += "," + extra_fields;
    value += "}";
    const ParsedValue p = parse_instance_value(id, value);
    EXPECT_EQ(p.kind, ParsedValue::Kind::kInstance) << p.instance.error();
    store_.push_back(p.instance);
    all_.push_back(&store_.back());
    return &store_.back();
  }

  std::vector<std::string> ids(const Selector& s, std::string_view local_zone = "",
                               SortOrder order = SortOrder::kId, std::string_view seed = "host-a") {
    std::vector<std::string> out;
    for (const Instance* i : select_instances(all_, s, local_zone, order, seed)) out.push_back(i->id);
    return out;
  }

  std::deque<Instance> store_;
  std::vector<const Instance*> all_;  // in id order: tests add ids in order
};

TEST_F(Selection, EmptySelectorKeepsPassingAndWarningInIdOrder) {
  add("a", R"("state":"warning")");
  add("b", "");
  add("c", R"("state":"maintenance")");
  add("d", R"("state":"draining")");
  EXPECT_THAT(ids({}), ElementsAre("a", "b"));
}

TEST_F(Selection, StatesListedAreTheOnlyOnesKept) {
  add("a", R"("state":"warning")");
  add("b", "");
  add("c", R"("state":"maintenance")");
  add("d", R"("state":"draining")");
  Selector s;
  s.states = {InstanceState::kDraining, InstanceState::kPassing};
  EXPECT_THAT(ids(s), ElementsAre("b", "d"));
}

TEST_F(Selection, EveryTagMustBePresent) {
  add("a", R"("tags":["v2","canary"])");
  add("b", R"("tags":["v2"])");
  add("c", R"("tags":["canary"])");
  add("d", "");
  Selector s;
  s.tags = {"v2"};
  EXPECT_THAT(ids(s), ElementsAre("a", "b"));
  s.tags = {"canary", "v2"};
  EXPECT_THAT(ids(s), ElementsAre("a"));
}

TEST_F(Selection, AnUnknownTagMatchesNothingWithoutError) {
  add("a", R"("tags":["v2"])");
  Selector s;
  s.tags = {"nope"};
  EXPECT_THAT(ids(s), IsEmpty());
}

TEST_F(Selection, MetadataMatchesStringsAndTheTextOfNumbersAndBooleans) {
  add("a", R"("metadata":{"version":"1.2.0","build":7,"blue":true})");
  add("b", R"("metadata":{"version":"1.3.0","build":7})");
  add("c", R"("metadata":{"other":"version"})");  // the key text appears only as a value
  Selector s;
  s.metadata = {{"version", "1.2.0"}};
  EXPECT_THAT(ids(s), ElementsAre("a"));
  s.metadata = {{"build", "7"}};
  EXPECT_THAT(ids(s), ElementsAre("a", "b"));
  s.metadata = {{"blue", "true"}};
  EXPECT_THAT(ids(s), ElementsAre("a"));
  s.metadata = {{"version", "1.2.0"}, {"build", "8"}};
  EXPECT_THAT(ids(s), IsEmpty());
}

TEST_F(Selection, MetadataMatchesOnlyTopLevelKeysWhateverTheTextAround) {
  add("nested", R"("metadata":{"a":{"version":"1.2.0"},"version":"2"})");
  add("quoted", R"("metadata":{"note":"\"version\":\"1.2.0\"","z":1})");
  add("escaped", R"("metadata":{"version":"1.2.0\n"})");
  add("unicode", R"("metadata":{"v\u00e9rsion":"1.2.0","version":"1.2.0"})");
  add("list", R"("metadata":{"l":[1,"}"],"version":"1.2.0"})");
  Selector s;
  s.metadata = {{"version", "1.2.0"}};
  EXPECT_THAT(ids(s), ElementsAre("list", "unicode"));  // id order
  s.metadata = {{"version", "1.2.0\n"}};
  EXPECT_THAT(ids(s), ElementsAre("escaped"));
  s.metadata = {{"l", R"([1,"}"])"}};
  EXPECT_THAT(ids(s), ElementsAre("list"));
  s.metadata = {{"v\u00e9rsion", "1.2.0"}};  // a key that is not plain ASCII is found too
  EXPECT_THAT(ids(s), ElementsAre("unicode"));
}

TEST_F(Selection, MetadataTextNotWrittenByTheParserIsStillMatched) {
  Instance odd = *add("odd", "");
  odd.metadata_json = R"({ "version" : "1.2.0" })";  // spaces: not dump()'s shape, parsed instead
  store_.push_back(odd);
  all_ = {&store_.back()};
  Selector s;
  s.metadata = {{"version", "1.2.0"}};
  EXPECT_THAT(ids(s), ElementsAre("odd"));
}

TEST_F(Selection, SeedStyleTopLevelFieldsMatchAsMetadata) {
  store_.push_back(parse_instance_value("n1", R"({"address":"h","port":1,"version":"1.2.0"})").instance);
  all_.push_back(&store_.back());
  Selector s;
  s.metadata = {{"version", "1.2.0"}};
  EXPECT_THAT(ids(s), ElementsAre("n1"));
}

TEST_F(Selection, PrefersLocalZoneUntilFewerThanMinLocal) {
  add("a", R"("zone":"z1")");
  add("b", R"("zone":"z2")");
  add("c", R"("zone":"z1")");
  add("d", "");
  Selector s;
  s.zone = "local";
  s.min_local = 2;
  EXPECT_THAT(ids(s, "z1"), ElementsAre("a", "c"));            // two local: only them
  EXPECT_THAT(ids(s, "z2"), ElementsAre("a", "b", "c", "d"));  // one local: every zone
  s.min_local = 1;
  EXPECT_THAT(ids(s, "z2"), ElementsAre("b"));
}

TEST_F(Selection, ZoneLocalWithoutAKnownAgentZoneFallsBackToAll) {
  add("a", R"("zone":"z1")");
  add("b", "");
  Selector s;
  s.zone = "local";
  EXPECT_THAT(ids(s, ""), ElementsAre("a", "b"));
}

TEST_F(Selection, LocalFallbackCountsOnlyInstancesThatPassTheOtherConditions) {
  add("a", R"("zone":"z1","state":"maintenance")");
  add("b", R"("zone":"z1")");
  add("c", R"("zone":"z2")");
  Selector s;
  s.zone = "local";
  s.min_local = 2;
  EXPECT_THAT(ids(s, "z1"), ElementsAre("b", "c"));
}

TEST_F(Selection, NamedZoneIsAHardFilterWithoutFallback) {
  add("a", R"("zone":"z1")");
  add("b", R"("zone":"z2")");
  Selector s;
  s.zone = "z2";
  s.min_local = 5;  // ignored for a named zone
  EXPECT_THAT(ids(s, "z1"), ElementsAre("b"));
  s.zone = "z3";
  EXPECT_THAT(ids(s, "z1"), IsEmpty());
}

TEST_F(Selection, SortByWeightDescendingThenId) {
  add("a", R"("weight":5)");
  add("b", R"("weight":10)");
  add("c", "");
  add("d", R"("weight":10)");
  EXPECT_THAT(ids({}, "", SortOrder::kWeight), ElementsAre("b", "d", "a", "c"));
}

TEST_F(Selection, RandomStableIsDeterministicPerSeedAndDiffersAcrossSeeds) {
  for (int i = 0; i < 20; ++i) add("id-" + std::to_string(100 + i), "");
  const auto first = ids({}, "", SortOrder::kRandomStable, "host-a");
  EXPECT_EQ(first, ids({}, "", SortOrder::kRandomStable, "host-a"));
  EXPECT_NE(first, ids({}, "", SortOrder::kId));
  const auto other = ids({}, "", SortOrder::kRandomStable, "host-b");
  EXPECT_NE(first, other);
  std::vector<std::string> sorted_first = first;
  std::vector<std::string> sorted_other = other;
  std::sort(sorted_first.begin(), sorted_first.end());
  std::sort(sorted_other.begin(), sorted_other.end());
  EXPECT_EQ(sorted_first, sorted_other);  // a permutation of the same set
}

TEST_F(Selection, RandomStableOrderOfTwoInstancesDoesNotDependOnTheRest) {
  add("a", "");
  add("b", "");
  const auto two = ids({}, "", SortOrder::kRandomStable, "seed");
  add("c", "");
  auto three = ids({}, "", SortOrder::kRandomStable, "seed");
  std::erase(three, "c");
  EXPECT_EQ(two, three);  // a new instance does not reshuffle the others (stable per host)
}

TEST(SelectorQuery, ParsesEveryParameter) {
  const auto q = parse_selector_query("?tag=v2&tag=canary&zone=local&min_local=2&state=passing&state=draining"
                                      "&meta.version=1.2.0&sort=random-stable");
  ASSERT_TRUE(q.ok()) << q.error;
  EXPECT_THAT(q.selector.tags, ElementsAre("v2", "canary"));
  EXPECT_EQ(q.selector.zone, "local");
  EXPECT_EQ(q.selector.min_local, 2);
  EXPECT_THAT(q.selector.states, ElementsAre(InstanceState::kPassing, InstanceState::kDraining));
  EXPECT_THAT(q.selector.metadata, ElementsAre(Pair("version", "1.2.0")));
  EXPECT_EQ(q.sort, SortOrder::kRandomStable);
}

TEST(SelectorQuery, EmptyQueryIsTheDefaultSelector) {
  const auto q = parse_selector_query("");
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q.selector, Selector{});
  EXPECT_FALSE(q.sort.has_value());
}

TEST(SelectorQuery, DecodesPercentEscapesAndPlus) {
  const auto q = parse_selector_query("meta.owner=team+a%2Fb&meta.x%2Ey=1");
  ASSERT_TRUE(q.ok()) << q.error;
  EXPECT_THAT(q.selector.metadata, ElementsAre(Pair("owner", "team a/b"), Pair("x.y", "1")));
}

TEST(SelectorQuery, MistakesAreErrorsNamingTheParameter) {
  EXPECT_THAT(parse_selector_query("tags=v2").error, HasSubstr("unknown parameter 'tags'"));
  EXPECT_THAT(parse_selector_query("state=sleeping").error, HasSubstr("unknown state 'sleeping'"));
  EXPECT_THAT(parse_selector_query("zone=local&min_local=0").error, HasSubstr("min_local"));
  EXPECT_THAT(parse_selector_query("min_local=2").error, HasSubstr("zone=local"));
  EXPECT_THAT(parse_selector_query("zone=a&zone=b").error, HasSubstr("twice"));
  EXPECT_THAT(parse_selector_query("tag=").error, HasSubstr("no value"));
  EXPECT_THAT(parse_selector_query("tag=a%zz").error, HasSubstr("percent"));
  EXPECT_THAT(parse_selector_query("tag=a%2").error, HasSubstr("percent"));
  EXPECT_THAT(parse_selector_query("sort=shuffle").error, HasSubstr("unknown sort"));
  EXPECT_THAT(parse_selector_query("tag=a%20b").error, HasSubstr("[A-Za-z0-9._-]"));
}

}  // namespace
}  // namespace sidecar::core
