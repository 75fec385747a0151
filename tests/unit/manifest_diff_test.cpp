// core::diff_manifests: what a SIGHUP reload changes, from the old and new manifests alone.
#include "agent/core/manifest_diff.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

namespace {

namespace core = sidecar::core;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

core::Manifest parse(const std::string& text) {
  auto r = core::parse_manifest(text, "m.yaml", [](const std::string&) { return std::nullopt; });
  EXPECT_TRUE(r.ok()) << (r.errors.empty() ? "" : r.errors.front().to_string());
  return r.ok() ? *r.manifest : core::Manifest{};
}

const char* kBase = R"(
services:
  - {name: web, id: w1, port: 80}
  - {name: api, id: a1, port: 81, checks: [{tcp: "127.0.0.1:81", interval: 1s}]}
  - {name: db, id: d1, port: 82}
discover:
  - {service: web, output: web.json}
  - {service: api, output: api.json}
config:
  - {key: /config/a, output: a.txt}
)";

TEST(ManifestDiff, IdenticalManifestsDiffToNothing) {
  const auto d = core::diff_manifests(parse(kBase), parse(kBase));
  EXPECT_TRUE(d.empty());
  EXPECT_EQ(d.services_kept.size(), 3u);
  EXPECT_EQ(d.discover_kept.size(), 2u);
  EXPECT_EQ(d.config_kept.size(), 1u);
}

TEST(ManifestDiff, MovedLinesAndReorderedEntriesAreNotChanges) {
  const auto d = core::diff_manifests(parse(kBase), parse(std::string("\n\n# comment\n") + R"(
services:
  - {name: db, id: d1, port: 82}
  - {name: web, id: w1, port: 80}
  - {name: api, id: a1, port: 81, checks: [{tcp: "127.0.0.1:81", interval: 1s}]}
discover:
  - {service: api, output: api.json}
  - {service: web, output: web.json}
config:
  - {key: /config/a, output: a.txt}
)"));
  EXPECT_TRUE(d.empty()) << d.summary();
  ASSERT_EQ(d.services_kept.size(), 3u);
  EXPECT_EQ(d.services_kept[0].old_index, 2u);  // db, now first
  EXPECT_EQ(d.services_kept[0].new_index, 0u);
}

TEST(ManifestDiff, ServicesAreAddedRemovedAndChangedByKey) {
  const auto d = core::diff_manifests(parse(kBase), parse(R"(
services:
  - {name: web, id: w1, port: 8080}
  - {name: api, id: a1, port: 81, checks: [{tcp: "127.0.0.1:81", interval: 2s}]}
  - {name: cache, id: c1, port: 83}
discover:
  - {service: web, output: web.json}
  - {service: api, output: api.json}
config:
  - {key: /config/a, output: a.txt}
)"));
  EXPECT_THAT(d.services_removed, ElementsAre(2u));  // db
  EXPECT_THAT(d.services_added, ElementsAre(2u));    // cache
  ASSERT_EQ(d.services_kept.size(), 2u);
  EXPECT_TRUE(d.services_kept[0].value_changed);     // web: port
  EXPECT_FALSE(d.services_kept[0].checks_changed);
  EXPECT_FALSE(d.services_kept[1].value_changed);    // api: only its check interval
  EXPECT_TRUE(d.services_kept[1].checks_changed);
  EXPECT_EQ(d.services_changed(), 2u);
  EXPECT_EQ(d.summary(), "services +1 -1 ~2 =0, discover +0 -0 =2, config +0 -0 =1");
}

TEST(ManifestDiff, MetadataAndValueFormatChangeTheValue) {
  const auto d = core::diff_manifests(parse("services: [{name: web, id: w1, port: 80, metadata: {zone: a}}]"),
                                      parse("services: [{name: web, id: w1, port: 80, metadata: {zone: b}}]"));
  ASSERT_EQ(d.services_kept.size(), 1u);
  EXPECT_TRUE(d.services_kept[0].value_changed);
}

TEST(ManifestDiff, ChangedDiscoveryOrMirrorIsReplacedAndAnUnchangedOneKept) {
  const auto d = core::diff_manifests(parse(kBase), parse(R"(
services:
  - {name: web, id: w1, port: 80}
  - {name: api, id: a1, port: 81, checks: [{tcp: "127.0.0.1:81", interval: 1s}]}
  - {name: db, id: d1, port: 82}
discover:
  - {service: web, output: web.json, format: lines}
  - {service: db, output: db.json}
config:
  - {prefix: /config/b/, output: b.json}
)"));
  EXPECT_THAT(d.discover_removed, ElementsAre(0u, 1u));
  EXPECT_THAT(d.discover_added, ElementsAre(0u, 1u));
  EXPECT_THAT(d.discover_kept, IsEmpty());
  EXPECT_THAT(d.config_removed, ElementsAre(0u));
  EXPECT_THAT(d.config_added, ElementsAre(0u));
  EXPECT_EQ(d.services_changed(), 0u);
}

TEST(ManifestDiff, ChangedTemplateTextReplacesTheDiscovery) {
  const auto m = parse("discover: [{service: web, output: w.txt, format: template, template: w.tmpl}]");
  EXPECT_THAT(core::diff_manifests(m, m, {"{{a}}"}, {"{{b}}"}).discover_removed, ElementsAre(0u));
  EXPECT_TRUE(core::diff_manifests(m, m, {"{{a}}"}, {"{{a}}"}).empty());
}

TEST(ManifestDiff, DiscoveryWithoutSelfIsReplacedWhenOurOwnIdsChange) {
  const auto old_m = parse(R"(
services: [{name: web, id: w1, port: 80}]
discover: [{service: web, output: w.json, include_self: false}, {service: web, output: all.json}]
)");
  const auto new_m = parse(R"(
services: [{name: web, id: w1, port: 80}, {name: web, id: w2, port: 81}]
discover: [{service: web, output: w.json, include_self: false}, {service: web, output: all.json}]
)");
  const auto d = core::diff_manifests(old_m, new_m);
  EXPECT_THAT(d.discover_removed, ElementsAre(0u));
  ASSERT_EQ(d.discover_kept.size(), 1u);  // include_self: true does not care
  EXPECT_EQ(d.discover_kept[0].old_index, 1u);
}

TEST(ManifestDiff, EtcdLeaseAndAdminSettingsNeedARestartAndAreKeptFromTheRunningOne) {
  const auto running = parse(
      "etcd: {endpoints: [\"http://127.0.0.1:2379\"]}\nlease: {ttl: 10s}\nservices: [{name: web, id: w1, port: 80}]\n");
  auto next = parse(R"(
etcd: {endpoints: ["http://127.0.0.1:2380"], prefix: /other}
lease: {ttl: 5s}
admin: {listen: "127.0.0.1:9999"}
shutdown: {drain_delay: 2s}
services: [{name: web, id: w1, port: 80}]
)");
  EXPECT_THAT(core::restart_only_changes(running, next),
              ElementsAre("etcd.endpoints", "etcd.prefix", "lease.ttl", "admin"));
  core::keep_restart_only_settings(running, next);
  EXPECT_THAT(core::restart_only_changes(running, next), IsEmpty());
  EXPECT_EQ(next.drain_delay, std::chrono::seconds(2));  // applied live
  EXPECT_TRUE(core::diff_manifests(running, next).drain_delay_changed);
}

}  // namespace
