// The manifest's `catalog:` section: defaults, bounds, and errors with line and column.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "agent/core/manifest.hpp"
#include "tests/unit/manifest_test_support.hpp"

namespace sidecar::core {
namespace {

using manifest_testing::ErrorAt;
using ::testing::ElementsAre;

ParseResult parse_with(const std::string& catalog_section) {
  return manifest_testing::parse("discover:\n  - {service: a, output: /tmp/a.json}\n" + catalog_section);
}

TEST(CatalogManifest, DefaultsToTenMinutesAndAThousandServices) {
  const ParseResult r = parse_with("");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.manifest->catalog.idle_timeout, std::chrono::minutes(10));
  EXPECT_EQ(r.manifest->catalog.max_services, 1000u);
}

TEST(CatalogManifest, ReadsIdleTimeoutAndMaxServices) {
  const ParseResult r = parse_with("catalog:\n  idle_timeout: 90s\n  max_services: 50\n");
  ASSERT_TRUE(r.ok()) << r.errors.front().to_string();
  EXPECT_EQ(r.manifest->catalog.idle_timeout, std::chrono::seconds(90));
  EXPECT_EQ(r.manifest->catalog.max_services, 50u);
}

TEST(CatalogManifest, RejectsATooShortIdleTimeoutAndAZeroBoundWithTheirPlace) {
  const ParseResult r = parse_with("catalog:\n  idle_timeout: 500ms\n  max_services: 0\n  max_service: 3\n");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.errors, ElementsAre(ErrorAt(4, 17, "catalog.idle_timeout", "at least 1s"),
                                    ErrorAt(5, 17, "catalog.max_services", ""),
                                    ErrorAt(6, 3, "catalog.max_service", "max_services")));
}

}  // namespace
}  // namespace sidecar::core
