// The manifest's instance model (named ports, tags, weight, zone, region, the agent's locality) and the
// discover entries' `select:` and `sort:`: what they become, and every mistake at its line and column.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "agent/core/manifest.hpp"
#include "agent/core/manifest_diff.hpp"
#include "tests/unit/manifest_test_support.hpp"

namespace sidecar::core {
namespace {

using ::testing::ElementsAre;
using ::testing::Pair;
using namespace manifest_testing;

TEST(ManifestModel, ParsesPortsTagsWeightZoneAndRegion) {
  auto r = parse(R"(
services:
  - name: order-service
    id: order-1
    port: 8080
    ports: {http: 8080, grpc: 9090}
    tags: [v2, canary, v2]
    weight: 10
    zone: ${ZONE:-a}
    region: eu-west
)");
  ASSERT_TRUE(r.ok()) << all_errors(r);
  const ServiceSpec& s = r.manifest->services.at(0);
  EXPECT_THAT(s.ports, ElementsAre(Pair("grpc", 9090), Pair("http", 8080)));
  EXPECT_THAT(s.tags, ElementsAre("canary", "v2"));  // sorted, unique
  EXPECT_EQ(s.weight, 10);
  EXPECT_EQ(s.zone, "a");
  EXPECT_EQ(s.region, "eu-west");
}

TEST(ManifestModel, DefaultsAreWeightOneAndNothingElse) {
  auto r = parse(R"(
services:
  - {name: s, id: s-1, port: 1}
)");
  ASSERT_TRUE(r.ok()) << all_errors(r);
  const ServiceSpec& s = r.manifest->services.at(0);
  EXPECT_EQ(s.weight, 1);
  EXPECT_TRUE(s.ports.empty());
  EXPECT_TRUE(s.tags.empty());
  EXPECT_EQ(s.zone, "");
  EXPECT_EQ(r.manifest->agent.zone, "");
}

TEST(ManifestModel, WeightZeroIsAnErrorAtItsValue) {
  auto r = parse(R"(
services:
  - name: s
    id: s-1
    port: 1
    weight: 0
)");
  EXPECT_THAT(r.errors, ElementsAre(ErrorAt(5, 13, "services[0].weight", "between 1 and 10000")));
}

TEST(ManifestModel, WeightAboveTenThousandIsAnError) {
  auto r = parse(R"(
services:
  - name: s
    id: s-1
    port: 1
    weight: 10001
)");
  EXPECT_THAT(r.errors, ElementsAre(ErrorAt(5, 13, "services[0].weight", "got 10001")));
}

TEST(ManifestModel, NamedPortOutOfRangeIsAnError) {
  auto r = parse(R"(
services:
  - name: s
    id: s-1
    port: 1
    ports: {http: 8080, grpc: 70000}
)");
  EXPECT_THAT(r.errors, ElementsAre(ErrorAt(5, 31, "services[0].ports.grpc", "between 1 and 65535")));
}

TEST(ManifestModel, DuplicatePortNameIsAnErrorAtTheRepeat) {
  auto r = parse(R"(
services:
  - name: s
    id: s-1
    port: 1
    ports:
      http: 8080
      http: 8081
)");
  EXPECT_THAT(r.errors, ElementsAre(ErrorAt(7, 7, "services[0].ports.http", "duplicate key 'http'")));
}

TEST(ManifestModel, PortNameOutsideTheServiceNameCharsetIsAnError) {
  auto r = parse(R"(
services:
  - name: s
    id: s-1
    port: 1
    ports: {HTTP_2: 80, averyveryverylongname: 81}
)");
  EXPECT_THAT(r.errors, ElementsAre(ErrorAt(5, 13, "services[0].ports", "[a-z0-9-]"),
                                    ErrorAt(5, 25, "services[0].ports", "[a-z0-9-]")));
}

TEST(ManifestModel, BadTagAndZoneAreErrors) {
  auto r = parse(R"(
services:
  - name: s
    id: s-1
    port: 1
    tags: [ok, "not ok"]
    zone: "eu west"
)");
  EXPECT_THAT(r.errors, ElementsAre(ErrorAt(5, 16, "services[0].tags[1]", "[A-Za-z0-9._-]"),
                                    ErrorAt(6, 11, "services[0].zone", "[A-Za-z0-9._-]")));
}

TEST(ManifestModel, AgentZoneDefaultsToTheZoneAllServicesShare) {
  auto shared = parse(R"(
services:
  - {name: a, id: a-1, port: 1, zone: z1, region: r1}
  - {name: b, id: b-1, port: 2, zone: z1}
)");
  ASSERT_TRUE(shared.ok()) << all_errors(shared);
  EXPECT_EQ(shared.manifest->agent.zone, "z1");
  EXPECT_EQ(shared.manifest->agent.region, "");  // b has none: not shared

  auto differing = parse(R"(
services:
  - {name: a, id: a-1, port: 1, zone: z1}
  - {name: b, id: b-1, port: 2, zone: z2}
)");
  ASSERT_TRUE(differing.ok());
  EXPECT_EQ(differing.manifest->agent.zone, "");
}

TEST(ManifestModel, AgentSectionSetsTheLocalityExplicitly) {
  auto r = parse(R"(
agent: {zone: "${ZONE:-b}", region: eu}
services:
  - {name: a, id: a-1, port: 1, zone: z1}
)");
  ASSERT_TRUE(r.ok()) << all_errors(r);
  EXPECT_EQ(r.manifest->agent.zone, "b");
  EXPECT_EQ(r.manifest->agent.region, "eu");
}

TEST(ManifestModel, ParsesSelectAndSort) {
  auto r = parse(R"(
discover:
  - service: order-service
    output: /tmp/o.json
    select:
      tags: [v2]
      metadata: {version: "1.2.0", build: 7}
      zone: local
      min_local: 2
      states: [passing, warning, draining]
    sort: weight
)");
  ASSERT_TRUE(r.ok()) << all_errors(r);
  const DiscoverSpec& d = r.manifest->discover.at(0);
  EXPECT_THAT(d.select.tags, ElementsAre("v2"));
  EXPECT_THAT(d.select.metadata, ElementsAre(Pair("build", "7"), Pair("version", "1.2.0")));
  EXPECT_EQ(d.select.zone, "local");
  EXPECT_EQ(d.select.min_local, 2);
  EXPECT_THAT(d.select.states,
              ElementsAre(InstanceState::kPassing, InstanceState::kWarning, InstanceState::kDraining));
  EXPECT_EQ(d.sort, SortOrder::kWeight);
}

TEST(ManifestModel, SelectDefaultsSelectEverythingShownByDefaultInIdOrder) {
  auto r = parse(R"(
discover:
  - {service: s, output: /tmp/o.json}
)");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.manifest->discover.at(0).select, Selector{});
  EXPECT_EQ(r.manifest->discover.at(0).sort, SortOrder::kId);
}

TEST(ManifestModel, BadSelectValuesAreErrorsWhereWritten) {
  auto r = parse(R"(
discover:
  - service: s
    output: /tmp/o.json
    select:
      zone: local
      min_local: 0
      states: [passing, sleeping]
      colour: red
    sort: shuffled
)");
  EXPECT_THAT(r.errors, ElementsAre(ErrorAt(6, 18, "discover[0].select.min_local", "must be >= 1"),
                                    ErrorAt(7, 25, "discover[0].select.states[1]", "invalid value 'sleeping'"),
                                    ErrorAt(8, 7, "discover[0].select.colour", "unknown key"),
                                    ErrorAt(9, 11, "discover[0].sort", "invalid value 'shuffled'")));
}

TEST(ManifestModel, MinLocalWithoutZoneLocalIsAnError) {
  auto r = parse(R"(
discover:
  - service: s
    output: /tmp/o.json
    select: {zone: eu-1, min_local: 2}
)");
  EXPECT_THAT(r.errors, ElementsAre(ErrorAt(4, 26, "discover[0].select.min_local", "zone: local")));
}

Manifest discover_manifest(const std::string& select, const std::string& agent_zone = "z1") {
  auto r = parse("\nagent: {zone: " + agent_zone + "}\ndiscover:\n  - service: s\n    output: /tmp/o.json\n" + select);
  EXPECT_TRUE(r.ok()) << all_errors(r);
  return *r.manifest;
}

TEST(ManifestModel, ReloadRestartsADiscoveryWhoseSelectionChanged) {
  const Manifest plain = discover_manifest("");
  const Manifest tagged = discover_manifest("    select: {tags: [v2]}\n");
  const Manifest sorted = discover_manifest("    sort: weight\n");
  EXPECT_EQ(diff_manifests(plain, plain, {""}, {""}).discover_kept.size(), 1u);
  EXPECT_EQ(diff_manifests(plain, tagged, {""}, {""}).discover_kept.size(), 0u);
  EXPECT_EQ(diff_manifests(plain, sorted, {""}, {""}).discover_kept.size(), 0u);
}

TEST(ManifestModel, ReloadRestartsAZoneLocalDiscoveryWhenTheAgentZoneMoves) {
  const std::string local = "    select: {zone: local}\n";
  EXPECT_EQ(diff_manifests(discover_manifest(local, "z1"), discover_manifest(local, "z2"), {""}, {""})
                .discover_kept.size(),
            0u);
  // Without zone: local the agent's zone does not matter to the entry.
  EXPECT_EQ(diff_manifests(discover_manifest("", "z1"), discover_manifest("", "z2"), {""}, {""}).discover_kept.size(),
            1u);
}

}  // namespace
}  // namespace sidecar::core
