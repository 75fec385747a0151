// The manifest's `admin:` section: default on at 127.0.0.1:9464, switchable off, bad addresses reported
// with line and column like every other field.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "agent/core/manifest.hpp"
#include "tests/unit/manifest_test_support.hpp"

namespace sidecar::core {
namespace {

using ::testing::HasSubstr;

ParseResult parse_with_admin(const std::string& admin_section) {
  const std::string text =
      "services:\n"
      "  - {name: a, id: one, port: 80}\n" +
      admin_section;
  return manifest_testing::parse(text);
}

TEST(AdminManifest, DefaultsToLoopback9464WhenTheSectionIsAbsent) {
  const ParseResult r = parse_with_admin("");
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r.manifest->admin.enabled);
  EXPECT_EQ(r.manifest->admin.host, "127.0.0.1");
  EXPECT_EQ(r.manifest->admin.port, 9464);
}

TEST(AdminManifest, ReadsAnIpv4ListenAddress) {
  const ParseResult r = parse_with_admin("admin:\n  listen: \"0.0.0.0:19464\"\n");
  ASSERT_TRUE(r.ok()) << r.errors.front().to_string();
  EXPECT_TRUE(r.manifest->admin.enabled);
  EXPECT_EQ(r.manifest->admin.host, "0.0.0.0");
  EXPECT_EQ(r.manifest->admin.port, 19464);
}

TEST(AdminManifest, ReadsABracketedIpv6ListenAddressAndPortZero) {
  const ParseResult r = parse_with_admin("admin: {listen: \"[::1]:0\"}\n");
  ASSERT_TRUE(r.ok()) << r.errors.front().to_string();
  EXPECT_EQ(r.manifest->admin.host, "::1");
  EXPECT_EQ(r.manifest->admin.port, 0);
}

TEST(AdminManifest, EnabledFalseSwitchesItOff) {
  const ParseResult r = parse_with_admin("admin:\n  enabled: false\n");
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r.manifest->admin.enabled);
}

TEST(AdminManifest, EmptyListenSwitchesItOff) {
  const ParseResult quoted = parse_with_admin("admin:\n  listen: \"\"\n");
  ASSERT_TRUE(quoted.ok());
  EXPECT_FALSE(quoted.manifest->admin.enabled);
  const ParseResult bare = parse_with_admin("admin:\n  listen:\n");
  ASSERT_TRUE(bare.ok());
  EXPECT_FALSE(bare.manifest->admin.enabled);
}

TEST(AdminManifest, BadListenAddressIsAnErrorAtItsLineAndColumn) {
  const ParseResult r = parse_with_admin("admin:\n  listen: localhost:9464\n");
  ASSERT_FALSE(r.ok());
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].where.line, 4);
  EXPECT_EQ(r.errors[0].where.column, 11);
  EXPECT_EQ(r.errors[0].field, "admin.listen");
  EXPECT_THAT(r.errors[0].message, HasSubstr("not an IPv4 address"));
}

TEST(AdminManifest, UnknownKeyInAdminIsReportedWithASuggestion) {
  const ParseResult r = parse_with_admin("admin:\n  lissen: \"127.0.0.1:1\"\n");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.errors[0].field, "admin.lissen");
  EXPECT_THAT(r.errors[0].message, HasSubstr("did you mean 'listen'"));
}

TEST(AdminManifest, NonBooleanEnabledIsAnError) {
  const ParseResult r = parse_with_admin("admin:\n  enabled: maybe\n");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.errors[0].field, "admin.enabled");
  EXPECT_EQ(r.errors[0].where.line, 4);
}

struct BadAddress {
  const char* text;
  const char* message_part;
};

class ListenAddressRejects : public ::testing::TestWithParam<BadAddress> {};

TEST_P(ListenAddressRejects, WithAReason) {
  const ListenAddress a = parse_listen_address(GetParam().text);
  EXPECT_THAT(a.error, HasSubstr(GetParam().message_part)) << GetParam().text;
}

INSTANTIATE_TEST_SUITE_P(AdminManifest, ListenAddressRejects,
                         ::testing::Values(BadAddress{"127.0.0.1", "missing port"},
                                           BadAddress{":9464", "missing host"},
                                           BadAddress{"127.0.0.1:65536", "between 0 and 65535"},
                                           BadAddress{"127.0.0.1:http", "between 0 and 65535"},
                                           BadAddress{"::1:9464", "brackets"},
                                           BadAddress{"[::1", "unterminated"},
                                           BadAddress{"[::1]", "missing port"},
                                           BadAddress{"[zz]:1", "not an IPv6 address"},
                                           BadAddress{"300.1.1.1:1", "not an IPv4 address"}));

}  // namespace
}  // namespace sidecar::core
